"""`flex-judge judge` on the tiny VL checkpoint through the real `flex-judge` dispatcher and vLLM's
CPU engine: bad rows reported by line and skipped, N samples x both orders with the protocol's
seeds, resume after an interrupted write (same texts as the first run), settings guarded. The
aggregation rules (sign majority, order mapping, mean, rankings) and the summary metrics are
checked on known judge outputs against independently computed values (scipy)."""
import json
import shutil
from pathlib import Path

import pytest
from scipy import stats

from flex_judge.judging import file as judge_file
from flex_judge.judging.api import Judge
from flex_judge.cli import main as cli
from flex_judge.judging.items import Settings, Template, item_requests, record, summarize
from flex_models.render import render
from flex_tasks.protocol import TASKS

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "examples" / "data" / "red_square.png"

ROWS = [
    {"id": "p1", "question": "What shape is shown?", "response_a": "A red square.", "response_b": "A blue circle.",
     "images": ["img/red_square.png"], "gold": "A"},
    {"id": "s1", "question": "Describe the image.", "response": "A red square.", "images": "img/red_square.png", "gold": 4},
    "not json {",
    {"id": "m1", "question": "q", "response": "r", "images": ["img/nowhere.png"]},
    {"id": "b1", "question": "Which colour?", "responses": ["Red.", "Blue.", "Green."], "gold": "ACB"},
    {"id": "p1", "question": "dup", "response": "x"},
    {"id": "g1", "question": "q", "response_a": "a", "response_b": "b", "gold": "maybe"},
    {"id": "a1", "question": "How does it sound?", "response": "Clear.", "audios": ["img/utt.wav"]},  # VL: no audio
]
WAV = REPO / "flex_tasks" / "fixtures" / "somos" / "audios" / "booksent_2012_0000_001.wav"


def _write(tmp: Path) -> Path:
    (tmp / "img").mkdir()
    shutil.copy(IMG, tmp / "img" / "red_square.png")
    shutil.copy(WAV, tmp / "img" / "utt.wav")
    path = tmp / "items.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in ROWS))
    return path


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in out.read_text().splitlines()]


