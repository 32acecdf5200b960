"""A remote Flex-Judge server (`flex-judge judge serve`) in the place of the in-process model.

`RemoteModel(url, api_key)` answers the two calls `flex_judge.judging.api.Judge` makes of a model:
`prepare(messages, where, doc, gen_kwargs)` turns the protocol's flex messages into an OpenAI
chat body (media sent as base64 data, so the server decodes the same bytes the in-process model
would read; videos as paths, which the server resolves inside its media root), and
`generate_prepared(bodies)` posts them concurrently and returns each reply's whole text
(`return_text`: <think> included, for the protocol's parser). So `flex-judge judge FILE --server URL`
and `Judge(RemoteModel(...))` judge with the same protocol code as the in-process path; every rank
of a multi-process run can use the same server.
"""
from __future__ import annotations

import asyncio
import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path

from flex_models.errors import FlexRuntimeError

KEY_ENV = "FLEX_JUDGE_API_KEY"


class RemoteError(FlexRuntimeError, RuntimeError):
    """The server refused a request or could not be reached; the message is the server's."""


@dataclass
class RemoteOutput:
    texts: list
    prompt_tokens: int | None = None


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _image_part(url) -> dict:
    if isinstance(url, (str, Path)):
        p = Path(url)
        data, mime = p.read_bytes(), f"image/{(p.suffix.lstrip('.') or 'png').lower()}"
    elif isinstance(url, (bytes, bytearray)):
        data, mime = bytes(url), "image/png"
    else:  # a PIL image: lossless PNG
        buf = io.BytesIO()
        url.save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    return {"type": "image_url", "image_url": {"url": _data_url(data, mime)}}


def _audio_part(url, where: str) -> dict:
    if isinstance(url, (str, Path)):
        p = Path(url)
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(p.read_bytes()).decode(),
                                                       "format": p.suffix.lstrip(".").lower() or "wav"}}
    if isinstance(url, (bytes, bytearray)):
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(bytes(url)).decode(), "format": "wav"}}
    if isinstance(url, dict) and "array" in url and "sampling_rate" in url:
        import numpy as np
        import soundfile as sf

        buf = io.BytesIO()  # float32 WAV: the samples arrive exactly as they were
        sf.write(buf, np.asarray(url["array"], dtype=np.float32), int(url["sampling_rate"]), format="WAV",
                 subtype="FLOAT")
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(buf.getvalue()).decode(), "format": "wav"}}
    raise RemoteError(f"{where}: audio of type {type(url).__name__} cannot be sent to a server "
                      "(a path, WAV bytes or {array, sampling_rate})")


def to_openai(messages: list, where: str = "", video_hints: dict | None = None) -> list:
    out = []
    for m in messages:
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        converted = []
        for part in parts:
            kind = part.get("type")
            if kind == "text":
                converted.append({"type": "text", "text": part.get("text", "")})
            elif kind == "image":
                converted.append(_image_part(part.get("url", part.get("image"))))
            elif kind == "audio":
                converted.append(_audio_part(part.get("url", part.get("audio")), where))
            elif kind == "video":
                url = part.get("url", part.get("video"))
                if not isinstance(url, (str, Path)):
                    raise RemoteError(f"{where}: a video is sent to a server as a path inside its media root")
                hints = {k: v for k, v in {**(video_hints or {}), **part}.items() if k in ("fps", "max_pixels")}
                converted.append({"type": "video_url", "video_url": {"url": str(Path(url).resolve()), **hints}})
            else:
                raise RemoteError(f"{where}: message part type {kind!r} cannot be sent to a server")
        out.append({"role": m["role"], "content": converted})
    return out


class RemoteModel:
    """The model side of `flex_judge.judging.api.Judge`, on a remote `flex-judge judge serve`."""

    def __init__(self, url: str, api_key: str | None = None, concurrency: int = 64, timeout: float = 3600.0,
                 max_new_tokens: int | None = None):
        self.url = url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key if api_key is not None else os.environ.get(KEY_ENV)
        self.concurrency, self.timeout, self.max_new_tokens = concurrency, timeout, max_new_tokens

    def prepare(self, messages, where: str = "", doc=None, gen_kwargs=None) -> dict:
        g = dict(gen_kwargs or {})
        doc = doc if isinstance(doc, dict) else {}
        body = {"messages": to_openai(messages, where, doc.get("flex_video")), "return_text": True,
                "temperature": float(g.get("temperature") or 0.0), "top_p": float(g.get("top_p", 1.0))}
        max_new = g.get("max_new_tokens", g.get("max_tokens"))
        if self.max_new_tokens is not None:
            max_new = min(int(max_new), self.max_new_tokens) if max_new is not None else self.max_new_tokens
        if max_new is not None:
            body["max_tokens"] = int(max_new)
        seed = g.get("seed", doc.get("flex_seed"))
        if seed is not None:
            body["seed"] = int(seed)
        stop = g.get("until", g.get("stop"))
        if stop:
            body["stop"] = [stop] if isinstance(stop, str) else list(stop)
        return body

    def generate_prepared(self, bodies: list[dict], progress: bool = False) -> list[RemoteOutput]:
        return asyncio.run(self._post_all(bodies))

    async def _post_all(self, bodies: list[dict]) -> list[RemoteOutput]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout, limits=limits) as c:

            async def one(body):
                async with gate:
                    try:
                        r = await c.post("/v1/chat/completions", json=body)
                    except httpx.HTTPError as e:
                        raise RemoteError(f"judge server {self.url}: {type(e).__name__}: {e}") from None
                if r.status_code != 200:
                    try:
                        msg = r.json()["error"]["message"]
                    except Exception:  # noqa: BLE001 - not the server's JSON error
                        msg = r.text[:300]
                    raise RemoteError(f"judge server {self.url} answered {r.status_code}: {msg}")
                data = r.json()
                return RemoteOutput(texts=[data["text"]], prompt_tokens=(data.get("usage") or {}).get("prompt_tokens"))

            return list(await asyncio.gather(*(one(b) for b in bodies)))
