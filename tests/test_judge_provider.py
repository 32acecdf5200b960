"""Flex as lmms-eval's LLM judge. End to end: the real lmms-eval CLI runs its own judge-scored
task `llava_in_the_wild` (on a 2-row local copy of its data made here) with `API_TYPE=flex` and
`--launcher_args name=flex,...`: lmms-eval finds the provider and the launcher through
flex-judge's entry point, starts `flex-judge judge serve` on the tiny checkpoint after the
evaluated model ran, and every judge prompt the task built reaches the Flex model unchanged
(only Flex's system prompt is put before it); the judge's answer is what the task scored.
Plus the provider's message rules and the server's OpenAI -> flex message conversion."""
import base64
import io
import json
import os
import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from PIL import Image

from flex_judge.judging import provider as judge_provider
from flex_judge.serving import RequestError, parse_chat, split_answer
from flex_judge.serving.media import MediaPolicy

REPO = Path(__file__).resolve().parents[1]
ROWS = [  # llava-bench-in-the-wild's columns
    {"question_id": "0", "question": "What shape is shown?", "image": "red_square.png", "caption": "A red square on white.",
     "gpt_answer": "A red square.", "category": "conv", "image_id": "a"},
    {"question_id": "1", "question": "What colour is the circle?", "image": "blue_circle.png", "caption": "A blue circle.",
     "gpt_answer": "It is blue.", "category": "detail", "image_id": "b"},
]


def _local_copy(root: Path) -> None:
    """A hub-shaped folder named like the task's dataset_path: datasets loads it from the cwd."""
    import datasets

    cols = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    cols["image"] = [Image.open(REPO / "examples" / "data" / name) for name in cols["image"]]
    feats = datasets.Features({k: datasets.Image() if k == "image" else datasets.Value("string") for k in cols})
    out = root / "lmms-lab-encoder" / "llava-bench-in-the-wild" / "data"
    out.mkdir(parents=True)
    datasets.Dataset.from_dict(cols, features=feats).to_parquet(str(out / "train-00000-of-00001.parquet"))


