"""The judge server's FastAPI app: OpenAI-compatible chat completions over the async vLLM engine.

Each request is validated, its media resolved by the media policy, rendered and decoded by the
`flex` model's own code (off the event loop, in worker threads), and handed to the engine on its
own the moment it is ready: vLLM schedules it into the running batch (continuous batching). A
request that fails fails alone.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flex_judge.serving.media import MediaPolicy
from flex_judge.serving.protocol import ReasoningSplitter, RequestError, parse_chat, split_answer

log = logging.getLogger("flex_judge.serving")
OPEN_PATHS = ("/health",)  # answered without the API key


@dataclass
class ServeSettings:
    served_model_name: str
    api_key: str | None = None
    media_root: Path | None = None
    allow_remote_media: bool = False
    max_body_bytes: int = 20 * 2**20
    max_items: int = 64
    max_queue: int = 256
    max_tokens_cap: int = 4096
    default_max_tokens: int = 4096
    raw_content: bool = False
    log_requests: Path | None = None
    read_timeout_s: float = 30.0
    remote_timeout_s: float = 10.0


def error_body(message: str, type: str, code: str) -> dict:
    return {"error": {"message": message, "type": type, "code": code}}


async def _send_json(send, status: int, obj: dict, headers: list | None = None):
    data = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class KeyGuard:
    """ASGI middleware: every path but /health needs `Authorization: Bearer KEY` (401 otherwise),
    checked before any of the body is read."""

    def __init__(self, app, key: str | None):
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.key is not None and scope["path"] not in OPEN_PATHS:
            auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                return await _send_json(send, 401, error_body("a valid API key is required (Authorization: Bearer KEY)",
                                                              "authentication_error", "invalid_api_key"),
                                        [(b"www-authenticate", b"Bearer")])
        return await self.app(scope, receive, send)


class RequestLog:
    def __init__(self, path: Path | None):
        self.path, self.lock = path, threading.Lock()

    def write(self, entry: dict):
        if self.path is None:
            return
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


async def read_body(request, limit: int, timeout: float) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (Content-Length or the
    bytes received so far) and with 408 when it is not complete within `timeout` seconds."""
    cl = request.headers.get("content-length")
    if cl is not None:
        if not cl.isdigit():
            raise RequestError("bad Content-Length header", code="invalid_header")
        if int(cl) > limit:
            raise RequestError(f"request body larger than {limit} bytes", status=413, code="body_too_large")
    buf = bytearray()

    async def _read():
        async for chunk in request.stream():
            buf.extend(chunk)
            if len(buf) > limit:
                raise RequestError(f"request body larger than {limit} bytes", status=413, code="body_too_large")

    try:
        await asyncio.wait_for(_read(), timeout)
    except asyncio.TimeoutError:
        raise RequestError(f"the request body did not arrive within {timeout:g} s", status=408,
                           code="read_timeout") from None
    return bytes(buf)


