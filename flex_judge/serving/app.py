"""The judge server's FastAPI app: OpenAI-compatible chat completions over the async vLLM engine.

Each request is validated, its media resolved by the media policy, rendered and decoded by the
`flex` model's own code (off the event loop, in worker threads), and handed to the engine on its
own the moment it is ready: vLLM schedules it into the running batch (continuous batching).

- A request that fails fails alone: its own refusal (validation, limits, media, the model's
  processor or the engine's input checks) is a 4xx naming its problem; nothing is shared between
  requests but the engine.
- Limits (serving.limits) answer 4xx before any decoding or tokenizing work.
- Admission: at most `max_queue` requests are in flight (waiting in vLLM's scheduler included);
  beyond, 503 with Retry-After, sent after the body is read so that the client gets the answer
  instead of a connection reset.
- A client that goes away cancels its work: its request is aborted in the engine (streamed or not).
- GET /stats: the counters and the engine's unfinished requests (for operators and the tests).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from flex_judge.serving.limits import MediaLimits, PromptBudget
from flex_judge.serving.media import MediaPolicy
from flex_judge.serving.protocol import ReasoningSplitter, RequestError, parse_chat
from flex_models.errors import FlexRuntimeError
from flex_tasks.parsing import split_answer

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
    max_queue: int = 1024
    max_tokens_cap: int = 4096
    default_max_tokens: int = 4096
    raw_content: bool = False
    log_requests: Path | None = None
    read_timeout_s: float = 30.0
    remote_timeout_s: float = 10.0
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 600.0
    max_video_frames: int = 36_000
    max_prompt_tokens: int | None = None  # None: the model's context - 1
    retry_after_s: int = 1


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


class ClientGone(FlexRuntimeError):
    """The client closed the connection; its work was cancelled."""


async def _until_disconnect(receive) -> None:
    """Returns when the client has closed the connection (the body already read)."""
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\",:;()<>\[\]]+){2,}")
_ADDR = re.compile(r" at 0x[0-9a-fA-F]+")


def _safe(msg: str, limit: int = 300) -> str:
    """One line of an engine / processor message for the client: paths and addresses removed."""
    line = (msg or "").strip().splitlines()[0] if (msg or "").strip() else ""
    return _ADDR.sub("", _PATH.sub("<path>", line))[:limit]


def engine_error(e: BaseException) -> RequestError | None:
    """The client's answer for an exception of the engine's generate(), or None (an internal
    error, 500). By class name, so that vLLM versions with other module layouts map alike:
    - EngineDeadError: 503 (the engine has stopped);
    - GracefulHTTPError (vLLM's admission control): its own status (503) with Retry-After;
    - VLLMClientError / ValueError (vLLM's input validation, e.g. a prompt longer than the context):
      400 with vLLM's message;
    - EngineGenerateError caused by a ValueError (the model's HF processor refused the request's
      media, e.g. an image with an aspect ratio over 200 for Qwen2.5): 400 with the innermost
      message, which says what is wrong with the input."""
    names = {c.__name__ for c in type(e).__mro__}
    if "EngineDeadError" in names:
        return RequestError("the inference engine has stopped; the server must be restarted", status=503,
                            code="engine_dead", type="server_error")
    if "GracefulHTTPError" in names:
        status = int(getattr(e, "http_status", 503))
        return RequestError(_safe(getattr(e, "message", str(e))), status=status, code="engine_busy",
                            type="server_busy", headers={"Retry-After": "1"} if status == 503 else None)
    if "VLLMClientError" in names or isinstance(e, ValueError):
        code = "context_length_exceeded" if "maximum" in str(e) and "length" in str(e) else "invalid_request"
        return RequestError(_safe(str(e)) or type(e).__name__, code=code)
    if "EngineGenerateError" in names:
        cause, seen, inner = e, set(), None
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, ValueError) or "VLLMClientError" in {c.__name__ for c in type(cause).__mro__}:
                inner = cause
            cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        if inner is not None:
            return RequestError(f"the model's input processor refused the request: {_safe(str(inner))}",
                                code="processor_refused")
    return None


def create_app(backend, frontend, settings: ServeSettings, tokenizer=None, max_model_len: int | None = None):
    """`backend`: an AsyncVLLMBackend (async `generate(Prepared, request_id)`, `stream_text`);
    `frontend`: the flex model's request path (flex_judge.serving.frontend.FlexFrontEnd);
    `tokenizer` / `max_model_len`: for the prompt-length limit (default: the engine's)."""
    app = FastAPI(title="flex-judge judge server", docs_url=None, redoc_url=None, openapi_url=None)
    media = MediaPolicy(settings.media_root, settings.allow_remote_media, settings.max_body_bytes,
                        settings.remote_timeout_s)
    limits = MediaLimits(settings.max_image_pixels, settings.max_audio_seconds, settings.max_video_frames)
    engine = getattr(backend, "engine", None)
    if max_model_len is None and engine is not None:
        max_model_len = engine.model_config.max_model_len
    budget = None
    if max_model_len:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(engine.model_config.tokenizer)  # our own copy: thread safety
            tokenizer.model_max_length = 2**62  # it counts; its "longer than the model" warning is ours to give
        limit = min(settings.max_prompt_tokens or max_model_len - 1, max_model_len - 1)
        budget = PromptBudget(tokenizer, limit, max_model_len)
    reqlog = RequestLog(settings.log_requests)
    state = {"inflight": 0, "requests": 0, "errors": 0, "busy": 0, "disconnected": 0, "started": time.time()}
    retry_after = {"Retry-After": str(max(1, int(settings.retry_after_s)))}

    @app.exception_handler(RequestError)
    async def _request_error(request, e: RequestError):
        return JSONResponse(error_body(str(e), e.type, e.code), status_code=e.status, headers=e.headers)

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

    @app.get("/stats")
    async def stats():
        """Counters since start-up and the engine's unfinished requests (vLLM's own count: a
        request aborted after its client went away leaves it)."""
        unfinished = engine.get_num_unfinished_requests() if engine is not None else None
        return {"inflight": state["inflight"], "requests": state["requests"], "errors": state["errors"],
                "busy_503": state["busy"], "disconnected": state["disconnected"], "engine_unfinished": unfinished,
                "max_queue": settings.max_queue, "uptime_s": round(time.time() - state["started"], 3)}

    def _prepare(req, rid):
        """Render, limits (prompt length, media headers), then decode: a refusal costs no decoding."""
        where = f"request {rid}"
        try:
            planned = frontend.plan(req.messages, where, req.gen_kwargs)
            if budget is not None:
                budget.check(planned.prompt)
            limits.check(planned)
            return frontend.decode(planned)
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

    async def _work(raw: bytes, rid: str):
        """Parse, fetch, prepare and (not streamed) generate one request: its answer dict, or
        (req, prepared) for a stream."""
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("the request body is not valid JSON", code="invalid_json") from None
        req = await asyncio.to_thread(parse_chat, body, media, settings.max_items, settings.default_max_tokens,
                                      settings.max_tokens_cap)
        await media.fetch_all(req.messages)
        p = await asyncio.to_thread(_prepare, req, rid)
        if req.stream:
            return req, p
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

    async def _unless_disconnected(request, coro):
        """Run `coro` while watching the connection: a client that goes away cancels it (the
        engine request is aborted by the cancellation) and raises ClientGone."""
        work = asyncio.ensure_future(coro)
        watch = asyncio.ensure_future(_until_disconnect(request.receive))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (work, watch):
                if not t.done():
                    t.cancel()
            if not work.done():
                with contextlib.suppress(BaseException):
                    await work  # let its cancellation (the engine abort) run before we answer
        if work.cancelled():
            raise ClientGone
        return work.result()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        state["requests"] += 1
        if state["inflight"] >= settings.max_queue:
            state["busy"] += 1
            with contextlib.suppress(RequestError, ClientDisconnect):
                # read (and drop) the body first: closing a connection with unread data resets it,
                # and the client would see a reset instead of this answer
                await read_body(request, settings.max_body_bytes, settings.read_timeout_s)
            raise RequestError(f"the server has {settings.max_queue} requests in flight; retry later", status=503,
                               code="queue_full", type="server_busy", headers=retry_after)
        state["inflight"] += 1
        handed_over = False
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        try:
            raw = await read_body(request, settings.max_body_bytes, settings.read_timeout_s)
            res = await _unless_disconnected(request, _work(raw, rid))
            if isinstance(res, tuple):
                req, p = res
                handed_over = True
                return StreamingResponse(_stream(req, p, rid), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            return res
        except RequestError:
            state["errors"] += 1
            raise
        except (ClientGone, ClientDisconnect):
            state["disconnected"] += 1
            log.info("flex-judge serve: %s: the client went away; its work was cancelled", rid)
            return JSONResponse(error_body("client closed the request", "invalid_request_error", "client_closed"),
                                status_code=499)
        finally:
            if not handed_over:
                state["inflight"] -= 1

    async def _generate(p, rid):
        try:
            return await backend.generate(p, rid)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - classified: the request's fault (4xx) or ours (500)
            mapped = engine_error(e)
            if mapped is None:
                raise
            raise mapped from None

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
        except (asyncio.CancelledError, GeneratorExit):
            # the client went away (Starlette cancels the stream on http.disconnect): closing
            # stream_text aborts the engine request
            state["disconnected"] += 1
            raise
        except Exception as e:  # noqa: BLE001
            mapped = engine_error(e)
            state["errors"] += 1
            if mapped is None:
                log.exception("flex-judge serve: stream %s failed", rid)
                mapped = RequestError("internal server error", status=500, code="internal_error", type="server_error")
            yield f"data: {json.dumps(error_body(str(mapped), mapped.type, mapped.code))}\n\n"
        finally:
            state["inflight"] -= 1
        yield "data: [DONE]\n\n"

    app.state.flex = state
    return KeyGuard(app, settings.api_key)
