"""The judge server (`flex-judge judge serve` = `python -m flex_judge.serving`) for real: a uvicorn
process over vLLM's async engine on the tiny checkpoints, spoken to over HTTP with httpx.

- security: no key / wrong key, media outside the root (absolute, `..`, file://, a symlink inside the
  root pointing out, /etc/passwd), remote URLs, a 30 MB body, a chunked body over the limit, a
  stalled upload, too many items, malformed JSON and wrong types: each a clean 4xx JSON error with
  no file content and no path in it;
- continuous batching: a short request sent while a long one decodes finishes first;
- streaming (SSE, reasoning / content split) gives the non-streamed answer;
- load: 64 concurrent clients, 256 requests, every answer equal to the in-process engine's;
- prompt parity: the prompt token ids the server's engine used equal those the in-process `flex`
  model (backend=vllm) feeds its engine, for image, multi-image, video (VL) and audio with the
  released scaling (Omni);
- SIGTERM stops the server cleanly.
One server per checkpoint per module (start-up ~30-60 s on 2 cores)."""
import asyncio
import base64
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from flex_judge.serving import ReasoningSplitter, split_answer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
KEY = "test-key-0123456789"
SECRET = "TOP-SECRET-CONTENT-42"
AUTH = {"Authorization": f"Bearer {KEY}"}
SYSTEM = "You are a judge. Think in <think> </think> and answer in <answer> </answer>."
IMAGE_PIXELS, VIDEO_FRAMES, AUDIO_SECONDS = 4_000_000, 200, 60  # the test servers' limits


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_client():
    spec = importlib.util.spec_from_file_location("serve_load", REPO / "benchmarks" / "serve_load.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_clip(path, n_frames: int, rate: int, width: int, height: int):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            frame = np.full((height, width, 3), i * 7 % 255, dtype=np.uint8)
            frame[:, : i % width] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


class Server:
    def __init__(self, ckpt, root: Path, log: Path, *extra):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = log.with_suffix(".out")
        cmd = [sys.executable, "-m", "flex_judge.serving", str(ckpt), "--port", str(self.port), "--api-key", KEY,
               "--allowed-media-root", str(root), "--model-args", "dtype=float32", "--log-requests", str(log), *extra]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(cmd, stdout=open(self.out, "w"), stderr=subprocess.STDOUT, env=env, cwd=REPO)
        t0 = time.time()
        while time.time() - t0 < 400:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.out.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    self.startup_s = time.time() - t0
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        raise TimeoutError("server did not start")

    def post(self, body, headers=AUTH, **kw):
        return httpx.post(self.url + "/v1/chat/completions", json=body, headers=headers, timeout=120, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """root/ (images, a 22.05 kHz wav, a clip, a symlink pointing out) and outside/secret.png."""
    import soundfile as sf
    from PIL import Image

    base = tmp_path_factory.mktemp("serving")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_text(SECRET)
    (root / "leak.png").symlink_to(outside / "secret.png")
    (root / "sub").mkdir()
    for name in ("red_square.png", "blue_circle.png"):
        (root / name).write_bytes((REPO / "examples" / "data" / name).read_bytes())
    Image.fromarray((np.random.RandomState(0).rand(56, 84, 3) * 255).astype("uint8")).save(root / "noise.png")
    t = np.arange(22050) / 22050
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050)
    write_clip(root / "clip.mp4", 30, 10, 64, 48)
    return {"root": root, "outside": outside, "base": base}


@pytest.fixture(scope="module")
def vl_server(tiny_vl, media):
    s = Server(tiny_vl, media["root"], media["base"] / "vl_requests.jsonl", "--max-body-mb", "2", "--max-items", "16",
               "--max-queue", "96", "--max-tokens-cap", "512", "--read-timeout", "3",
               "--max-image-pixels", str(IMAGE_PIXELS), "--max-video-frames", str(VIDEO_FRAMES))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def offline_vl(tiny_vl):
    from flex_models.model import FlexJudge

    return FlexJudge(pretrained=str(tiny_vl), backend="vllm", dtype="float32")


def data_url(path: Path, mime="image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode()


def body_for(user_parts, **kw):
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user_parts}],
            "temperature": 0, "seed": 1, **kw}


def assert_clean_error(r, status=None, root=None):
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    if status is not None:
        assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "code"} and err["message"]
    for bad in (SECRET, "root:x:0", "Traceback", "/etc", "/tmp", str(root or "/nonexistent-root"), "File \""):
        assert bad not in r.text, (bad, r.text)
    return err


