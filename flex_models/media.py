"""Media decoding for the flex model: images, videos (frames at the doc's fps, picked and
resized by qwen_vl_utils' rules) and audio.

Every loader takes `where` (e.g. "task nisqa doc 12") and raises MediaError naming it and the
file, so a bad item fails before generation starts. Audio comes out mono float32 at 16 kHz
(the rate Qwen2.5-Omni's Whisper feature extractor expects), resampled with
scipy.signal.resample_poly.
"""
from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np

from flex_models.errors import FlexJudgeError

AUDIO_SR = 16000
VIDEO_DEFAULTS = {"fps": 1.0, "max_pixels": 224 * 224}
_FACTOR = 28  # Qwen2.5 patch 14 x spatial merge 2


class MediaError(FlexJudgeError, ValueError):
    """A media item that is missing or cannot be decoded; names the document and the file."""


def _describe(url) -> str:
    if isinstance(url, (str, Path)):
        return f"file {str(url)!r}"
    if isinstance(url, dict) and url.get("path"):
        return f"file {url['path']!r}"
    return f"in-memory {type(url).__name__}"


def _fail(kind: str, url, where: str, err: Exception | str):
    at = f" ({where})" if where else ""
    raise MediaError(f"cannot load {kind} {_describe(url)}{at}: {err}")


