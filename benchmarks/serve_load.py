"""Bounded load client for the judge server (`flex-judge judge serve`): N concurrent clients post
chat bodies until a fixed number of requests is sent or a time limit passes, then one JSON line of
results: throughput, p50 / p99 latency, errors, and answers checked against the expected ones
(no lost or mixed-up answers).

    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --bodies bodies.jsonl \
        [--concurrency 64] [--requests 1024] [--time-limit 600] [--api-key KEY | env FLEX_JUDGE_API_KEY] \
        [--retry-503 N]

The 1,024-client case (issue 26): `--concurrency 1024 --requests 1024` opens 1,024 connections at
once, one request each. `connection_errors` counts transport failures (resets, refused or dropped
connections: requests lost); a 503 is an answer (`busy_503`, and `busy_503_without_retry_after`
for one that does not say when to come back); `--retry-503 N` retries a 503 up to N times after
its Retry-After, as a well-behaved client does, so that `ok == requested` shows nothing was lost.

bodies.jsonl: one chat-completions body per line, or {"body": {...}, "expect": {"content": ...,
"reasoning_content": ...}} to check the answer (send greedy bodies, temperature 0, with a seed, and
take `expect` from an in-process run). Request i sends body i mod len(bodies); each request carries
its index in `user` (echoed nowhere: the check is the answer itself).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path


def load_bodies(path: Path) -> tuple[list[dict], list[dict | None]]:
    bodies, expects = [], []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "body" in row and "messages" not in row:
            bodies.append(row["body"])
            expects.append(row.get("expect"))
        else:
            bodies.append(row)
            expects.append(None)
    return bodies, expects


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[k]


async def run_load(url: str, bodies: list[dict], expects: list | None = None, concurrency: int = 64,
                   requests: int | None = None, time_limit: float = 600.0, api_key: str | None = None,
                   timeout: float = 600.0, retry_503: int = 0) -> dict:
    """Post bodies[i % len] for i < requests (default len(bodies)) from `concurrency` clients; stop
    starting requests after `time_limit` s. Returns the result dict (see the module doc)."""
    import httpx

    n = requests if requests is not None else len(bodies)
    expects = expects or [None] * len(bodies)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    endpoint = url.rstrip("/").removesuffix("/v1") + "/v1/chat/completions"
    next_i = 0
    lat, errors, mismatches, checked, tokens, statuses = [], [], [], 0, 0, {}
    conn_errors, busy, busy_bare, retries = 0, 0, 0, 0
    t0 = time.perf_counter()
    deadline = t0 + time_limit

    async def post(c, i: int, k: int):
        """The final answer of request i (after up to retry_503 retries of a 503), or None."""
        nonlocal conn_errors, busy, busy_bare, retries
        for attempt in range(retry_503 + 1):
            t = time.perf_counter()
            try:
                r = await c.post(endpoint, json=bodies[k], headers=headers,
                                 timeout=max(1.0, min(timeout, deadline - t + 30)))
            except httpx.TransportError as e:  # reset, refused, dropped: the request is lost
                conn_errors += 1
                errors.append({"i": i, "error": type(e).__name__, "detail": str(e)[:120]})
                return None
            except Exception as e:  # noqa: BLE001 - counted, reported
                errors.append({"i": i, "error": type(e).__name__})
                return None
            if r.status_code != 503:
                return r
            busy += 1
            wait = r.headers.get("retry-after")
            if wait is None:
                busy_bare += 1
            if attempt < retry_503:
                retries += 1
                await asyncio.sleep(float(wait) if wait and wait.replace(".", "", 1).isdigit() else 1.0)
        return r

    async def client(c: httpx.AsyncClient):
        nonlocal next_i, checked, tokens
        while next_i < n and time.perf_counter() < deadline:
            i = next_i
            next_i += 1
            k = i % len(bodies)
            t = time.perf_counter()
            r = await post(c, i, k)
            if r is None:
                continue
            dt = time.perf_counter() - t
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code != 200:
                errors.append({"i": i, "status": r.status_code, "body": r.text[:200]})
                continue
            lat.append(dt)
            data = r.json()
            tokens += (data.get("usage") or {}).get("completion_tokens", 0)
            want = expects[k]
            if want is not None:
                checked += 1
                msg = data["choices"][0]["message"]
                got = {key: msg.get(key) for key in want}
                if got != want:
                    mismatches.append({"i": i, "body": k, "got": got, "want": want})

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as c:
        await asyncio.gather(*(client(c) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"url": url, "concurrency": concurrency, "requested": n, "sent": next_i, "ok": len(lat),
            "errors": len(errors), "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "connection_errors": conn_errors, "busy_503": busy, "busy_503_without_retry_after": busy_bare,
            "retries": retries,
            "checked": checked, "mismatches": len(mismatches), "lost": n - next_i,
            "wall_s": round(wall, 3), "requests_per_s": round(len(lat) / wall, 3) if wall else None,
            "completion_tokens_per_s": round(tokens / wall, 1) if wall else None,
            "p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99), "max_s": max(lat) if lat else None,
            "first_errors": errors[:5], "first_mismatches": mismatches[:5]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--bodies", type=Path, required=True, help="JSONL of chat bodies (or {body, expect})")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--requests", type=int, help="requests to send (default: one per body)")
    p.add_argument("--time-limit", type=float, default=600.0, help="stop starting requests after this many s")
    p.add_argument("--api-key", default=os.environ.get("FLEX_JUDGE_API_KEY"))
    p.add_argument("--retry-503", type=int, default=0, help="retry a 503 up to N times after its Retry-After")
    a = p.parse_args(argv)
    bodies, expects = load_bodies(a.bodies)
    if not bodies:
        print("serve_load: no bodies", file=sys.stderr)
        return 2
    res = asyncio.run(run_load(a.url, bodies, expects, a.concurrency, a.requests, a.time_limit, a.api_key,
                               retry_503=a.retry_503))
    print(json.dumps(res))
    return 0 if res["errors"] == 0 and res["mismatches"] == 0 and res["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