# ------------------------------------------------------------------ security
def test_auth(vl_server):
    assert httpx.get(vl_server.url + "/health").json() == {"status": "ok"}  # no key needed
    assert httpx.get(vl_server.url + "/v1/models").status_code == 401
    assert httpx.get(vl_server.url + "/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(vl_server.url + "/v1/models", headers={"Authorization": KEY}).status_code == 401  # no scheme
    r = httpx.get(vl_server.url + "/v1/models", headers=AUTH)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == Path(str(vl_server.proc.args[3])).name
    r = vl_server.post(body_for("hi", max_tokens=2), headers={})
    assert_clean_error(r, 401)
    assert r.json()["error"]["type"] == "authentication_error"
    assert_clean_error(httpx.get(vl_server.url + "/nope", headers=AUTH), 404)
    assert httpx.get(vl_server.url + "/nope").status_code == 401  # unknown routes are not open either


def _image(url):
    return body_for([{"type": "image_url", "image_url": {"url": url}}, "judge it"], max_tokens=2)


@pytest.mark.parametrize("case", [
    "/etc/passwd", "file:///etc/passwd", "ABS_OUTSIDE", "../outside/secret.png", "sub/../../outside/secret.png",
    "ROOT/../outside/secret.png", "leak.png", "FILE_LEAK", "/nonexistent/none.png", "file://evil.example/etc/passwd",
    "http://127.0.0.1:9/x.png", "ftp://example.com/x.png", "gopher://x", "/etc/passwd\x00.png"])
def test_media_outside_the_root_is_refused(vl_server, media, case):
    root, outside = media["root"], media["outside"]
    url = {"ABS_OUTSIDE": str(outside / "secret.png"), "ROOT": None, "FILE_LEAK": f"file://{root}/leak.png"}.get(case, case)
    if case.startswith("ROOT/"):
        url = str(root) + case[4:]
    assert_clean_error(vl_server.post(_image(url)), root=root)


def test_outside_refusal_does_not_say_whether_the_file_exists(vl_server, media):
    msgs = {json.dumps(vl_server.post(_image(u)).json()) for u in
            ("/etc/passwd", "/etc/no-such-file-xyz", str(media["outside"] / "secret.png"), "leak.png", "../nope.png")}
    assert len(msgs) == 1, msgs
    for kind, part in (("audio", {"type": "audio_url", "audio_url": {"url": "/etc/passwd"}}),
                       ("video", {"type": "video_url", "video_url": {"url": "/etc/passwd"}})):
        assert_clean_error(vl_server.post(body_for([part, "x"], max_tokens=2)), 403)


def test_media_inside_the_root_and_data_urls_are_read(vl_server, media):
    root = media["root"]
    for url in ("red_square.png", str(root / "red_square.png"), f"file://{root}/red_square.png", "sub/../red_square.png",
                data_url(root / "red_square.png")):
        r = vl_server.post(_image(url))
        assert r.status_code == 200, (url, r.text)
    assert_clean_error(vl_server.post(_image("missing.png")), 404)
    assert_clean_error(vl_server.post(_image("data:image/png;base64,@@@notbase64")), 400)
    assert_clean_error(vl_server.post(_image("data:image/png;base64," + base64.b64encode(b"not an image").decode())), 400)


@pytest.mark.parametrize("raw, field", [
    (b"{not json", "JSON"), (b"[1, 2]", "JSON object"), (b'{"messages": "hi"}', "'messages'"),
    (b'{"messages": []}', "'messages'"),
    (b'{"messages": [{"role": "tool", "content": "x"}]}', "messages[0].role"),
    (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    (b'{"messages": [{"role": "user", "content": [{"type": "file"}]}]}', "messages[0].content[0].type"),
    (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}', "messages[0].content[0].text"),
    (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 3}}]}]}', "image_url.url"),
    (b'{"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}', "input_audio.data"),
    (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "'temperature'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}', "'max_tokens'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "'max_tokens'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "top_p": 2}', "'top_p'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stop": [1]}', "'stop'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "n": 2}', "'n'"),
    (b'{"messages": [{"role": "user", "content": "x"}], "seed": true}', "'seed'"),
])
def test_malformed_requests_name_the_field(vl_server, raw, field):
    r = httpx.post(vl_server.url + "/v1/chat/completions", content=raw,
                   headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    err = assert_clean_error(r, 400)
    assert field in err["message"], err


def test_size_and_item_limits(vl_server):
    big = b'{"messages": [{"role": "user", "content": "' + b"x" * (30 * 2**20) + b'"}]}'  # 30 MB
    assert_clean_error(httpx.post(vl_server.url + "/v1/chat/completions", content=big, headers=AUTH, timeout=60), 413)

    def chunks():  # no Content-Length: the limit (2 MB) is enforced while the body streams in
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 2**17
        yield b'"}]}'

    assert_clean_error(httpx.post(vl_server.url + "/v1/chat/completions", content=chunks(), headers=AUTH, timeout=60), 413)
    many = {"messages": [{"role": "user", "content": "x"}] * 17}
    assert vl_server.post(many).status_code == 413
    parts = {"messages": [{"role": "user", "content": ["x"] * 17}]}
    assert vl_server.post(parts).status_code == 413
    four = body_for([{"type": "image_url", "image_url": {"url": "red_square.png"}}] * 4 + ["x"], max_tokens=2)
    err = assert_clean_error(vl_server.post(four), 400)  # limit_mm_per_prompt: 3 images
    assert "limit_mm_per_prompt" in err["message"]
    # the server still answers (none of the above hurt it)
    assert vl_server.post(body_for("still fine", max_tokens=2)).status_code == 200


def test_stalled_upload_times_out(vl_server):
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", vl_server.port), timeout=30) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"messages\"")
        reply = s.recv(65536).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 408"), reply[:200]
    assert time.time() - t0 < 20