@pytest.mark.e2e
def test_judge_command_end_to_end_and_resume(tiny_vl, tmp_path, capsys):
    items = _write(tmp_path)
    out = tmp_path / "judged.jsonl"
    args = ["judge", str(items), "--model", str(tiny_vl), "--backend", "vllm", "--max-new-tokens", "8",
            "--both-orders", "--out", str(out), "--no-progress"]
    assert cli(args) == 0
    cap = capsys.readouterr()
    for line, what in ((3, "invalid JSON"), (4, "image file not found: " + str(tmp_path / "img" / "nowhere.png")),
                       (6, "duplicate id 'p1' (first on line 1)"), (7, "gold 'maybe' for a pair"),
                       (8, "RenderError: audio input (api request 0 (flex_mllm_judge_score)) cannot be sent to a Qwen2.5-VL")):
        assert f"items.jsonl line {line}: {what}" in cap.err
    assert "judgments/s" in cap.err
    summary = json.loads((tmp_path / "judged.summary.json").read_text())
    assert summary["rows"] == 8 and summary["skipped_bad_rows"] == 5
    assert [b["line"] for b in summary["bad_rows"]] == [3, 4, 6, 7, 8]
    first = {r["id"]: r for r in _records(out)}
    assert list(first) == ["p1", "s1", "b1"]
    # protocol runs = 3 samples, seeds 0..2; pair and batch also in reversed order, score not
    assert [(s["order"], s["run"]) for s in first["p1"]["samples"]] == [("given", k) for k in range(3)] + [("reversed", k) for k in range(3)]
    assert [s["run"] for s in first["s1"]["samples"]] == [0, 1, 2]
    assert summary["modes"]["pair"]["items"] == 1 and summary["modes"]["batch"]["samples"] == 6
    assert summary["speed"]["judgments"] == 15 and summary["speed"]["judgments_per_s"] > 0
    assert json.loads(cap.out)["skipped_bad_rows"] == 5  # stdout: exactly one JSON line

    # interrupted write: the last record half written -> cut; only that item is judged again,
    # with the same seeds, so the same texts come back
    data = out.read_text()
    out.write_text(data[: data.rindex('{"id": "b1"') + 40])
    assert cli(args) == 0
    assert "cut a partial last line" in capsys.readouterr().err
    again = _records(out)
    assert [r["id"] for r in again] == ["p1", "s1", "b1"]
    assert [s["text"] for s in again[2]["samples"]] == [s["text"] for s in first["b1"]["samples"]]
    summary = json.loads((tmp_path / "judged.summary.json").read_text())
    assert (summary["resumed"], summary["judged_now"]) == (2, 1)

    assert summary["resume"] == {"reused": 2, "rejudged": {}, "dropped": 0, "n_rejudged": 0}

    # other settings on the same output: every record would be judged again, none reused (the
    # plan alone, without a third engine build; tests/test_judge_resume.py runs it)
    items_now, _ = judge_file.read_items(items, "auto")
    model = judge_file.model_identity(str(tiny_vl), None, "vllm", {}, 8)
    assert model == summary["model"]
    s2 = Settings(samples=2, both_orders=True)
    reused, reasons, stale = judge_file.plan_resume(out, items_now, s2, model)
    assert (reused, reasons, len(stale)) == ({}, {"settings changed": 3}, 3)
    reused, reasons, _ = judge_file.plan_resume(out, items_now, Settings(both_orders=True), model)
    assert sorted(reused) == ["b1", "p1", "s1"] and reasons == {}
    # a file that is not a judge output is never rewritten: refused before any weights load
    other = tmp_path / "notes.jsonl"
    other.write_text('{"note": "mine"}\n')
    assert cli(args[:-3] + ["--out", str(other)]) == 2
    assert "notes.jsonl line 1: not a judge record" in capsys.readouterr().err


def _verdicts(req, texts):
    j = Judge(model=None)
    return [j._verdict(req, t) for t in texts]


def test_pair_votes_orders_and_position_consistency():
    s = Settings(samples=2, both_orders=True)
    reqs = item_requests(Judge(model=None), s, "pair", {"question": "q", "response_a": "a", "response_b": "b"}, [])
    assert [(rev, r.doc["flex_run"], r.doc["flex_seed"]) for rev, r in reqs] == [(False, 0, 0), (False, 1, 1), (True, 0, 0), (True, 1, 1)]
    # the reversed request shows b first
    assert "[Assistant 1's Answer]\nb\n\n[Assistant 2's Answer]\na" in render(reqs[2][1].messages, "vl").prompt
    texts = ["<think>a wins</think><answer>8</answer><answer>3</answer>",  # given: A
             "<answer>5</answer><answer>5</answer>",                        # given: tie
             "<answer>9</answer><answer>2</answer>",                        # reversed, first shown (b) wins: B
             "garbage"]                                                     # unparsed: no vote
    samples = [(rev, v) for (rev, r), v in zip(reqs, [_verdicts(r, [t])[0] for (_, r), t in zip(reqs, texts)])]
    rec = record("pair", "x", 1, "A", samples, s, 2)
    assert [x["verdict"] for x in rec["samples"]] == ["A", "tie", "B", None]
    assert (rec["verdict"], rec["verdict_given_order"], rec["verdict_reversed_order"]) == ("tie", "A", "B")
    assert rec["position_consistent"] is False and rec["n_parsed"] == 3 and rec["reasoning"] == "a wins"


