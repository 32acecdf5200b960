"""The Python judging API on the tiny VL checkpoint gives the same raw text and parsed verdict as
the `flex` lmms-eval model did for the same inputs (greedy decoding, the run's own gen_kwargs),
for every verb, in one batched call. Plus input errors and the best-of-N example."""
import importlib.util
import json
from pathlib import Path

import pytest

from flex_judge.judging.api import Judge, JudgeInputError, build_messages
from flex_judge.analysis.runs import load_runs, swap_flags
from flex_models.render import render
from flex_tasks import media
from flex_tasks.data import load_items
from flex_tasks.protocol import TASKS
from test_leaderboard_fixtures import make_runs

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def runs(tiny_vl):
    return make_runs(tiny_vl)


@pytest.fixture(scope="session")
def judge(tiny_vl):
    return Judge.from_pretrained(tiny_vl, backend="vllm", dtype="float32", max_new_tokens=16)


def _item(task: str, item_id: str) -> dict:
    _, items = load_items(TASKS[task])
    return next(i for i in items if i["item"] == item_id)


def _images(task: str, item: dict) -> list:
    """The item's media in original order, as the task resolves them (PIL, protocol size)."""
    return media.resolve(TASKS[task], dict(item, flex_swap=False))


def test_api_equals_flex_lmms_run(runs, judge, monkeypatch):
    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    run = load_runs([runs["a"]])[0]
    cases = []  # (request, logged record)

    def rec_of(task, pick):
        recs = run.records(task)
        flags = swap_flags(task, recs) if TASKS[task].order else {}
        r = next(r for r in recs if pick(r, flags.get((r.item, r.run), False)))
        return r, _item(task, r.item), run.task_config(task)["generation_kwargs"]

    r, it, gk = rec_of("flex_vl_rewardbench", lambda r, sw: not sw)
    cases.append((judge.compare_request(it["query"], it["answer0"], it["answer1"], _images("flex_vl_rewardbench", it),
                                        run=r.run, gen_kwargs=gk), r))
    r, it, gk = rec_of("flex_mllm_judge_pair", lambda r, sw: r.run == 1)
    cases.append((judge.compare_request(it["instruction"], it["answer1"], it["answer2"], it["media"],
                                        protocol="mllm_pair", run=1, gen_kwargs=gk), r))
    r, it, gk = rec_of("flex_mllm_judge_score", lambda r, sw: r.run == 1)
    cases.append((judge.score_request(it["instruction"], it["answer"], it["media"], run=1, gen_kwargs=gk), r))
    r, it, gk = rec_of("flex_mllm_judge_batch", lambda r, sw: r.run == 0)
    cases.append((judge.rank_request(it["instruction"], it["answers"], it["media"], gen_kwargs=gk), r))
    r, it, gk = rec_of("flex_mj_bench_alignment", lambda r, sw: sw)  # swapped-order run
    a, b = _images("flex_mj_bench_alignment", it)
    cases.append((judge.compare_media_request(it["caption"], a, b, run=r.run, swap=True, gen_kwargs=gk), r))
    r, it, gk = rec_of("flex_genai_bench_image", lambda r, sw: r.run == 0)
    a, b = _images("flex_genai_bench_image", it)
    cases.append((judge.compare_media_request(it["prompt"], a, b, protocol="genai_bench_image", gen_kwargs=gk), r))

    verdicts = judge.run([req for req, _ in cases])  # one engine batch
    assert len(verdicts) == len(cases)
    for (req, rec), v in zip(cases, verdicts):
        assert v.task == rec.task
        assert v.text == rec.raw, v.task
        assert (v.value, v.ok, v.how) == (rec.pred, rec.ok, rec.how), v.task
        assert v.record.item == "api" and v.text
    # same verdicts through the one-call verbs
    r, it, gk = rec_of("flex_mllm_judge_score", lambda r, sw: r.run == 1)
    v = judge.score(it["instruction"], it["answer"], it["media"], run=1, gen_kwargs=gk)
    assert v.text == r.raw and v.score is None and not v.ok  # random tiny judge: unparsed


def test_verdict_fields_from_parsed_output(judge):
    req = judge.compare_request("q", "a", "b")
    v = judge._verdict(req, "<think>B is more precise.</think><answer>3</answer><answer>7</answer>")
    assert (v.ok, v.value, v.winner, v.scores, v.reasoning) == (True, 1, "B", [3.0, 7.0], "B is more precise.")
    v = judge._verdict(judge.rank_request("q", ["x", "y", "z"]), "<answer>2</answer><answer>9</answer><answer>5</answer>")
    assert v.ranking == "BCA" and v.ok
    v = judge._verdict(judge.score_request("q", "a"), "no tags here")
    assert (v.ok, v.score, v.value, v.how) == (False, None, -1, "fallback")


def test_input_errors_and_text_only_prompt():
    j = Judge(model=None)
    with pytest.raises(JudgeInputError, match="allowed: vl_rewardbench, mllm_judge_pair"):
        j.compare_request("q", "a", "b", protocol="mj_bench_alignment")
    with pytest.raises(JudgeInputError, match="2 media slots, got 1"):
        build_messages(TASKS["flex_mj_bench_alignment"], {"caption": "c", "flex_swap": False}, ["x.png"])
    with pytest.raises(JudgeInputError, match="at least two responses"):
        j.rank_request("q", ["one"])
    req = j.score_request("What is 2+2?", "4")  # no media: the image slot is dropped
    prompt = render(req.messages, "vl").prompt
    spec = TASKS["flex_mllm_judge_score"]
    user = spec.user.replace("<|vision_start|><|image_pad|><|vision_end|>", "").format(instruction="What is 2+2?", answer="4")
    assert prompt == f"<|im_start|>system\n{spec.system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def _example():
    spec = importlib.util.spec_from_file_location("best_of_n", REPO / "examples" / "best_of_n.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_best_of_n_selection_rules():
    bon = _example()
    row = {"id": "r", "question": "q", "images": [], "candidates": ["a", "b", "c", "d"]}
    rec, pairs = bon.select(row, [3.0, None, 5.0, 1.0])
    assert rec["best"] == "c" and rec["n_parsed"] == 3
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("c", "d")]
    _, pairs = bon.select(row, [3.0, None, 5.0, 1.0], all_pairs=True)
    assert [p["rejected"] for p in pairs] == ["d", "a"]
    rec, pairs = bon.select(row, [None] * 4)
    assert rec["best"] is None and pairs == []
    _, pairs = bon.select(row, [2.0, 2.0, None, None])  # a tie gives no pair
    assert pairs == []
    assert bon.scores_from_ranking("BCA", 3) == [1.0, 3.0, 2.0]
    assert bon.scores_from_ranking("BB", 2) == [None, None]


def test_best_of_n_example_end_to_end(judge, tmp_path):
    bon = _example()
    rows = bon.read_rows(REPO / "examples" / "data" / "candidates.jsonl")
    judge.gen_kwargs = {"max_new_tokens": 16}
    try:
        for mode in ("score", "rank"):
            stats = bon.run(judge, rows, tmp_path / mode, mode)
            out = [json.loads(x) for x in (tmp_path / mode / "best_of_n.jsonl").read_text().splitlines()]
            assert stats["rows"] == len(rows) == len(out) == 3
            assert all(len(o["scores"]) == len(r["candidates"]) for o, r in zip(out, rows))
            assert all(o["judgements"][0]["text"] for o in out)
            assert (tmp_path / mode / "dpo_pairs.jsonl").exists()
    finally:
        judge.gen_kwargs = {}