# ------------------------------------------------------------------ behaviour
def test_reasoning_splitter_any_chunking():
    text = "<think>A is better, B </thin is not.</think><answer>A</answer>"
    for cut in range(1, len(text)):
        for step in (1, 3, 7):
            sp, pieces = ReasoningSplitter(), []
            chunks = [text[:cut]] + [text[i:i + step] for i in range(cut, len(text), step)]
            for c in chunks:
                pieces += sp.feed(c)
            pieces += sp.flush()
            got = {k: "".join(v for kk, v in pieces if kk == k) for k in ("reasoning_content", "content")}
            assert got == {"reasoning_content": "A is better, B </thin is not.", "content": "<answer>A</answer>"}
    sp = ReasoningSplitter()
    assert sp.feed("no tags at all") + sp.flush() == [("reasoning_content", "no tags at all")]


def test_prompt_budget_counts_exactly_or_a_proven_lower_bound(tiny_vl):
    """PromptBudget (the server's prompt-length limit): a prompt of at most CHUNK characters is
    counted exactly (= the tokenizer's own count); a longer one in chunks, less SLACK per cut, never
    more than the exact count; a prompt too long in characters is refused untokenized."""
    import random

    from transformers import AutoTokenizer

    from flex_judge.serving.limits import PromptBudget
    from flex_judge.serving.protocol import RequestError

    tok = AutoTokenizer.from_pretrained(str(tiny_vl))
    exact = lambda t: len(tok(t, add_special_tokens=False)["input_ids"])
    rng = random.Random(0)
    words = ["hello", "world", "判断", "  ", "\n\n", "it's", "<answer>", "A", "1234567", "—", "...", "éclair"]
    budget = PromptBudget(tok, 10**9, 10**9 + 1)
    for n in (50, 3000, 60_000):
        text = "".join(rng.choice(words) + rng.choice([" ", "", "\n"]) for _ in range(n))
        got = budget.check(text)
        assert got == exact(text) if len(text) <= PromptBudget.CHUNK else exact(text) - 64 <= got <= exact(text)
    small = PromptBudget(tok, 4095, 4096)
    with pytest.raises(RequestError, match="1500000 characters"):
        small.check("word " * 300_000)  # > 4095 x the longest token's characters
    with pytest.raises(RequestError, match="90000 tokens") as e:
        small.check("判断" * 15_000)
    assert e.value.code == "context_length_exceeded" and "4096" in str(e.value)
    assert small.check("a " * 1000) == exact("a " * 1000)


