"""The judge server's per-request work limits, checked before any decoding or tokenizing work:

- prompt length: the rendered prompt's text tokens against the model's context (`max_model_len`,
  or a lower `--max-prompt-tokens`). A prompt whose characters alone prove it too long is refused
  without tokenizing (every token covers at most `max_chars_per_token` characters); otherwise its
  text is tokenized once (media placeholders count one token each, so the count is a lower bound:
  a prompt the media push over the context is refused by the engine's own check, also a 400);
- images: width x height from the header (PIL opens lazily), at most `max_image_pixels`;
- audio: frames, rate and channels from the header (soundfile.info), at most `max_audio_seconds`
  before any sample is decoded or resampled (a 1 Hz WAV of 200 KB lasts 100,000 s: resampled to
  16 kHz it would be 5.96 GiB of float32);
- video: the clip's frame count (container metadata, else its packets, counted up to the limit) at
  most `max_video_frames` (the loader decodes up to the last sampled frame, so the whole clip),
  and its frame size at most `max_image_pixels`.
Each refusal is a RequestError (413 for a size limit, 400 for undecodable media) naming the
request's field and the limit, never a path.
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from flex_judge.serving.protocol import RequestError


@dataclass
class MediaLimits:
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 600.0
    max_video_frames: int = 36_000

    def check(self, planned) -> None:
        """Every media item of a planned request (flex_models.requests.Planned), from headers only."""
        for kind, urls in planned.media.items():
            for k, url in enumerate(urls):
                where = f"{kind} item {k + 1}"
                if kind == "image":
                    self.image(url, where)
                elif kind == "audio":
                    self.audio(url, where)
                elif kind == "video":
                    self.video(url, where)

    def image(self, data, where: str) -> None:
        if not isinstance(data, (bytes, bytearray)):
            return
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                w, h = im.size
        except Image.DecompressionBombError:
            raise RequestError(f"{where}: the image has more pixels than this server decodes "
                               f"({self.max_image_pixels})", status=413, code="image_too_large") from None
        except Exception:  # noqa: BLE001 - PIL raises many types for a bad header
            raise RequestError(f"{where}: not a readable image", code="invalid_media") from None
        if w * h > self.max_image_pixels:
            raise RequestError(f"{where}: the image is {w}x{h} = {w * h} pixels; this server decodes at most "
                               f"{self.max_image_pixels} (--max-image-pixels)", status=413, code="image_too_large")

    def audio(self, data, where: str) -> None:
        if not isinstance(data, (bytes, bytearray)):
            return
        import soundfile as sf

        try:
            info = sf.info(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - libsndfile's errors for a bad header
            raise RequestError(f"{where}: not a readable audio file", code="invalid_media") from None
        if info.samplerate <= 0 or info.frames < 0 or info.channels <= 0:
            raise RequestError(f"{where}: the audio header is invalid (rate {info.samplerate} Hz, "
                               f"{info.channels} channels)", code="invalid_media")
        seconds = info.frames / info.samplerate
        if seconds > self.max_audio_seconds:
            raise RequestError(f"{where}: the audio lasts {seconds:.0f} s ({info.frames} frames at {info.samplerate} Hz); "
                               f"this server accepts at most {self.max_audio_seconds:g} s (--max-audio-seconds)",
                               status=413, code="audio_too_long")

    def video(self, path, where: str) -> None:
        if not isinstance(path, str):
            return
        import av

        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                w, h = stream.codec_context.width, stream.codec_context.height
                frames = int(stream.frames or 0)
                if not frames:
                    rate = float(stream.average_rate or stream.guessed_rate or 0)
                    if container.duration and rate:
                        frames = int(container.duration / 1e6 * rate)
                if not frames:  # no metadata: count packets (no decoding), only up to the limit
                    for p in container.demux(stream):
                        frames += 1 if p.size else 0
                        if frames > self.max_video_frames:
                            break
        except Exception:  # noqa: BLE001 - PyAV's errors name the file: not for the client
            raise RequestError(f"{where}: not a readable video", code="invalid_media") from None
        if frames > self.max_video_frames:
            raise RequestError(f"{where}: the video has {frames} frames; this server decodes at most "
                               f"{self.max_video_frames} (--max-video-frames)", status=413, code="video_too_long")
        if w * h > self.max_image_pixels:
            raise RequestError(f"{where}: video frames of {w}x{h} pixels; this server decodes at most "
                               f"{self.max_image_pixels} per frame (--max-image-pixels)", status=413,
                               code="video_too_large")


def max_chars_per_token(tokenizer) -> int:
    """The longest token's length in characters (byte-level BPE: a token's string has one
    character per byte, at least the characters it decodes to); added tokens included."""
    longest = max((len(t) for t in tokenizer.get_vocab()), default=1)
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return max([longest, *(len(str(getattr(t, "content", t))) for t in added.values())])


class PromptBudget:
    """Refuses a rendered prompt with more text tokens than `limit` (see the module doc)."""

    def __init__(self, tokenizer, limit: int, context: int):
        self.tokenizer, self.limit, self.context = tokenizer, int(limit), int(context)
        self.chars_per_token = max(1, max_chars_per_token(tokenizer))
        self._lock = threading.Lock()  # one Rust tokenizer: calls are serialised (cheap: bounded length)

    def _refuse(self, what: str):
        why = (f"the model's context is {self.context} tokens" if self.limit >= self.context - 1
               else f"this server accepts at most {self.limit} prompt tokens (--max-prompt-tokens)")
        raise RequestError(f"the prompt has {what}; {why}. Shorten the messages", code="context_length_exceeded")

    CHUNK = 65_536  # characters tokenized per call: a long prompt stops early and never holds the lock long
    SLACK = 16  # tokens a cut between two chunks may add (a pre-token split in two, its merges lost)

    def _count(self, text: str) -> int:
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def check(self, prompt: str) -> int:
        """The prompt's text token count (a lower bound of the engine's), or a RequestError. A
        prompt longer than CHUNK characters is counted in chunks cut at a space, stopping as soon as
        the count, less SLACK per cut, is over the limit; it is refused only on that proof."""
        if len(prompt) > self.limit * self.chars_per_token:
            self._refuse(f"{len(prompt)} characters, more than {self.limit} tokens can hold")
        if len(prompt) <= self.CHUNK:
            n = self._count(prompt)
            if n > self.limit:
                self._refuse(f"{n} tokens")
            return n
        n, cuts, start = 0, 0, 0
        while start < len(prompt):
            end = min(start + self.CHUNK, len(prompt))
            if end < len(prompt):
                space = prompt.rfind(" ", start + self.CHUNK // 2, end)
                end = space if space > start else end
                cuts += 1
            n += self._count(prompt[start:end])
            start = end
            if n - self.SLACK * cuts > self.limit:
                self._refuse(f"at least {n - self.SLACK * cuts} tokens")
        return n - self.SLACK * cuts