def test_score_mean_batch_ranking_and_template():
    s = Settings(samples=3, both_orders=True)
    j = Judge(model=None)
    reqs = item_requests(j, s, "score", {"question": "q", "response": "r"}, [])
    assert len(reqs) == 3  # no order for a single response
    rec = record("score", "s", 1, 4.0, [(False, v) for v in _verdicts(reqs[0][1], ["<answer>4</answer>", "<answer>2</answer>", "??"])], s, 1)
    assert rec["verdict"] == 3.0 and rec["n_parsed"] == 2

    reqs = item_requests(j, Settings(samples=1, both_orders=True), "batch", {"question": "q", "responses": ["x", "y", "z"]}, [])
    given = _verdicts(reqs[0][1], ["<answer>2</answer><answer>9</answer><answer>5</answer>"])[0]   # y > z > x
    rev = _verdicts(reqs[1][1], ["<answer>1</answer><answer>7</answer><answer>3</answer>"])[0]     # shown z,y,x: y > x > z
    rec = record("batch", "b", 1, "BCA", [(False, given), (True, rev)], Settings(samples=1, both_orders=True), 3)
    assert rec["verdict_given_order"] == "BCA" and rec["verdict_reversed_order"] == "BAC"
    assert rec["verdict"] == "BCA" and rec["position_consistent"] is False  # means x 2.5, y 8, z 3

    t = Template(system="Judge fairly.", user="Q: {question}\nA: {response_a}\nB: {response_b}\nRef: {reference}")
    reqs = item_requests(j, Settings(samples=1, template=t), "pair",
                         {"question": "q", "response_a": "a", "response_b": "b", "reference": "r"}, [str(IMG)])
    prompt = render(reqs[0][1].messages, "vl").prompt
    assert prompt == ("<|im_start|>system\nJudge fairly.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|>"
                      "<|vision_end|>Q: q\nA: a\nB: b\nRef: r<|im_end|>\n<|im_start|>assistant\n")
    assert reqs[0][1].spec.parser == TASKS["flex_mllm_judge_pair"].parser


def test_summary_metrics_against_scipy():
    def rec(mode, verdict, gold, n_parsed=3, **kw):
        return {"mode": mode, "verdict": verdict, "gold": gold, "n_samples": 3, "n_parsed": n_parsed,
                "parse_ok": verdict is not None, **kw}

    pred, gold = [4.0, 2.5, 3.0, 5.0], [5, 1, 3, 4]
    rs = [rec("score", p, g) for p, g in zip(pred, gold)] + [rec("score", None, 2, n_parsed=0)]
    rs += [rec("pair", "A", "A", position_consistent=True), rec("pair", "tie", "B", position_consistent=False),
           rec("pair", None, "tie", n_parsed=0, position_consistent=None), rec("pair", "B", "B", position_consistent=True)]
    rs += [rec("batch", "ABC", "ABC"), rec("batch", "CBA", "ABC")]
    m = summarize(rs)
    sc = m["score"]
    assert sc["pearson"] == pytest.approx(stats.pearsonr(pred, gold)[0])
    assert sc["spearman"] == pytest.approx(stats.spearmanr(pred, gold)[0])
    assert sc["mae"] == pytest.approx(sum(abs(p - g) for p, g in zip(pred, gold)) / 4)
    assert (sc["items"], sc["item_parse_failures"], sc["sample_parse_failure_rate"]) == (5, 1, pytest.approx(3 / 15))
    pr = m["pair"]
    assert (pr["agreement"], pr["agreement_wo_tie"]) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert (pr["position_consistency"], pr["position_checked"]) == (pytest.approx(2 / 3), 3)
    assert m["batch"]["exact_match"] == 0.5 and m["batch"]["norm_levenshtein"] == pytest.approx((0 + 2 / 3) / 2)


def test_bad_template_and_input_are_clear(tmp_path, capsys):
    t = tmp_path / "t.yaml"
    t.write_text("user: 'Q: {question}'\nmood: pair\n")
    with pytest.raises(ValueError, match="allowed keys system, user, mode"):
        Template.load(t)
    assert judge_file.main([str(tmp_path / "none.jsonl"), "--model", "x"]) == 2
    assert "input file not found" in capsys.readouterr().err