def test_streaming_gives_the_non_streamed_answer(vl_server):
    body = body_for([{"type": "image_url", "image_url": {"url": "noise.png"}}, "rate it"], max_tokens=24)
    plain = vl_server.post(body).json()
    events = []
    with httpx.stream("POST", vl_server.url + "/v1/chat/completions", headers=AUTH, timeout=120,
                      json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content", "") for d in deltas)
    assert len(deltas) > 3  # it streamed
    msg = plain["choices"][0]["message"]
    # the tiny model writes no tags: everything streams as reasoning; non-streamed, it is all content
    assert "</think>" not in plain["choices"][0]["message"]["content"]
    assert (reasoning + content).strip() == msg["content"] and msg["reasoning_content"] == ""
    assert chunks[-1]["usage"] == plain["usage"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


def test_continuous_batching_short_request_passes_a_long_one(vl_server):
    long_body = body_for("write a long review", max_tokens=400, ignore_eos=True, stream=True)
    short_body = body_for("short", max_tokens=4)
    times = {}

    def run_long():
        with httpx.stream("POST", vl_server.url + "/v1/chat/completions", json=long_body, headers=AUTH,
                          timeout=300) as r:
            for line in r.iter_lines():
                if '"reasoning_content"' in line and "first" not in times:
                    times["first"] = time.time()
        times["long_done"] = time.time()

    t = threading.Thread(target=run_long)
    t.start()
    while "first" not in times and t.is_alive():
        time.sleep(0.01)
    time.sleep(0.3)  # the long request is decoding
    t0 = time.time()
    r = vl_server.post(short_body)
    times["short_done"] = time.time()
    t.join()
    assert r.status_code == 200
    assert times["short_done"] < times["long_done"], times  # started later, finished first
    print(f"\ncontinuous batching: short request {times['short_done'] - t0:.2f} s while the long one ran "
          f"{times['long_done'] - times['first']:.2f} s")


def test_load_64_clients_every_answer_its_own(vl_server, offline_vl, media):
    """256 requests (32 distinct greedy bodies, text and image) from 64 concurrent clients: nothing
    lost, nothing mixed up: each answer equals the in-process engine's for its body."""
    root = media["root"]
    imgs = ["red_square.png", "blue_circle.png", "noise.png"]
    flex_msgs, bodies = [], []
    for k in range(32):
        text = f"[Question] which response is better? {k * 37 % 101} {k}"
        if k % 2:
            img = imgs[k % 3]
            flex_msgs.append([{"role": "system", "content": SYSTEM}, {"role": "user", "content": [
                {"type": "image", "url": str(root / img)}, {"type": "text", "text": text}]}])
            bodies.append(body_for([{"type": "image_url", "image_url": {"url": data_url(root / img)}},
                                    {"type": "text", "text": text}], max_tokens=8))
        else:
            flex_msgs.append([{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}])
            bodies.append(body_for(text, max_tokens=8))
    gk = {"temperature": 0, "top_p": 1.0, "until": [], "max_new_tokens": 8, "seed": 1}
    prepared = [offline_vl.prepare(m, where=f"ref {k}", gen_kwargs=gk) for k, m in enumerate(flex_msgs)]
    refs = [o.texts[0] for o in offline_vl.generate_prepared(prepared, progress=False)]
    expects = [dict(zip(("content", "reasoning_content"), split_answer(t))) for t in refs]
    assert len({e["content"] for e in expects}) >= 8  # distinct answers: a mix-up would show
    res = asyncio.run(load_client().run_load(vl_server.url, bodies, expects, concurrency=64, requests=256,
                                             time_limit=240, api_key=KEY))
    print("\nserve_load:", json.dumps({k: res[k] for k in ("ok", "errors", "mismatches", "wall_s", "requests_per_s",
                                                           "p50_s", "p99_s")}))
    assert res["errors"] == 0 and res["lost"] == 0, res
    assert res["ok"] == res["checked"] == 256 and res["mismatches"] == 0, res["first_mismatches"]


def test_1024_connections_queue_or_answer_503_with_retry_after(vl_server):
    """1,024 clients connect at once (issue 26: 768 connection resets on one H200). Through the same
    accept path (uvicorn's backlog and connection limit, the key check), 1,024 concurrent GETs all
    answer 200 (the old connection limit, --max-queue + 64 = 160 here, answered the rest 503). 1,024
    concurrent chat requests against --max-queue 96: every request gets an answer, a 200 or a 503
    with Retry-After (sent after its body was read, so never a reset): zero connection errors."""
    async def gets():
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1100), timeout=60) as c:
            async def one():
                try:
                    return (await c.get(vl_server.url + "/v1/models", headers=AUTH)).status_code
                except httpx.TransportError as e:
                    return type(e).__name__
            return await asyncio.gather(*(one() for _ in range(1024)))

    t0 = time.time()
    codes = asyncio.run(gets())
    assert codes.count(200) == 1024, {c: codes.count(c) for c in set(codes)}
    t_get = time.time() - t0
    t0 = time.time()
    body = body_for("busy", max_tokens=8)
    res = asyncio.run(load_client().run_load(vl_server.url, [body], None, concurrency=1024, requests=1024,
                                             time_limit=120, api_key=KEY, timeout=120))
    print(f"\n1,024 GETs {t_get:.1f} s; 1,024 chat posts {time.time() - t0:.1f} s:",
          json.dumps({k: res[k] for k in ("ok", "statuses", "connection_errors", "busy_503", "wall_s")}))
    assert res["connection_errors"] == 0 and res["lost"] == 0, res["first_errors"]
    assert set(res["statuses"]) <= {"200", "503"} and sum(res["statuses"].values()) == 1024, res
    assert res["busy_503"] >= 1 and res["busy_503_without_retry_after"] == 0, res
    assert res["ok"] >= 96 - 10, res
    assert vl_server.post(body_for("after", max_tokens=2)).status_code == 200
    stats = httpx.get(vl_server.url + "/stats", headers=AUTH).json()
    assert stats["busy_503"] >= res["busy_503"] and stats["inflight"] == 0


# ------------------------------------------------------------------ prompt parity
def _offline_prompt_ids(model, flex_messages, doc=None):
    from vllm import SamplingParams

    from flex_models.backends.vllm_backend import vllm_prompt

    p = model.prepare(flex_messages, where="parity", doc=doc or {}, gen_kwargs={"temperature": 0, "max_new_tokens": 6})
    out = model.backend.llm.generate([vllm_prompt(p)], SamplingParams(max_tokens=6, temperature=0), use_tqdm=False)[0]
    return list(out.prompt_token_ids), model.backend._text(out.outputs[0], p.spec)


