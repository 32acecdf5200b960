#!/usr/bin/env python3
"""The judge server (`flex-judge judge serve`) against vLLM alone, on the inference benchmark's workload.

The requests are the ones `benchmarks/inference_gpu.py --parts raw` sends to `LLM.generate`
(benchmarks/gpu/task: the VL-RewardBench system prompt, one 448x448 image, question + two answers,
temperature 0.6, top_p 0.95, up to 512 new tokens, no per-request seed), here as OpenAI chat bodies
with the image as a PNG file inside the server's `--allowed-media-root`. All of them are posted at
once by `benchmarks/serve_load.py` (one client per request), so the engine sees the same queue as
`LLM.generate` does. Reported: the server's throughput over the raw run's (`serve_over_raw`, from
`--raw-json`, the same session), p50 / p99 latency, the server's start-up, and a check that the
server's prompt for the first request has as many tokens as the raw run's mean.

    python benchmarks/serve_gpu.py --workdir /root/flexbench --n 1024 --raw-json R/h1_raw.json --out-json R/h1_serve.json
    (benchmarks/gpu/h1_session.sh, stage `serve`; CPU smoke: --ckpt TINY --n 8 --max-tokens 8)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "gpu" / "task"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies_for(n: int, words: int, image: int, max_tokens: int, media: Path) -> list[dict]:
    import utils  # benchmarks/gpu/task/utils.py: the raw run's docs

    media.mkdir(parents=True, exist_ok=True)
    out = []
    for doc in utils.make_docs(n, words, image):
        path = media / f"{doc['image_seed']}.png"
        if not path.exists():
            utils.doc_to_visual(doc)[0].save(path)
        out.append({"model": "judge", "temperature": 0.6, "top_p": 0.95, "max_tokens": max_tokens,
                    "messages": [{"role": "system", "content": utils.system_prompt()},
                                 {"role": "user", "content": [{"type": "image_url", "image_url": {"url": str(path)}},
                                                              {"type": "text", "text": utils.doc_to_text(doc)}]}]})
    return out


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> float:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return time.time()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server was not ready within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--ckpt", type=Path, help="default: WORKDIR/ckpt-7b (the inference benchmark's random 7B)")
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--words", type=int, default=60)
    ap.add_argument("--image", type=int, default=448)
    ap.add_argument("--concurrency", type=int, help="default: n (every request at once, as LLM.generate gets them)")
    ap.add_argument("--model-args", default="limit_mm_per_prompt=image:1;video:0", help="the raw run's engine settings")
    ap.add_argument("--raw-json", type=Path, help="inference_gpu.py --parts raw results of the same session")
    ap.add_argument("--log-dir", type=Path)
    ap.add_argument("--out-json", type=Path, required=True)
    a = ap.parse_args(argv)
    from serve_load import run_load

    ckpt = a.ckpt or a.workdir / "ckpt-7b"
    log_dir = a.log_dir or a.workdir
    log_dir.mkdir(parents=True, exist_ok=True)
    media = a.workdir / "serve-media"
    t0 = time.time()
    bodies = bodies_for(a.n, a.words, a.image, a.max_tokens, media)
    res: dict = {"n": a.n, "max_tokens": a.max_tokens, "bodies_s": round(time.time() - t0, 2),
                 "machine": os.environ.get("FLEXBENCH_MACHINE"), "date": time.strftime("%Y-%m-%d")}
    key, port = secrets.token_hex(16), _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "flex_judge.cli", "judge", "serve", str(ckpt), "--port", str(port),
           "--api-key", key, "--allowed-media-root", str(media), "--max-queue", str(2 * a.n),
           "--max-tokens-cap", str(a.max_tokens), "--model-args", a.model_args]
    log = open(log_dir / "server.log", "w")
    spawn = time.time()
    server = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        res["startup_s"] = round(wait_ready(url, server, 600) - spawn, 2)
        import httpx

        probe = dict(bodies[0], max_tokens=1)
        r = httpx.post(url + "/v1/chat/completions", json=probe, headers={"Authorization": f"Bearer {key}"},
                       timeout=120)
        r.raise_for_status()
        res["prompt_tokens_first"] = r.json()["usage"]["prompt_tokens"]
        load = asyncio.run(run_load(url, bodies, None, concurrency=a.concurrency or a.n, requests=a.n,
                                    time_limit=540, api_key=key))
        res["load"] = load
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            res["shutdown_rc"] = server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            server.kill()
            res["shutdown_rc"] = "killed after 90 s"
        log.close()
    load = res["load"]
    res["judgments_per_s"] = load["requests_per_s"]
    if a.raw_json and a.raw_json.exists():
        raw = json.loads(a.raw_json.read_text())["parts"]["raw"]
        main_run = raw["runs"]["main"]
        raw_s = main_run["end"] - main_run["submit"]
        res["raw"] = {"generate_s": raw_s, "judgments_per_s": main_run["requests"] / raw_s,
                      "out_tokens_per_s": main_run["out_tokens"] / raw_s,
                      "prompt_tokens_mean": main_run["prompt_tokens_mean"], "engine_init_s":
                      raw["events"]["init_end"] - raw["events"]["init_start"]}
        res["serve_over_raw"] = res["judgments_per_s"] / res["raw"]["judgments_per_s"]
        res["serve_over_raw_tokens"] = load["completion_tokens_per_s"] / res["raw"]["out_tokens_per_s"]
    a.out_json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "load"}))
    print(json.dumps({k: load[k] for k in ("ok", "errors", "lost", "wall_s", "requests_per_s", "p50_s", "p99_s")}))
    return 0 if load["errors"] == 0 and load["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