def _example(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rerank_example_items_and_pick():
    ex = _example("rerank_best_of_n")
    rows = ex.read_candidates(REPO / "examples" / "data" / "candidates.jsonl")
    items = ex.to_items(rows, "score")
    assert len(items) == sum(len(r["candidates"]) for r in rows) and items[0]["id"] == "q1#0"
    assert all(Path(p).is_file() for it in items for p in it["images"])
    judged = [{"id": "q1#0", "verdict": 3.0}, {"id": "q1#1", "verdict": None}, {"id": "q1#2", "verdict": 4.5},
              {"id": "q2#0", "verdict": 2.0}, {"id": "q2#2", "verdict": 2.0}]
    best = ex.pick(rows, judged, "score")
    assert [b["best_index"] for b in best] == [2, 0, None]  # q2: tie -> earlier; q3: nothing parsed
    assert best[0]["scores"] == [3.0, None, 4.5] and best[2]["n_scored"] == 0
    best = ex.pick(rows, [{"id": "q1", "verdict": "CAB"}, {"id": "q2", "verdict": None}], "batch")
    assert best[0]["best_index"] == 2 and best[0]["scores"] == [2.0, 1.0, 3.0] and best[1]["best"] is None


def test_cross_judge_agreement_example(tmp_path):
    ex = _example("cross_judge_agreement")
    a = [[8, 6], [7, 9], [5, 5], [-1, -1], [6, 8], [9, 3]]
    b = [[7, 7], [6, 9], [8, 4], [7, 7], [5, 8], [8, 2]]
    for name, vals in (("a", a), ("b", b)):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"doc_id": i, "gpt_eval_llava_all": {"scores": v}}) + "\n" for i, v in enumerate(vals)))
    rep = ex.compare(ex.read(tmp_path / "a.jsonl", "gpt_eval_llava_all.scores"),
                     ex.read(tmp_path / "b.jsonl", "gpt_eval_llava_all.scores"))
    keep = [0, 1, 2, 4, 5]  # item 3: judge a failed ([-1, -1])
    da, db = [a[i][1] - a[i][0] for i in keep], [b[i][1] - b[i][0] for i in keep]
    assert (rep["compared"], rep["failed_a"], rep["failed_b"]) == (5, 1, 0)
    assert rep["pearson"] == pytest.approx(stats.pearsonr(da, db)[0])
    assert rep["spearman"] == pytest.approx(stats.spearmanr(da, db)[0])
    # verdicts a: first, second, tie, second, first; b: tie, second, first, second, first -> 3/5 agree
    assert rep["verdict_agreement"] == pytest.approx(3 / 5)
    po, pe = 3 / 5, (2 * 2 + 2 * 2 + 1 * 1) / 25  # first 2/2, second 2/2, tie 1/1
    assert rep["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert rep["largest_disagreements"][0]["item"] == "2"  # 0 vs -4
    assert ex.main([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--field", "gpt_eval_llava_all.scores",
                    "--names", "flex,gpt-4o", "--out", str(tmp_path / "r.md")]) == 0
    assert "| verdict_agreement | 0.6000 |" in (tmp_path / "r.md").read_text()


def test_speed_workload_matches_the_inference_benchmark(tmp_path):
    """examples/judge_speed_workload.py rows render to the inference benchmark's exact prompts."""
    ex = _example("judge_speed_workload")
    items, bad = judge_file.read_items(ex.write(2, tmp_path, words=30, image=56), "auto")
    assert not bad and len(items) == 2
    s = Settings(samples=1, protocols={"pair": "flex_vl_rewardbench"})
    task = ex.bench_task()
    for it, doc in zip(items, task.make_docs(2, 30, 56)):
        (_, req), = item_requests(Judge(model=None), s, "pair", it.row, it.media)
        assert render(req.messages, "vl").prompt == task.render_prompt(doc)
        assert req.spec.generation_kwargs()["temperature"] == 0.6 and req.doc["flex_seed"] == 0