def _server_prompt_ids(server, parts, **kw):
    r = server.post(body_for(parts, max_tokens=6, return_prompt_token_ids=True, **kw))
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["usage"]["prompt_tokens"] == len(data["prompt_token_ids"])
    return data["prompt_token_ids"], data


def _check_parity(server, model, parts, flex_user, doc=None):
    ids, data = _server_prompt_ids(server, parts)
    ref_ids, ref_text = _offline_prompt_ids(model, [{"role": "system", "content": SYSTEM},
                                                    {"role": "user", "content": flex_user}], doc)
    assert ids == ref_ids
    assert data["choices"][0]["message"]["content"] == split_answer(ref_text)[0]  # greedy: the same text too
    return ids


def test_prompt_parity_vl_image_multi_image_video(vl_server, offline_vl, media):
    root = media["root"]
    one = _check_parity(vl_server, offline_vl, [{"type": "image_url", "image_url": {"url": data_url(root / "noise.png")}},
                                                "[Question] rate"],
                        [{"type": "image", "url": str(root / "noise.png")}, {"type": "text", "text": "[Question] rate"}])
    two = _check_parity(vl_server, offline_vl,
                        [{"type": "image_url", "image_url": {"url": "noise.png"}}, "A vs ",
                         {"type": "image_url", "image_url": {"url": data_url(root / "red_square.png")}}, "B"],
                        [{"type": "image", "url": str(root / "noise.png")}, {"type": "text", "text": "A vs "},
                         {"type": "image", "url": str(root / "red_square.png")}, {"type": "text", "text": "B"}])
    vid = _check_parity(vl_server, offline_vl,
                        [{"type": "video_url", "video_url": {"url": "clip.mp4", "fps": 2.0, "max_pixels": 224 * 224}},
                         "rate the video"],
                        [{"type": "video", "url": str(root / "clip.mp4")}, {"type": "text", "text": "rate the video"}],
                        doc={"flex_video": {"fps": 2.0, "max_pixels": 224 * 224}})
    assert len(two) > len(one) and len(vid) > len(one)  # the media are in the prompt


@pytest.fixture(scope="module")
def omni_server(tiny_omni, media):
    s = Server(tiny_omni, media["root"], media["base"] / "omni_requests.jsonl", "--max-audio-seconds", str(AUDIO_SECONDS))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def offline_omni(tiny_omni):
    # module-scoped on purpose: an in-process vLLM engine that is collected mid-module tears down
    # vLLM's process-global parallel state under the other one (offline_vl)
    from flex_models.model import FlexJudge

    return FlexJudge(pretrained=str(tiny_omni), backend="vllm", dtype="float32")


def test_prompt_parity_omni_audio_released_scaling(omni_server, offline_omni, media):
    root, model = media["root"], offline_omni
    assert model.args.audio_scaling == "released"
    wav = base64.b64encode((root / "tone.wav").read_bytes()).decode()
    flex_user = [{"type": "text", "text": "Here is the speech: "}, {"type": "audio", "url": str(root / "tone.wav")}]
    a = _check_parity(omni_server, model, ["Here is the speech: ", {"type": "input_audio",
                                                                     "input_audio": {"data": wav, "format": "wav"}}],
                      flex_user)
    b = _check_parity(omni_server, model, ["Here is the speech: ", {"type": "audio_url", "audio_url": {"url": "tone.wav"}}],
                      flex_user)
    assert a == b
    img = _check_parity(omni_server, model, [{"type": "image_url", "image_url": {"url": "noise.png"}}, "rate"],
                        [{"type": "image", "url": str(root / "noise.png")}, {"type": "text", "text": "rate"}])
    assert len(img) > 10
    # the released scaling is what the model's loader gives the engine: int16 range for audio resampled
    # from 22.05 kHz (the server runs the same FlexJudge.decode, MediaCache(audio_scaling))
    p = model.prepare([{"role": "system", "content": SYSTEM}, {"role": "user", "content": flex_user}], where="scale",
                      gen_kwargs={"temperature": 0, "max_new_tokens": 6})
    assert np.abs(p.media["audio"][0]).max() > 100