def _entry_point_path(tmp: Path) -> list[str]:
    """flex-judge's `lmms_eval.models` entry point as installed; a checkout whose installed
    metadata predates it gets the same entry point from a throw-away dist-info."""
    if any(ep.name == "flex_judge_provider" for ep in entry_points(group="lmms_eval.models")):
        return []
    d = tmp / "ep" / "flex_judge_provider_ep-0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: flex-judge-provider-ep\nVersion: 0\n")
    ep_line = next(x for x in (REPO / "pyproject.toml").read_text().splitlines() if x.startswith("flex_judge_provider"))
    (d / "entry_points.txt").write_text("[lmms_eval.models]\n" + ep_line.split("#")[0].replace('"', "") + "\n")
    return [str(tmp / "ep")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
def test_lmms_eval_task_judged_by_flex_through_launcher(tiny_vl, tmp_path):
    _local_copy(tmp_path)
    port, log, out = _free_port(), tmp_path / "judge_requests.jsonl", tmp_path / "results"
    env = dict(os.environ, API_TYPE="flex", FLEX_JUDGE_URL=f"http://127.0.0.1:{port}/v1", FLEX_JUDGE_MAX_TOKENS="8",
               HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), *_entry_point_path(tmp_path), os.environ.get("PYTHONPATH", "")]))
    env.pop("FLEX_JUDGE_SYSTEM", None)
    env.pop("FLEX_JUDGE_API_KEY", None)  # the launcher makes one up for its server
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "flex",
           "--model_args", f"pretrained={tiny_vl},backend=hf,max_new_tokens=8",
           "--tasks", "llava_in_the_wild", "--limit", "2", "--log_samples", "--output_path", str(out),
           "--launcher_args", f"name=flex,model={tiny_vl},port={port},backend=vllm,dtype=float32,max_new_tokens=8,"
           f"log_requests={log}"]
    proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    tail = (proc.stdout + proc.stderr)[-3000:]
    samples = [json.loads(x) for f in out.rglob("*_samples_llava_in_the_wild.jsonl") for x in f.read_text().splitlines()]
    assert len(samples) == 2, tail
    assert log.exists(), tail
    requests = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(requests) == 2
    system = judge_provider.flex_system_prompt()
    by_text = {r["received"][-1]["content"]: r for r in requests}
    for s in samples:
        row = ROWS[int(s["doc_id"])]
        judged = s["gpt_eval_llava_all"]
        content = judged["content"]  # the judge prompt exactly as the task built it
        assert content.startswith(f"[Context]\n{row['caption']}\n\n[Question]\n{row['question']}\n\n"
                                  f"[Assistant 1]\n{row['gpt_answer']}\n\n")
        r = by_text[content]  # ... arrived unchanged, after Flex's system prompt
        assert r["received"] == [{"role": "system", "content": system}, {"role": "user", "content": content}]
        assert r["prompt"] == (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n"
                               "<|im_start|>assistant\n")
        assert judged["review"] == r["content"] == split_answer(r["output"])[0]  # the task scored Flex's reply
    results = json.loads(next(out.rglob("*_results.json")).read_text())
    assert "gpt_eval_llava_all,none" in results["results"]["llava_in_the_wild"]
    with pytest.raises(OSError):  # lmms-eval stopped the judge server after scoring
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_hook_registers_provider_and_launcher(monkeypatch):
    from lmms_eval.llm_judge import ProviderFactory, Request, ServerConfig
    from lmms_eval.llm_judge.launcher import get_launcher

    assert judge_provider.lmms_eval_hook() == []
    launcher = get_launcher("flex")(port=9, model="ckpt", dtype="bfloat16")
    assert launcher.command()[-4:] == ["--backend", "auto", "--model-args", "dtype=bfloat16"]

    monkeypatch.delenv("FLEX_JUDGE_SYSTEM", raising=False)
    monkeypatch.setenv("FLEX_JUDGE_MODEL", "flex")
    monkeypatch.delenv("FLEX_JUDGE_MAX_TOKENS", raising=False)
    p = ProviderFactory.create_provider("flex", ServerConfig(model_name="gpt-4o", max_tokens=128, temperature=0.0))
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    body = p.payload(Request(messages=[{"role": "user", "content": "Score it."}], images=[img]))
    sys_msg, user = body["messages"]
    assert sys_msg == {"role": "system", "content": judge_provider.flex_system_prompt()}
    assert sys_msg["content"].endswith("<answer> answer here </answer>.") and "Now the user" not in sys_msg["content"]
    assert user["content"][1] == {"type": "text", "text": "Score it."}  # text unchanged, after the image
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("flex", 4096, 0.0)
    # the server side decodes the same pixels
    back = _convert(body["messages"])[1]["content"][0]
    assert back["type"] == "image" and Image.open(io.BytesIO(back["url"])).getpixel((3, 3)) == (200, 10, 10)

    own = Request(messages=[{"role": "system", "content": "Be strict."}, {"role": "user", "content": "x"}])
    assert p.prepare_messages(own) == own.messages  # a task's own system prompt is kept, none added
    monkeypatch.setenv("FLEX_JUDGE_SYSTEM", "none")
    monkeypatch.setenv("FLEX_JUDGE_MAX_TOKENS", "64")
    body = p.payload(Request(messages=[{"role": "user", "content": "x"}]))
    assert body["messages"] == [{"role": "user", "content": "x"}] and body["max_tokens"] == 64
    monkeypatch.delenv("FLEX_JUDGE_API_KEY", raising=False)
    assert judge_provider.auth_headers() == {}
    monkeypatch.setenv("FLEX_JUDGE_API_KEY", "k1")
    assert judge_provider.auth_headers() == {"Authorization": "Bearer k1"}


@pytest.mark.parametrize("text, answer, reasoning", [
    ("<think>A is right.</think><answer>8</answer><answer>3</answer>", "8 3", "A is right."),
    ("<think>ok</think>\n0.7", "0.7", "ok"),
    ("just text", "just text", ""),
    ("<think>cut off", "<think>cut off", "cut off"),
])
def test_split_answer(text, answer, reasoning):
    assert split_answer(text) == (answer, reasoning)


def _convert(messages, policy=None):
    return parse_chat({"messages": messages}, policy or MediaPolicy(), 64, 8, 8).messages


def test_server_rejects_bad_messages_clearly():
    with pytest.raises(RequestError, match="allowed: text, image_url, input_audio, audio_url, video_url"):
        _convert([{"role": "user", "content": [{"type": "file"}]}])
    with pytest.raises(RequestError, match="--allow-remote-media") as e:
        _convert([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])
    assert e.value.status == 403
    with pytest.raises(RequestError, match=r"messages\[0\]\.role must be one of"):
        _convert([{"role": "tool", "content": "x"}])
    with pytest.raises(RequestError, match="without --allowed-media-root"):
        _convert([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/etc/hosts"}}]}])
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    msgs = _convert([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, "hi"]}])
    assert [p["type"] for p in msgs[0]["content"]] == ["image", "text"]
    assert msgs[0]["content"][0]["url"] == buf.getvalue()
