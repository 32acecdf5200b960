"""The OpenAI chat protocol of the judge server: request validation, OpenAI -> flex message
conversion, sampling fields -> the flex model's gen_kwargs, and the reply's answer / reasoning split.

Every refusal is a :class:`RequestError` naming the field at fault; no message ever carries a
server path, file content or a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flex_models.errors import FlexJudgeError
from flex_tasks.parsing import split_answer  # noqa: F401  (the one <think>/<answer> splitter, re-exported)

ROLES = ("system", "user", "assistant")
PART_TYPES = ("text", "image_url", "input_audio", "audio_url", "video_url")


class RequestError(FlexJudgeError, ValueError):
    """A request the server refuses: HTTP `status`, OpenAI-style error `type` and `code`."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request",
                 type: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.type, self.headers = status, code, type, headers


class ReasoningSplitter:
    """Streams text deltas into ("reasoning_content" | "content", text) pieces: reasoning until
    </think> (a leading <think> dropped), then content (vLLM's reasoning-parser convention). A
    tail that could be the start of a tag is held back until the next delta shows what it is."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self):
        self.pending, self.started, self.in_reasoning = "", False, True

    @staticmethod
    def _holdback(text: str, tag: str) -> int:
        for n in range(min(len(tag) - 1, len(text)), 0, -1):
            if tag.startswith(text[-n:]):
                return n
        return 0

    def feed(self, delta: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.in_reasoning:
            return [("content", delta)] if delta else []
        text = self.pending + delta
        if not self.started:
            stripped = text.lstrip()
            if self.OPEN.startswith(stripped):  # maybe "<think>" still arriving
                self.pending = text
                return out
            if stripped.startswith(self.OPEN):
                text = stripped[len(self.OPEN):]
            self.started = True
        i = text.find(self.CLOSE)
        if i >= 0:
            self.in_reasoning, self.pending = False, ""
            if text[:i]:
                out.append(("reasoning_content", text[:i]))
            if text[i + len(self.CLOSE):]:
                out.append(("content", text[i + len(self.CLOSE):]))
            return out
        keep = self._holdback(text, self.CLOSE)
        self.pending = text[len(text) - keep:] if keep else ""
        if text[:len(text) - keep]:
            out.append(("reasoning_content", text[:len(text) - keep]))
        return out

    def flush(self) -> list[tuple[str, str]]:
        rest, self.pending = self.pending, ""
        return [("reasoning_content" if self.in_reasoning else "content", rest)] if rest else []


# ------------------------------------------------------------------ request validation
def _num(body: dict, key: str, lo: float | None = None, hi: float | None = None, integer: bool = False):
    v = body.get(key)
    if v is None:
        return None
    kind = int if integer else (int, float)
    if isinstance(v, bool) or not isinstance(v, kind):
        raise RequestError(f"'{key}' must be {'an integer' if integer else 'a number'}", code="invalid_type")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RequestError(f"'{key}' must be in [{lo}, {hi if hi is not None else 'inf'}]", code="invalid_value")
    return v


def _bool(body: dict, key: str) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise RequestError(f"'{key}' must be a boolean", code="invalid_type")
    return v


def gen_kwargs(body: dict, default_max_tokens: int, max_tokens_cap: int) -> dict:
    """OpenAI sampling fields -> the flex model's gen_kwargs (OpenAI defaults: temperature 1,
    top_p 1; max_tokens capped at `max_tokens_cap`). vLLM's extra fields min_tokens and ignore_eos
    are honoured too."""
    t = _num(body, "temperature", 0, 2)
    p = _num(body, "top_p", 0, 1)
    if p == 0:
        raise RequestError("'top_p' must be in (0, 1]", code="invalid_value")
    g: dict = {"temperature": 1.0 if t is None else float(t), "top_p": 1.0 if p is None else float(p)}
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 16:
            raise RequestError("'stop' must be a string or a list of at most 16 strings", code="invalid_type")
    g["until"] = stop or []
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    mt = _num(body, key, 1, None, integer=True)
    g["max_new_tokens"] = min(mt if mt is not None else default_max_tokens, max_tokens_cap)
    seed = _num(body, "seed", 0, 2**63 - 1, integer=True)
    if seed is not None:
        g["seed"] = seed
    if body.get("n", 1) != 1:
        raise RequestError("'n' > 1 is not supported; send one request per sample (with a seed each)",
                           code="unsupported")
    mn = _num(body, "min_tokens", 0, None, integer=True)
    if mn:
        g["min_tokens"] = min(mn, g["max_new_tokens"])
    if _bool(body, "ignore_eos"):
        g["ignore_eos"] = True
    return g


@dataclass
class ChatRequest:
    messages: list  # flex messages (media as the media policy resolved them)
    gen_kwargs: dict
    stream: bool = False
    include_usage: bool = False
    return_prompt_token_ids: bool = False
    return_text: bool = False  # extension: the whole output (<think> included) as `text`, for protocol parsers
    received: list = field(default_factory=list)  # the OpenAI messages, media elided (request log)


def _url_field(part: dict, kind: str, where: str) -> tuple[str, dict]:
    v = part.get(kind)
    extra = {}
    if isinstance(v, dict):
        url = v.get("url")
        extra = v
    else:
        url = v
    if not isinstance(url, str) or not url:
        raise RequestError(f"{where}.{kind}.url must be a non-empty string", code="invalid_type")
    return url, extra


def _video_hints(extra: dict, where: str) -> dict:
    hints = {}
    for k in ("fps", "max_pixels"):
        if extra.get(k) is not None:
            v = extra[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise RequestError(f"{where}.video_url.{k} must be a positive number", code="invalid_type")
            hints[k] = v
    return hints


def parse_chat(body, media, max_items: int, default_max_tokens: int, max_tokens_cap: int) -> ChatRequest:
    """Validate an OpenAI chat body and convert it. `media` (a serving.media.MediaPolicy) turns each
    media reference into what the flex model's loaders read."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", code="invalid_type")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list", code="invalid_type")
    if len(messages) > max_items:
        raise RequestError(f"'messages' has {len(messages)} items; this server accepts at most {max_items}",
                           status=413, code="too_many_items")
    stream = _bool(body, "stream")
    so = body.get("stream_options") or {}
    if not isinstance(so, dict):
        raise RequestError("'stream_options' must be an object", code="invalid_type")
    out, received, n_media = [], [], 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(f"messages[{i}].role must be one of {', '.join(ROLES)}", code="invalid_value")
        content = m.get("content")
        parts = [content] if isinstance(content, str) else content if isinstance(content, list) else None
        if parts is None:
            raise RequestError(f"messages[{i}].content must be a string or a list of parts", code="invalid_type")
        if len(parts) > max_items:
            raise RequestError(f"messages[{i}].content has {len(parts)} parts; this server accepts at most "
                               f"{max_items}", status=413, code="too_many_items")
        flex_parts, seen = [], []
        for j, part in enumerate(parts):
            where = f"messages[{i}].content[{j}]"
            if isinstance(part, str):
                part = {"type": "text", "text": part}
            if not isinstance(part, dict):
                raise RequestError(f"{where} must be a string or an object", code="invalid_type")
            kind = part.get("type")
            if kind == "text":
                if not isinstance(part.get("text", ""), str):
                    raise RequestError(f"{where}.text must be a string", code="invalid_type")
                flex_parts.append({"type": "text", "text": part.get("text", "")})
                seen.append(flex_parts[-1])
                continue
            if kind not in PART_TYPES:
                raise RequestError(f"{where}.type {str(kind)[:40]!r} is not supported; allowed: "
                                   f"{', '.join(PART_TYPES)}", code="invalid_value")
            n_media += 1
            if n_media > max_items:
                raise RequestError(f"the request has more than {max_items} media items", status=413,
                                   code="too_many_items")
            if kind == "input_audio":
                ia = part.get("input_audio")
                if not isinstance(ia, dict) or not isinstance(ia.get("data"), str):
                    raise RequestError(f"{where}.input_audio.data must be a base64 string", code="invalid_type")
                flex_parts.append({"type": "audio", "url": media.base64_bytes(ia["data"], f"{where}.input_audio.data")})
            elif kind == "image_url":
                url, _ = _url_field(part, kind, where)
                flex_parts.append({"type": "image", "url": media.resolve(url, "image", f"{where}.image_url.url")})
            elif kind == "audio_url":
                url, _ = _url_field(part, kind, where)
                flex_parts.append({"type": "audio", "url": media.resolve(url, "audio", f"{where}.audio_url.url")})
            else:
                url, extra = _url_field(part, kind, where)
                flex_parts.append({"type": "video", "url": media.resolve(url, "video", f"{where}.video_url.url"),
                                   **_video_hints(extra, where)})
            seen.append({"type": kind, "elided": True})
        out.append({"role": m["role"], "content": flex_parts})
        received.append({"role": m["role"], "content": content if isinstance(content, str) else seen})
    return ChatRequest(messages=out, gen_kwargs=gen_kwargs(body, default_max_tokens, max_tokens_cap),
                       stream=stream, include_usage=_bool(so, "include_usage") if so else False,
                       return_prompt_token_ids=_bool(body, "return_prompt_token_ids"),
                       return_text=_bool(body, "return_text"), received=received)
