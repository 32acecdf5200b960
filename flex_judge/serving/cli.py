"""`flex-judge judge serve`: the OpenAI-compatible Flex-Judge server (FastAPI + uvicorn over
vLLM's async engine). See docs/serving.md."""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
from pathlib import Path

from flex_models.args import HelpFormatter

KEY_ENV = "FLEX_JUDGE_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _raise_open_files(connections: int) -> None:
    """One descriptor per connection: raise the soft open-files limit toward the hard one when
    the connection bound (+ the engine's own) needs it (a soft limit of 1,024 would stall accept()
    under 1,024 clients)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
        if new < want:
            print(f"flex-judge judge serve: the open-files limit is {new}; --max-connections {connections} may "
                  "need more (ulimit -n)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flex-judge judge serve", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("model", help="Flex-Judge checkpoint (hub id or folder)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on start)")
    p.add_argument("--api-key", help=f"clients must send `Authorization: Bearer KEY` (default: env {KEY_ENV})")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow a non-loopback --host without an API key (anyone who can connect can use it)")
    p.add_argument("--allowed-media-root", type=Path,
                   help="local media paths / file:// URLs are read only inside this folder (default: refused)")
    p.add_argument("--allow-remote-media", action="store_true", help="fetch http(s) media URLs (bounded size and time)")
    p.add_argument("--max-body-mb", type=float, default=20.0, help="largest request body (HTTP 413 beyond)")
    p.add_argument("--max-items", type=int, default=64, help="most messages, parts per message and media per request")
    p.add_argument("--max-queue", type=int, default=1024,
                   help="most requests in flight, waiting in the engine included (HTTP 503 with Retry-After beyond)")
    p.add_argument("--retry-after", type=int, default=1, help="seconds a 503 asks the client to wait (Retry-After)")
    p.add_argument("--backlog", type=int, default=4096,
                   help="listen backlog: connections the kernel queues before they are accepted (capped by "
                        "net.core.somaxconn)")
    p.add_argument("--max-connections", type=int,
                   help="open connections uvicorn serves (beyond: its plain 503 and close; default 4 x --max-queue, "
                        "at least --max-queue + 1024)")
    p.add_argument("--max-tokens-cap", type=int, default=4096, help="max_tokens of every request is capped at this")
    p.add_argument("--max-new-tokens", type=int, help=argparse.SUPPRESS)  # the old server's flag: = --max-tokens-cap
    p.add_argument("--read-timeout", type=float, default=30.0, help="seconds a request body may take to arrive (408)")
    p.add_argument("--max-prompt-tokens", type=int,
                   help="most prompt text tokens (default and upper bound: the model's context - 1; 400 beyond)")
    p.add_argument("--max-image-pixels", type=int, default=40_000_000,
                   help="most pixels of an image (and of a video frame), from its header (413 beyond)")
    p.add_argument("--max-audio-seconds", type=float, default=600.0,
                   help="longest audio clip, from its header, before decoding or resampling (413 beyond)")
    p.add_argument("--max-video-frames", type=int, default=36_000,
                   help="most frames in a video clip (the loader decodes up to its last sampled frame; 413 beyond)")
    p.add_argument("--backend", choices=("auto", "vllm"), default="auto", help="the server runs on vLLM")
    p.add_argument("--model-args", help="more `flex` model_args, e.g. dtype=bfloat16,gpu_memory_utilization=0.4 (default: none)")
    p.add_argument("--data-parallel-size", type=int, default=1, help="vLLM data parallelism (engine replicas)")
    p.add_argument("--served-model-name", help="the id /v1/models reports (default: the checkpoint name)")
    p.add_argument("--raw-content", action="store_true", help="reply with the whole output as content")
    p.add_argument("--log-requests", type=Path, help="append each request's messages, prompt and output to this JSONL file (default: unset, no log)")
    p.add_argument("--forwarded-allow-ips", help="behind a reverse proxy: IPs whose X-Forwarded-* headers are trusted (default: none)")
    p.add_argument("--root-path", default="", help="behind a proxy that serves the API under a path prefix")
    p.add_argument("--graceful-timeout", type=float, default=10.0,
                   help="on SIGTERM/SIGINT, seconds in-flight requests may finish before they are aborted")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    key = a.api_key or os.environ.get(KEY_ENV) or None
    if key is None and not is_loopback(a.host) and not a.insecure_no_auth:
        print(f"flex-judge judge serve: refusing to listen on {a.host} without an API key; give --api-key "
              f"(or env {KEY_ENV}), listen on 127.0.0.1, or pass --insecure-no-auth", file=sys.stderr)
        return 2
    if a.allowed_media_root is not None and not a.allowed_media_root.is_dir():
        print("flex-judge judge serve: --allowed-media-root must be an existing folder", file=sys.stderr)
        return 2
    for name in ("max_items", "max_queue", "max_tokens_cap", "data_parallel_size", "backlog", "max_connections", "retry_after",
                 "max_prompt_tokens", "max_image_pixels", "max_audio_seconds", "max_video_frames"):
        if getattr(a, name) is not None and getattr(a, name) <= 0:
            print(f"flex-judge judge serve: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    from flex_models.args import FlexArgError, parse_args, parse_kv
    from flex_models.family import load_checkpoint

    try:
        raw = parse_kv(a.model_args, "--model-args")
        if raw.get("backend", "vllm") not in ("vllm", "auto"):
            raise FlexArgError("the judge server runs on vLLM: model_args backend must be vllm")
        raw.update(pretrained=a.model, backend="vllm")
        if a.data_parallel_size > 1:
            raw["data_parallel_size"] = a.data_parallel_size
        args = parse_args(raw)
    except ValueError as e:
        print(f"flex-judge judge serve: {e}", file=sys.stderr)
        return 2
    cap = min(a.max_tokens_cap, a.max_new_tokens or a.max_tokens_cap)
    _raise_open_files(a.max_connections or max(4 * a.max_queue, a.max_queue + 1024))
    # bind first: a port in use fails before the engine is built; connections wait until serving
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((a.host, a.port))
    except OSError as e:
        print(f"flex-judge judge serve: cannot listen on {a.host}:{a.port}: {e.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    # listen now: connections made while the engine starts wait in the backlog (uvicorn listens again
    # with the same backlog); without listen() they would be refused
    sock.listen(a.backlog)

    import uvicorn

    from flex_judge.serving.app import ServeSettings, create_app
    from flex_judge.serving.frontend import FlexFrontEnd
    from flex_models.backends.vllm_async import AsyncVLLMBackend

    checkpoint = load_checkpoint(args.pretrained)
    name = a.served_model_name or a.model.rstrip("/").split("/")[-1]
    settings = ServeSettings(served_model_name=name, api_key=key, media_root=a.allowed_media_root,
                             allow_remote_media=a.allow_remote_media, max_body_bytes=int(a.max_body_mb * 2**20),
                             max_items=a.max_items, max_queue=a.max_queue, max_tokens_cap=cap,
                             default_max_tokens=min(args.max_new_tokens, cap), raw_content=a.raw_content,
                             log_requests=a.log_requests, read_timeout_s=a.read_timeout,
                             max_image_pixels=a.max_image_pixels, max_audio_seconds=a.max_audio_seconds,
                             max_video_frames=a.max_video_frames, max_prompt_tokens=a.max_prompt_tokens,
                             retry_after_s=a.retry_after)
    frontend = FlexFrontEnd(args, checkpoint)
    backend = AsyncVLLMBackend(args, checkpoint)
    try:
        app = create_app(backend, frontend, settings)
        kw = {}
        if a.forwarded_allow_ips:
            kw.update(proxy_headers=True, forwarded_allow_ips=a.forwarded_allow_ips)
        # the app's own admission (--max-queue: 503 + Retry-After after reading the body) answers
        # first; uvicorn's limit is the connection bound above it
        max_conn = a.max_connections or max(4 * a.max_queue, a.max_queue + 1024)
        config = uvicorn.Config(app, log_level="warning", access_log=False, root_path=a.root_path,
                                backlog=a.backlog, limit_concurrency=max_conn, timeout_keep_alive=5,
                                timeout_graceful_shutdown=a.graceful_timeout, h11_max_incomplete_event_size=64 * 1024,
                                **kw)
        server = uvicorn.Server(config)
        print(f"flex-judge judge serve: {name} listening on http://{a.host}:{port}/v1 "
              f"(auth {'on' if key else 'OFF'}, media root {'set' if a.allowed_media_root else 'none'})", flush=True)
        # uvicorn handles SIGTERM/SIGINT (stop accepting, let in-flight requests finish for
        # --graceful-timeout s, cancel the rest: their engine requests are aborted), then re-raises the
        # signal to the handler it found: this one, so that the engine is shut down below, not killed
        stopped: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stopped.append(signum))
        server.run(sockets=[sock])
    finally:
        backend.close()
        sock.close()
    print("flex-judge judge serve: stopped", flush=True)
    return 0