def _check_path(kind: str, path, where: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        _fail(kind, str(path), where, "no such file")
    return p


def _source(kind: str, url, where: str):
    """A path, raw bytes or {'bytes'|'path': ...} -> something PIL / soundfile can open."""
    if isinstance(url, dict):
        return io.BytesIO(url["bytes"]) if url.get("bytes") else _check_path(kind, url.get("path"), where)
    if isinstance(url, (bytes, bytearray)):
        return io.BytesIO(url)
    if isinstance(url, (str, Path)):
        return _check_path(kind, url, where)
    _fail(kind, url, where, f"unsupported type {type(url).__name__}")


# --------------------------------------------------------------------------- images
def load_image(url, where: str = ""):
    """PIL image (as given, converted to RGB), a path, raw bytes, or {'bytes'|'path': ...}."""
    from PIL import Image

    if isinstance(url, Image.Image):
        return url if url.mode == "RGB" else url.convert("RGB")
    try:
        with Image.open(_source("image", url, where)) as im:
            return im.convert("RGB")
    except MediaError:
        raise
    except Exception as e:
        _fail("image", url, where, f"{type(e).__name__}: {e}")


# --------------------------------------------------------------------------- audio
AUDIO_SCALINGS = ("released", "unit")
# Qwen2.5-Omni's Whisper feature extractor pads / cuts every clip to chunk_length = 30 s
# (preprocessor_config.json of the released checkpoints); later samples never reach the model.
MAX_AUDIO_SECONDS = 30.0


def to_mono_16k(array, sr: int, channel_axis: int | None = None) -> np.ndarray:
    """Any channel layout and rate -> mono float32 16 kHz. ``channel_axis`` says which axis of
    a 2-D array holds the channels (soundfile: 1); unknown: the shorter axis (any channel count)."""
    a = np.asarray(array)
    if a.dtype.kind in "iu":  # integer PCM -> [-1, 1]
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        if channel_axis is None:
            channel_axis = 1 if a.shape[1] <= a.shape[0] else 0
        a = a.mean(axis=channel_axis)
    elif a.ndim != 1:
        raise ValueError(f"audio array has shape {a.shape}; expected 1-D or 2-D")
    sr = int(sr)
    if sr <= 0:
        raise ValueError(f"sampling rate {sr} must be positive")
    if sr != AUDIO_SR:
        from scipy.signal import resample_poly

        ratio = Fraction(AUDIO_SR, sr)
        a = resample_poly(a, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.ascontiguousarray(a, dtype=np.float32)


def released_int16_scale(a: np.ndarray) -> np.ndarray:
    """The released audio scripts' step for resampled audio: ``(x * 32767).astype(int16)``
    (truncation toward zero), returned as float32 for the feature extractor. Values beyond
    +-1 are clipped first (the released cast leaves them undefined)."""
    return np.clip(a * 32767.0, -32768, 32767).astype(np.int16).astype(np.float32)


def _read_audio(url, where: str) -> tuple[np.ndarray, int]:
    if isinstance(url, dict) and "array" in url:
        if "sampling_rate" not in url:
            _fail("audio", url, where, "dict has 'array' but no 'sampling_rate'")
        sr = url["sampling_rate"]
        return to_mono_16k(url["array"], sr), int(url.get("source_sampling_rate", sr))
    if isinstance(url, tuple) and len(url) == 2:
        return to_mono_16k(url[0], url[1]), int(url[1])
    import soundfile as sf

    arr, sr = sf.read(_source("audio", url, where), dtype="float32", always_2d=True)  # (frames, channels)
    seconds = arr.shape[0] / sr
    if seconds > MAX_AUDIO_SECONDS:
        import warnings

        warnings.warn(f"audio {_describe(url)}{f' ({where})' if where else ''} lasts {seconds:.1f} s; the model "
                      f"hears only its first {MAX_AUDIO_SECONDS:.0f} s", stacklevel=4)
    return to_mono_16k(arr, sr, channel_axis=1), int(sr)


def decode_audio(url, where: str = "") -> tuple[np.ndarray, int]:
    """(16 kHz mono float32 in [-1, 1], the source's sampling rate) of a path, bytes,
    (array, sr), {'array', 'sampling_rate'[, 'source_sampling_rate']} or {'path'|'bytes'}."""
    try:
        out, source_sr = _read_audio(url, where)
    except MediaError:
        raise
    except Exception as e:
        _fail("audio", url, where, f"{type(e).__name__}: {e}")
    if out.size == 0:
        _fail("audio", url, where, "empty audio")
    return out, source_sr


def load_audio(url, where: str = "", scaling: str = "unit") -> np.ndarray:
    """Any audio :func:`decode_audio` reads -> 16 kHz mono float32. ``scaling="released"``
    applies the released scripts' int16-range scaling to audio that had to be resampled
    (source rate != 16 kHz); 16 kHz sources stay in [-1, 1], as they did there.
    ``"unit"``: always [-1, 1]."""
    if scaling not in AUDIO_SCALINGS:
        raise ValueError(f"audio scaling {scaling!r}: allowed values are {', '.join(AUDIO_SCALINGS)}")
    out, source_sr = decode_audio(url, where)
    if scaling == "released" and source_sr != AUDIO_SR:
        out = released_int16_scale(out)
    return out


# --------------------------------------------------------------------------- video
def video_plan(total_frames: int, native_fps: float, height: int, width: int, fps: float,
               max_pixels: int) -> tuple[list[int], tuple[int, int]]:
    """(frame indices, (height, width) after resizing) by qwen_vl_utils' own rules, the
    library the released GenAI-Bench script fed videos through: its frame count
    (``smart_nframes``: duration x fps, at least 4, even, at most 768 and the clip's length),
    evenly spaced rounded indices, and ``fetch_video``'s pixel budget for ``smart_resize``.
    Its per-frame minimum (128 tokens) is lowered to ``max_pixels`` when the protocol asks
    for less (GenAI-Bench: 224x224), which the current qwen_vl_utils would reject."""
    import torch
    from qwen_vl_utils import vision_process as qv

    n = qv.smart_nframes({"fps": fps}, total_frames=total_frames, video_fps=native_fps)
    indices = torch.linspace(0, total_frames - 1, n).round().long().tolist()
    factor = _FACTOR
    min_pixels = qv.VIDEO_MIN_TOKEN_NUM * factor * factor
    total_pixels = qv.MODEL_SEQ_LEN * factor * factor * 0.9
    cap = max(min(qv.VIDEO_MAX_TOKEN_NUM * factor * factor, total_pixels / n * qv.FRAME_FACTOR), int(min_pixels * 1.05))
    max_pixels = min(max_pixels, cap)
    size = qv.smart_resize(height, width, factor=factor, min_pixels=min(min_pixels, max_pixels), max_pixels=max_pixels)
    return indices, size


def _count_frames(path: str) -> int:
    """Frames in the first video stream: the container's count, else its packets (no decoding)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        return int(stream.frames) or sum(1 for p in container.demux(stream) if p.size)


def _decode_frames(path: str, keep: list[int]) -> tuple[dict[int, np.ndarray], int]:
    """RGB arrays of the frames at ``keep`` only (decoding stops after the last one), and the
    number of frames decoded."""
    import av

    wanted, last, out, n = set(keep), max(keep), {}, 0
    with av.open(path) as container:
        for n, frame in enumerate(container.decode(container.streams.video[0]), 1):
            if n - 1 in wanted:
                out[n - 1] = frame.to_ndarray(format="rgb24")
            if n - 1 >= last:
                break
    return out, n


def load_video(url, where: str = "", fps: float | None = None, max_pixels: int | None = None):
    """Video path -> (frames uint8 [T, H, W, 3], metadata dict): the frames qwen_vl_utils would
    pick at ``fps`` (:func:`video_plan`), resized as it does (bicubic, antialiased)."""
    import av
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    fps = float(fps or VIDEO_DEFAULTS["fps"])
    max_pixels = int(max_pixels or VIDEO_DEFAULTS["max_pixels"])
    path = url.get("path") if isinstance(url, dict) else url
    if not isinstance(path, (str, Path)):
        _fail("video", url, where, f"unsupported type {type(url).__name__}; pass a file path")
    path = str(_check_path("video", path, where))
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            native = float(stream.average_rate or stream.guessed_rate or 0) or 24.0
            height, width = stream.codec_context.height, stream.codec_context.width
        total = _count_frames(path)
        idx, (hh, ww) = video_plan(total, native, height, width, fps, max_pixels)
        frames, decoded = _decode_frames(path, idx)
        if len(frames) < len(set(idx)) and decoded >= 2:  # fewer frames than announced: plan again
            total = decoded
            idx, (hh, ww) = video_plan(total, native, height, width, fps, max_pixels)
            frames, _ = _decode_frames(path, idx)
    except MediaError:
        raise
    except Exception as e:
        _fail("video", path, where, f"{type(e).__name__}: {e}")
    if len(frames) != len(set(idx)):
        _fail("video", path, where, f"decoded {len(frames)} of the {len(set(idx))} frames to sample")
    clip = torch.from_numpy(np.stack([frames[i] for i in idx])).permute(0, 3, 1, 2)
    clip = resize(clip, [hh, ww], interpolation=InterpolationMode.BICUBIC, antialias=True)
    out = np.ascontiguousarray(clip.permute(0, 2, 3, 1).numpy())
    meta = {"fps": native, "total_num_frames": total, "duration": total / native,
            "frames_indices": idx, "video_backend": "pyav", "sampled_fps": fps}
    return out, meta


def video_metadata(meta: dict) -> dict:
    """The fields of transformers' VideoMetadata (what vLLM and the HF processors read)."""
    keys = ("total_num_frames", "fps", "duration", "frames_indices", "video_backend")
    return {k: meta[k] for k in keys if k in meta}