def create_app(backend, frontend, settings: ServeSettings):
    """`backend`: an AsyncVLLMBackend (async `generate(Prepared, request_id)`, `stream_text`);
    `frontend`: the flex model's request path (flex_judge.serving.frontend.FlexFrontEnd)."""
    app = FastAPI(title="flex-judge judge server", docs_url=None, redoc_url=None, openapi_url=None)
    media = MediaPolicy(settings.media_root, settings.allow_remote_media, settings.max_body_bytes,
                        settings.remote_timeout_s)
    reqlog = RequestLog(settings.log_requests)
    state = {"inflight": 0, "requests": 0, "errors": 0, "started": time.time()}

    @app.exception_handler(RequestError)
    async def _request_error(request, e: RequestError):
        return JSONResponse(error_body(str(e), e.type, e.code), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, e):
        kind = {404: ("not_found_error", "not_found"), 405: ("invalid_request_error", "method_not_allowed")}
        t, c = kind.get(e.status_code, ("invalid_request_error", "http_error"))
        return JSONResponse(error_body(str(e.detail), t, c), status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, e):
        return JSONResponse(error_body("invalid request", "invalid_request_error", "invalid_request"), status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request, e):
        log.exception("flex-judge serve: internal error")
        return JSONResponse(error_body("internal server error", "server_error", "internal_error"), status_code=500)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": settings.served_model_name, "object": "model",
                                            "created": int(state["started"]), "owned_by": "flex-judge"}]}

    def _prepare(req, rid):
        try:
            return frontend.prepare(req.messages, f"request {rid}", req.gen_kwargs)
        except RequestError:
            raise
        except Exception as e:  # noqa: BLE001 - the request's own fault; a safe message
            raise RequestError(frontend.safe_message(e), code="invalid_request") from None

    def _reply(req, p, o, rid):
        text = o.texts[0]
        content, reasoning = (text, "") if settings.raw_content else split_answer(text)
        n_out = len(o.token_ids[0]) if o.token_ids else 0
        finish = (o.finish_reasons[0] if getattr(o, "finish_reasons", None) else None) or \
            ("length" if n_out >= p.spec.max_new_tokens else "stop")
        reqlog.write({"id": rid, "received": req.received, "prompt": p.prompt, "output": text, "content": content})
        return text, content, reasoning, n_out, finish

    def _usage(o, n_out, req) -> dict:
        u = {"prompt_tokens": o.prompt_tokens or 0, "completion_tokens": n_out,
             "total_tokens": (o.prompt_tokens or 0) + n_out}
        return u

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if state["inflight"] >= settings.max_queue:
            raise RequestError(f"the server has {settings.max_queue} requests in flight; retry later", status=503,
                               code="queue_full", type="server_busy")
        state["inflight"] += 1
        state["requests"] += 1
        handed_over = False
        try:
            raw = await read_body(request, settings.max_body_bytes, settings.read_timeout_s)
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RequestError("the request body is not valid JSON", code="invalid_json") from None
            rid = f"chatcmpl-{uuid.uuid4().hex}"
            req = await asyncio.to_thread(parse_chat, body, media, settings.max_items, settings.default_max_tokens,
                                          settings.max_tokens_cap)
            await media.fetch_all(req.messages)
            p = await asyncio.to_thread(_prepare, req, rid)
            if req.stream:
                handed_over = True
                return StreamingResponse(_stream(req, p, rid), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            o = await _generate(p, rid)
            text, content, reasoning, n_out, finish = _reply(req, p, o, rid)
            out = {"id": rid, "object": "chat.completion", "created": int(time.time()),
                   "model": settings.served_model_name,
                   "choices": [{"index": 0, "finish_reason": finish,
                                "message": {"role": "assistant", "content": content, "reasoning_content": reasoning}}],
                   "usage": _usage(o, n_out, req)}
            if req.return_prompt_token_ids:
                out["prompt_token_ids"] = list(o.prompt_token_ids)
            if req.return_text:
                out["text"] = text
            return out
        except RequestError:
            state["errors"] += 1
            raise
        finally:
            if not handed_over:
                state["inflight"] -= 1

    async def _generate(p, rid):
        try:
            return await backend.generate(p, rid)
        except ValueError as e:  # vLLM's validation (e.g. a prompt longer than max_model_len)
            raise RequestError(_engine_message(e), code="invalid_request") from None

    async def _stream(req, p, rid):
        created, name = int(time.time()), settings.served_model_name

        def chunk(delta: dict, finish=None, **extra) -> str:
            obj = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

        splitter = None if settings.raw_content else ReasoningSplitter()
        try:
            yield chunk({"role": "assistant", "content": ""})
            final = None
            async for delta, done in backend.stream_text(p, rid):
                if done is not None:
                    final = done
                    break
                pieces = [("content", delta)] if splitter is None else splitter.feed(delta)
                for k, v in pieces:
                    yield chunk({k: v})
            for k, v in (splitter.flush() if splitter else []):
                yield chunk({k: v})
            text, content, reasoning, n_out, finish = _reply(req, p, final, rid)
            extra = {"prompt_token_ids": list(final.prompt_token_ids)} if req.return_prompt_token_ids else {}
            yield chunk({}, finish, **extra)
            if req.include_usage:
                obj = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                       "choices": [], "usage": _usage(final, n_out, req)}
                yield f"data: {json.dumps(obj)}\n\n"
        except ValueError as e:
            yield f"data: {json.dumps(error_body(_engine_message(e), 'invalid_request_error', 'invalid_request'))}\n\n"
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("flex-judge serve: stream %s failed", rid)
            yield f"data: {json.dumps(error_body('internal server error', 'server_error', 'internal_error'))}\n\n"
        finally:
            state["inflight"] -= 1
        yield "data: [DONE]\n\n"

    app.state.flex = state
    return KeyGuard(app, settings.api_key)


def _engine_message(e: Exception) -> str:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return msg[:300]