# ------------------------------------------------------------------ the async backend's sync interface
def test_async_backend_sync_stream_equals_offline_backend(tiny_vl, offline_vl, media):
    """AsyncVLLMBackend.generate(list) / .stream (the interface the `flex` model uses for data
    parallelism) give the offline backend's outputs, pulling the lazy iterator a window at a time."""
    from flex_models.args import parse_args
    from flex_models.backends.vllm_async import AsyncVLLMBackend

    root = media["root"]
    msgs = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": [
        {"type": "image", "url": str(root / ("noise.png" if k % 2 else "red_square.png"))},
        {"type": "text", "text": f"item {k}"}]}] for k in range(8)]
    gk = {"temperature": 0, "max_new_tokens": 6, "until": ["zz"]}
    prepared = [offline_vl.prepare(m, where=f"doc {k}", gen_kwargs=gk) for k, m in enumerate(msgs)]
    ref = offline_vl.generate_prepared(prepared, progress=False)
    args = parse_args({"pretrained": str(tiny_vl), "backend": "vllm", "dtype": "float32", "stream_window": 3})
    backend = AsyncVLLMBackend(args, offline_vl.checkpoint)
    try:
        out = backend.generate(prepared, progress=False)
        assert [o.texts for o in out] == [o.texts for o in ref]
        assert [o.token_ids for o in out] == [o.token_ids for o in ref]
        assert [o.prompt_tokens for o in out] == [o.prompt_tokens for o in ref]
        pulled = []

        def lazy():
            for k, p in enumerate(prepared):
                pulled.append(k)
                yield k, p

        got = {}
        for k, o in backend.stream(lazy(), total=len(prepared), progress=False):
            if not got:
                assert len(pulled) <= 4  # a window of 3 in flight (+ the one being pulled)
            got[k] = o.texts
        assert got == {k: o.texts for k, o in enumerate(ref)}
        it = backend.stream(enumerate(prepared), progress=False)
        next(it)
        it.close()  # a consumer that stops early leaves a clean engine: the next call still works
        assert backend.generate(prepared[:2], progress=False)[1].texts == ref[1].texts
    finally:
        backend.close()


