"""`flex-judge judge` on tiny checkpoints through the real CLI (issue 26 items 1 and 3, issue 25 item
3). A rerun reuses only records that the same checkpoint, model args, sampling, protocol and row
content produced. A row over a per-row limit (prompt vs context, pixels, audio seconds, video
frames) or with a bad byte costs that row only. stdout is exactly one JSON line. An empty or fully
resumed file builds no engine."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flex_judge.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "examples" / "data" / "red_square.png"
VIDEO = REPO / "flex_tasks" / "fixtures" / "genai_bench" / "videos" / "clip_0_left.mp4"

ROWS = [
    {"id": "p1", "question": "Which answer is right?", "response_a": "Four.", "response_b": "Five.", "gold": "A"},
    {"id": "p2", "question": "What colour is the sky?", "response_a": "Blue.", "response_b": "Green.", "gold": "A"},
    {"id": "p3", "question": "Which shape is shown?", "response_a": "A square.", "response_b": "A circle.",
     "images": ["img/sq.png"], "gold": "A"},
    {"id": "s1", "question": "Rate the answer.", "response": "Paris is the capital of France.", "gold": 4},
]


def _items(tmp: Path, rows=ROWS) -> Path:
    (tmp / "img").mkdir(exist_ok=True)
    shutil.copy(IMG, tmp / "img" / "sq.png")
    path = tmp / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _judge(capsys, items, out, ckpt, *extra) -> dict:
    rc = cli(["judge", str(items), "--model", str(ckpt), "--backend", "hf", "--samples", "1", "--out", str(out),
              "--no-progress", *extra])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    line = json.loads(cap.out)  # exactly one JSON document on stdout
    return {**line, "err": cap.err, "summary": json.loads(out.with_name(out.stem + ".summary.json").read_text())}


def _texts(out: Path) -> dict:
    return {r["id"]: [s["text"] for s in r["samples"]] for r in map(json.loads, out.read_text().splitlines())}


@pytest.fixture(scope="module")
def tiny_vl_b(tmp_path_factory):
    from flex_models.tiny import make_tiny

    return make_tiny("vl", tmp_path_factory.mktemp("tiny_b") / "vl", seed=1)


@pytest.mark.e2e
def test_resume_reuses_only_what_the_same_model_settings_and_row_produced(tiny_vl, tiny_vl_b, tmp_path, capsys):
    items, out = _items(tmp_path), tmp_path / "judged.jsonl"
    first = _judge(capsys, items, out, tiny_vl, "--max-new-tokens", "4")
    assert first["resume"] == {"reused": 0, "rejudged": {}, "dropped": 0, "n_rejudged": 0}
    assert first["summary"]["judged_now"] == 4

    again = _judge(capsys, items, out, tiny_vl, "--max-new-tokens", "4")  # the same command: all reused
    assert again["resume"]["reused"] == 4 and again["summary"]["judged_now"] == 0

    # another checkpoint (other seed's weights): nothing of the first model's is presented as its own
    other = _judge(capsys, items, out, tiny_vl_b, "--max-new-tokens", "4")
    assert other["resume"] == {"reused": 0, "rejudged": {"model changed": 4}, "dropped": 0, "n_rejudged": 4}
    assert other["summary"]["judged_now"] == 4
    assert "4 records of" in other["err"] and "judged.replaced.jsonl" in other["err"]
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 4 and len({r["model"]["checkpoint"] for r in recs}) == 1  # only the new model's records
    assert recs[0]["model"]["checkpoint"] != first["summary"]["model"]["checkpoint"]
    assert len((tmp_path / "judged.replaced.jsonl").read_text().splitlines()) == 4  # the old ones kept aside

    # another --max-new-tokens on the same checkpoint: judged again too
    longer = _judge(capsys, items, out, tiny_vl_b, "--max-new-tokens", "6")
    assert longer["resume"]["rejudged"] == {"model changed": 4}
    # other sampling settings (samples) and another protocol
    more = _judge(capsys, items, out, tiny_vl_b, "--max-new-tokens", "6", "--pair-protocol", "vl_rewardbench")
    assert more["resume"] == {"reused": 1, "rejudged": {"settings changed": 3}, "dropped": 0, "n_rejudged": 3}

    # rows edited under the same ids: those judged again (old gold not reused), the others reused;
    # an image replaced under the same path is an edited row too; a removed row is dropped
    rows = [dict(ROWS[0], question="Which answer is wrong?"), dict(ROWS[1], gold="B"), ROWS[2]]
    _items(tmp_path, rows)
    from PIL import Image

    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "img" / "sq.png")
    edited = _judge(capsys, items, out, tiny_vl_b, "--max-new-tokens", "6", "--pair-protocol", "vl_rewardbench")
    assert edited["resume"] == {"reused": 0, "rejudged": {"row changed": 3}, "dropped": 1, "n_rejudged": 3}
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(recs) == ["p1", "p2", "p3"] and recs["p2"]["gold"] == "B"
    assert edited["summary"]["modes"]["pair"]["items"] == 3 and "score" not in edited["summary"]["modes"]
    after_edit = _texts(out)
    _items(tmp_path, rows[:2])  # unchanged rows reused, texts the same
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "img" / "sq.png")
    last = _judge(capsys, items, out, tiny_vl_b, "--max-new-tokens", "6", "--pair-protocol", "vl_rewardbench")
    assert last["resume"] == {"reused": 2, "rejudged": {}, "dropped": 1, "n_rejudged": 0}
    assert _texts(out) == {k: after_edit[k] for k in ("p1", "p2")}


def test_empty_file_needs_no_engine_and_no_checkpoint(tmp_path):
    """Nothing to judge: exit 0 with the summary, one JSON line on stdout, no checkpoint read."""
    items = tmp_path / "empty.jsonl"
    items.write_text("\n")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "flex_judge.cli", "judge", str(items), "--model", str(tmp_path / "nope"),
                        "--no-progress"], capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["speed"]["judgments"] == 0 and s["resume"]["reused"] == 0
    assert wall < 30  # an engine build alone takes longer; mostly interpreter start-up


@pytest.mark.e2e
def test_fully_resumed_file_builds_no_engine(tiny_vl, tmp_path, capsys):
    items, out = _items(tmp_path, ROWS[:2]), tmp_path / "judged.jsonl"
    _judge(capsys, items, out, tiny_vl, "--max-new-tokens", "4")
    code = ("import sys; from flex_judge.judging.file import main; rc = main(sys.argv[1:]); "
            "print('LOADED', sorted(m for m in ('transformers', 'vllm', 'torch.cuda') if m in sys.modules), "
            "file=sys.stderr); raise SystemExit(rc)")
    p = subprocess.run([sys.executable, "-c", code, str(items), "--model", str(tiny_vl), "--backend", "hf",
                        "--samples", "1", "--max-new-tokens", "4", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["resume"]["reused"] == 2
    assert "LOADED []" in p.stderr  # neither transformers nor vLLM was even imported


@pytest.mark.e2e
def test_vllm_logs_go_to_stderr_stdout_is_one_json_line(tiny_vl, tmp_path):
    items = _items(tmp_path, ROWS[:1])
    p = subprocess.run([sys.executable, "-m", "flex_judge.cli", "judge", str(items), "--model", str(tiny_vl),
                        "--backend", "vllm", "--samples", "1", "--max-new-tokens", "4", "--out",
                        str(tmp_path / "o.jsonl")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(p.stdout.splitlines()) == 1, p.stdout[:2000]
    assert json.loads(p.stdout)["speed"]["judgments"] == 1
    assert "INFO" in p.stderr  # vLLM's own logging went to stderr


@pytest.mark.e2e
def test_rows_over_the_limits_and_bad_bytes_cost_only_their_row(tiny_vl, tmp_path, capsys):
    items = _items(tmp_path)
    sf.write(tmp_path / "img" / "slow.wav", np.zeros(200_000, dtype=np.int16), 1, subtype="PCM_16")  # 1 Hz: 55 h
    shutil.copy(VIDEO, tmp_path / "img" / "clip.mp4")
    huge = {"id": "huge", "question": "x" * (20 * 2**20), "response_a": "a", "response_b": "b"}
    lines = [json.dumps(ROWS[0]), json.dumps(huge), b'{"id": "bytes", "question": "caf\xe9"}', json.dumps(ROWS[1]),
             json.dumps({"id": "big", "question": "q", "response": "r", "images": ["img/sq.png"]}),
             json.dumps({"id": "slow", "question": "q", "response": "r", "audios": ["img/slow.wav"]}),
             json.dumps({"id": "long", "question": "q", "response": "r", "videos": ["img/clip.mp4"]}),
             json.dumps(ROWS[3])]
    items.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines))  # no final newline
    out = tmp_path / "judged.jsonl"
    t0 = time.perf_counter()
    r = _judge(capsys, items, out, tiny_vl, "--max-new-tokens", "4", "--max-pixels", "1000",
               "--max-video-frames", "2")
    wall = time.perf_counter() - t0
    bad = {b["line"]: b["error"] for b in r["summary"]["bad_rows"]}
    assert sorted(bad) == [2, 3, 5, 6, 7]
    assert bad[2].startswith(f"prompt of {20 * 2**20 + 2} bytes is at least")  # the cheap bound, no tokenizer
    assert "more than the model's context of 4096 tokens" in bad[2]
    assert bad[3].startswith("not UTF-8 (byte 0xe9")
    assert "64x64 = 4096 pixels, over the limit of 1000" in bad[5]
    assert "slow.wav lasts 200000 s (200000 samples at 1 Hz), over the limit of 600 s" in bad[6]
    assert "clip.mp4 has" in bad[7] and "over the limit of 2 (--max-video-frames)" in bad[7]
    for n in sorted(bad):
        assert f"items.jsonl line {n}: " in r["err"]
    assert sorted(_texts(out)) == ["p1", "p2", "s1"]  # the run went on and the rest was written
    assert r["summary"]["rows"] == 8 and r["skipped_bad_rows"] == 5
    assert wall < 120


def test_token_count_rejects_a_prompt_the_byte_bound_lets_through(tiny_vl, tmp_path):
    """Below the cheap bound, the tokenizer decides (a chunk at a time)."""
    from flex_judge.judging.file import Item, Limits, over_limits
    from flex_judge.judging.items import Settings

    lim = Limits.for_checkpoint(str(tiny_vl), {})
    assert lim.context_tokens == 4096 and lim.max_token_bytes > 1
    row = {"question": "the judge " * 3000, "response_a": "a", "response_b": "b"}  # ~30 kB: over 4096 tokens
    it = Item(1, "x", "pair", row, [], None, 2)
    n_bytes = len(row["question"]) + 2
    assert n_bytes / lim.max_token_bytes < 4096  # the byte bound alone cannot refuse it
    why = over_limits(it, Settings(), lim)
    assert why.startswith("prompt of at least") and "context of 4096 tokens" in why
    assert over_limits(Item(1, "y", "pair", dict(row, question="short"), [], None, 2), Settings(), lim) is None
    lim2 = Limits.for_checkpoint(str(tiny_vl), {"max_model_len": "64"})
    assert lim2.context_tokens == 64