# ------------------------------------------------------------------ issue 26: failing alone, limits, disconnects
def _png(w: int, h: int, colour="red") -> str:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def _timed_posts(url: str, bodies: list, timeout: float = 120):
    """[(status, json, seconds)] of bodies posted at once."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(bodies) + 1), timeout=timeout) as c:
        async def one(b, delay):
            await asyncio.sleep(delay)
            t = time.perf_counter()
            r = await c.post(url + "/v1/chat/completions", json=b, headers=AUTH)
            return r.status_code, r.json(), time.perf_counter() - t
        return await asyncio.gather(*(one(b, d) for b, d in bodies))


def test_a_request_the_processor_refuses_fails_alone(vl_server, media):
    """One image the model's processor refuses (6000x20: Qwen2.5's aspect ratio limit is 200) and one
    that is not an image, sent with 30 innocent requests at once: the two get a 400 naming their
    problem (before: a 500 'internal server error'), the 30 get their answers."""
    good = data_url(media["root"] / "noise.png")
    bad = [body_for([{"type": "image_url", "image_url": {"url": _png(6000, 20)}}, "judge it"], max_tokens=4),
           body_for([{"type": "image_url", "image_url": {"url": "data:image/png;base64," +
                                                          base64.b64encode(b"GIF89a garbage").decode()}}, "x"], max_tokens=4)]
    innocent = [body_for([{"type": "image_url", "image_url": {"url": good}}, f"judge item {k}"], max_tokens=4)
                for k in range(30)]
    out = asyncio.run(_timed_posts(vl_server.url, [(b, 0) for b in bad[:1] + innocent[:15] + bad[1:] + innocent[15:]]))
    codes = [c for c, _, _ in out]
    bad_out = [out[0], out[16]]
    good_out = out[1:16] + out[17:]
    assert [c for c, _, _ in good_out] == [200] * 30, codes
    assert all(j["choices"][0]["message"]["content"] is not None for _, j, _ in good_out)
    (c1, j1, _), (c2, j2, _) = bad_out
    assert c1 == 400 and "aspect ratio" in j1["error"]["message"] and j1["error"]["code"] == "processor_refused", j1
    assert c2 == 400 and j2["error"]["code"] == "invalid_media", j2
    for _, j, _ in bad_out:
        assert "0x" not in j["error"]["message"] and "/tmp" not in j["error"]["message"], j
    stats = httpx.get(vl_server.url + "/stats", headers=AUTH).json()
    assert stats["engine_unfinished"] == 0 and stats["inflight"] == 0, stats


def test_a_prompt_longer_than_the_context_is_refused_at_once(vl_server):
    """The tiny model's context is 4,096 tokens. 1.5 MB of text (refused from its length in characters,
    untokenized), 30,000 CJK characters (90,000 tokens: tokenized once, then refused) and a prompt that
    an image pushes over the context (the engine's own check): each a 400 'context_length_exceeded'
    (before: 500) in well under a second of server time, while another client's request, sent at the
    same time, is answered."""
    small = body_for("a short one", max_tokens=4)
    cases = [body_for("word " * 300_000, max_tokens=4), body_for("判断" * 15_000, max_tokens=4)]
    out = asyncio.run(_timed_posts(vl_server.url, [(b, 0) for b in cases] + [(small, 0.05)]))
    for code, j, dt in out[:2]:
        assert code == 400 and j["error"]["code"] == "context_length_exceeded", j
        assert "4096" in j["error"]["message"], j
        assert dt < 5, dt
    assert out[2][0] == 200 and out[2][2] < 30, out[2]
    # near the edge: the text fits, the image's tokens (64 at the tiny processor's max_pixels) do not ->
    # the engine's own check refuses it, also a 400
    count = lambda k: vl_server.post(body_for("a " * k, max_tokens=1)).json()["usage"]["prompt_tokens"]
    p1, p2 = count(1000), count(2000)
    k = int((4096 - 24 - (2 * p1 - p2)) * 1000 / (p2 - p1))
    assert 4096 - 40 < count(k) < 4096  # served: it fits
    img = {"type": "image_url", "image_url": {"url": _png(224, 224, "blue")}}
    err = assert_clean_error(vl_server.post(body_for([img, "a " * k], max_tokens=1)), 400)
    assert err["code"] == "context_length_exceeded" and "4096" in err["message"], err


def test_image_and_video_limits_answer_413_before_decoding(vl_server, media, tmp_path):
    """--max-image-pixels 4,000,000: a 2100x2100 image (a 20 KB PNG of 4.4 M pixels) is refused from its
    header; 1900x1900 is decoded and judged. --max-video-frames 200: a 240-frame clip in the media root
    is refused from its container, the 30-frame clip is judged."""
    t0 = time.time()
    err = assert_clean_error(vl_server.post(_image(_png(2100, 2100))), 413)
    assert err["code"] == "image_too_large" and str(IMAGE_PIXELS) in err["message"], err
    assert time.time() - t0 < 5
    assert vl_server.post(_image(_png(1900, 1900))).status_code == 200
    write_clip(media["root"] / "long.mp4", 240, 10, 32, 32)
    video = lambda name: body_for([{"type": "video_url", "video_url": {"url": name, "fps": 1.0}}, "rate"], max_tokens=2)
    err = assert_clean_error(vl_server.post(video("long.mp4")), 413)
    assert err["code"] == "video_too_long" and "240 frames" in err["message"] and "long.mp4" not in err["message"], err
    assert vl_server.post(video("clip.mp4")).status_code == 200


def test_audio_limit_is_read_from_the_header_before_resampling(omni_server, media):
    """A 1 Hz WAV of 40 KB lasts 20,000 s: resampled to 16 kHz it would be 1.2 GB of float32 (issue 26:
    200 KB asked for 5.96 GiB). --max-audio-seconds 60 refuses it from its header at once; the 1 s
    tone is judged."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(20_000, dtype=np.int16), 1, format="WAV", subtype="PCM_16")
    part = lambda data: {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}
    t0 = time.time()
    r = omni_server.post(body_for([part(buf.getvalue()), "rate the speech"], max_tokens=2))
    err = assert_clean_error(r, 413)
    assert err["code"] == "audio_too_long" and "20000 s" in err["message"] and "60 s" in err["message"], err
    assert time.time() - t0 < 5
    assert omni_server.post(body_for([part((media["root"] / "tone.wav").read_bytes()), "rate"], max_tokens=2)).status_code == 200
    # 10,000 messages (issue 26: a 70,004-token prompt that blocked other clients 50 s): refused by size
    many = {"messages": [{"role": "user", "content": "hello there"}] * 10_000, "max_tokens": 2}
    t0 = time.time()
    assert_clean_error(omni_server.post(many), 413)
    assert time.time() - t0 < 5


def _stats(server) -> dict:
    return httpx.get(server.url + "/stats", headers=AUTH, timeout=10).json()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_goes_away_cancels_its_work(vl_server, stream):
    """A 3,000-token request whose client closes the connection once the engine runs it: the engine's
    unfinished requests (vLLM's own count, GET /stats) drop to 0 within seconds, the server counts
    the disconnect. Before, a non-streamed request kept generating until its 3,000 tokens were done."""
    body = json.dumps(body_for("go on and on", max_tokens=3000, ignore_eos=True, stream=stream)).encode()
    before = _stats(vl_server)
    assert before["engine_unfinished"] == 0, before
    s = socket.create_connection(("127.0.0.1", vl_server.port), timeout=30)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    t0 = time.time()
    while _stats(vl_server)["engine_unfinished"] == 0:
        assert time.time() - t0 < 30
        time.sleep(0.05)
    if stream:
        assert s.recv(4096).startswith(b"HTTP/1.1 200")  # it is streaming
    time.sleep(0.5)
    s.close()
    t0 = time.time()
    while (st := _stats(vl_server))["engine_unfinished"]:
        assert time.time() - t0 < 10, st  # 3,000 tokens take far longer on this CPU
        time.sleep(0.05)
    assert st["disconnected"] == before["disconnected"] + 1 and st["inflight"] == 0, st
    assert vl_server.post(body_for("still here", max_tokens=2)).status_code == 200


def test_1024_clients_through_generation_all_answered_200(omni_server):
    """The default --max-queue (1,024; before: 256, which answered 768 of 1,024 clients 503) queues
    1,024 concurrent generation requests (2 new tokens each): all 200, no 503, no connection error."""
    res = asyncio.run(load_client().run_load(omni_server.url, [body_for("judge", max_tokens=2)], None, concurrency=1024,
                                             requests=1024, time_limit=120, api_key=KEY, timeout=120))
    print("\n1,024 clients through generation:", json.dumps({k: res[k] for k in ("ok", "statuses", "wall_s", "p99_s")}))
    assert res["ok"] == 1024 and res["connection_errors"] == 0 and res["busy_503"] == 0, res


# ------------------------------------------------------------------ the server as the judge's engine
def _judge_requests(judge, img: Path):
    return [judge.compare_request("What shape is shown?", "A red square.", "A blue circle.", [str(img)], run=1),
            judge.score_request("Describe the image.", "A red square.", [str(img)], run=2),
            judge.rank_request("Which colour?", ["Red.", "Blue.", "Green."], run=0)]


def test_remote_judge_equals_the_in_process_judge(vl_server, offline_vl, media):
    """`Judge(RemoteModel(url, key))` runs the protocol code of the in-process judge; the server gets
    the same prompt and seeds, so the seeded sampled texts and parsed verdicts are the same."""
    from flex_judge.judging.api import Judge
    from flex_judge.serving.client import RemoteModel

    gk = {"max_new_tokens": 8}
    local = Judge(offline_vl, gen_kwargs=gk)
    remote = Judge(RemoteModel(vl_server.url, KEY), gen_kwargs=gk)
    img = media["root"] / "red_square.png"
    a, b = local.run(_judge_requests(local, img)), remote.run(_judge_requests(remote, img))
    assert [v.text for v in a] == [v.text for v in b] and all(v.text for v in b)
    assert [(v.ok, v.how, v.value) for v in a] == [(v.ok, v.how, v.value) for v in b]


def test_judge_file_against_a_server_with_its_key(vl_server, media, tmp_path):
    from flex_judge.judging import file as judge_file

    items = tmp_path / "items.jsonl"
    rows = [{"id": "p1", "question": "What shape is shown?", "response_a": "A red square.", "response_b": "A blue circle.",
             "images": [str(media["root"] / "red_square.png")], "gold": "A"},
            {"id": "b1", "question": "Which colour?", "responses": ["Red.", "Blue.", "Green."], "gold": "ACB"}]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judged.jsonl"
    args = [str(items), "--server", vl_server.url, "--max-new-tokens", "8", "--out", str(out), "--no-progress",
            "--media-root", str(media["root"])]  # the images live outside the input file's folder
    assert judge_file.main(args + ["--api-key", KEY]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == ["p1", "b1"] and all(s["text"] for r in recs for s in r["samples"])
    # a wrong key: every row is reported with the server's refusal, nothing is written as judged
    bad_out = tmp_path / "bad.jsonl"
    assert judge_file.main([str(items), "--server", vl_server.url, "--api-key", "wrong", "--out", str(bad_out),
                            "--no-progress", "--media-root", str(media["root"])]) == 0
    summary = json.loads((tmp_path / "bad.summary.json").read_text())
    assert summary["skipped_bad_rows"] == 2 and "answered 401" in summary["bad_rows"][0]["error"]
    assert judge_file.main([str(items), "--out", str(bad_out)]) == 2  # neither --model nor --server


# ------------------------------------------------------------------ shutdown (last: stops the shared server)
def test_sigterm_stops_the_server_and_its_engine(vl_server):
    long_body = body_for("long", max_tokens=500, ignore_eos=True)
    result = {}

    def run():
        try:
            result["status"] = httpx.post(vl_server.url + "/v1/chat/completions", json=long_body, headers=AUTH,
                                          timeout=120).status_code
        except httpx.HTTPError as e:
            result["error"] = type(e).__name__

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.0)
    children = [int(x) for x in subprocess.run(["pgrep", "-P", str(vl_server.proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    assert children  # the engine core process
    t0 = time.time()
    vl_server.proc.send_signal(signal.SIGTERM)
    rc = vl_server.proc.wait(timeout=90)
    t.join(timeout=30)
    assert rc == 0, vl_server.out.read_text()[-2000:]
    time.sleep(1.0)
    for pid in children:  # the engine core process is gone too
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid
    assert time.time() - t0 < 60
    assert "stopped" in vl_server.out.read_text()
    assert result  # the in-flight request got an answer or a closed connection, no hang
    with pytest.raises(httpx.HTTPError):
        httpx.get(vl_server.url + "/health", timeout=2)
    log = [json.loads(x) for x in Path(str(vl_server.proc.args[vl_server.proc.args.index("--log-requests") + 1]))
           .read_text().splitlines()]
    assert log and all({"id", "received", "prompt", "output", "content"} <= set(e) for e in log)
    assert not any("base64," in json.dumps(e["received"]) for e in log)  # media elided in the log
