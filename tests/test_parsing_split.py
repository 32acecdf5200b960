"""The one answer splitter (flex_tasks.parsing.split_answer and its pieces) and the protocol
scale check (a parsed number outside the protocol's scale is a parse failure)."""
from __future__ import annotations

import random
import re

import pytest

from flex_tasks import benchmarks, parsing
from flex_tasks.lmms import make_record
from flex_tasks.protocol import TASKS, protocols

# The readers as the paper's scripts wrote them (regexes over the raw output): the shared
# splitter must read exactly what they read.
PAPER_INT = re.compile(r"<answer>(\d+)</answer>")
PAPER_FLOAT = re.compile(r"<answer>(\d+\.?\d*)</answer>")
TOKENS = ["<answer>", "</answer>", "<think>", "</think>", "3", "10", "4.5", "7.", " ", "\n", "x", "[[A>B]]", "-2"]


def random_outputs(n=3000, seed=7):
    rng = random.Random(seed)
    return ["".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_number_readers_read_what_the_paper_regexes_read():
    for text in random_outputs():
        assert parsing.answer_ints(text) == [int(x) for x in PAPER_INT.findall(text)], repr(text)
        assert parsing.answer_floats(text) == [float(x) for x in PAPER_FLOAT.findall(text)], repr(text)


@pytest.mark.parametrize("text, answer, reasoning", [
    ("<think> a b </think><answer> 3 </answer><answer>5</answer>", "3 5", "a b"),
    ("<think>long reasoning cut off", "<think>long reasoning cut off", "long reasoning cut off"),
    ("reasoning</think> the verdict", "the verdict", "reasoning"),  # output after a '<think>' prompt prefix
    ("reasoning</think><answer>4</answer>", "4", "reasoning"),
    ("before <answer>[[A>B]]</answer>", "[[A>B]]", "before"),
    ("plain text", "plain text", ""),
    ("", "", ""),
    (None, "", ""),
])
def test_split_answer(text, answer, reasoning):
    got = parsing.split_answer(text)
    assert (got.answer, got.reasoning) == (answer, reasoning)
    a, r = got  # unpacks as (answer, reasoning), the server's use
    assert (a, r) == (answer, reasoning)


def test_split_answer_equals_the_servers_copy_on_outputs_without_nested_tags():
    """The server's split (flex_judge.serving.protocol) is switched to this one; until then both
    must agree. They differ only where an <answer> opens inside another (the shared span stops
    at the inner one) and on outputs with a closing </think> only (the shared one takes the text
    before it as the reasoning; the server's copy took everything before <answer>)."""
    serving = pytest.importorskip("flex_judge.serving.protocol")
    if serving.split_answer is parsing.split_answer:
        pytest.skip("the server already uses flex_tasks.parsing.split_answer")
    for text in random_outputs():
        opened = [m.start() for m in re.finditer("<answer>", text)]
        nested = any(text.find("</answer>", a) > b for a, b in zip(opened, opened[1:]))
        prefix_prompted = "</think>" in text and "<think>" not in text
        if not nested and not prefix_prompted:
            assert tuple(parsing.split_answer(text)) == tuple(serving.split_answer(text)), repr(text)


def test_reasoning_of():
    assert parsing.reasoning_of("<think> r </think><answer>1</answer>") == "r"
    assert parsing.reasoning_of("r <answer>1</answer>") == "r"
    assert parsing.reasoning_of("<think>unclosed") == "unclosed"
    assert parsing.reasoning_of("prefixed reasoning </think><answer>1</answer>") == "prefixed reasoning"


# ---------------------------------------------------------------- scale
def doc_of(task: str, **extra) -> dict:
    return {"flex_task": task, "flex_item": 0, "flex_run": 0, "flex_seed": 0, "flex_swap": False, "gold": 3, **extra}


def test_scales_are_the_protocols():
    P = protocols()
    assert TASKS["flex_mllm_judge_score"].scale == tuple(P["mllm_as_a_judge"]["scale"]["score"]) == (1, 5)
    assert TASKS["flex_mllm_judge_pair"].scale == (1, 10)
    assert TASKS["flex_vl_rewardbench"].scale == tuple(P["vl_rewardbench"]["scale"]) == (1, 10)
    for t in ("flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim"):
        assert TASKS[t].scale == (1, 5)
    assert "Score assistants 1-5" in P["mllm_as_a_judge"]["system"]["score"]  # where the scale comes from


@pytest.mark.parametrize("task, text, extra, ok, pred", [
    ("flex_mllm_judge_score", "<answer>6</answer>", {}, False, -1),  # issue 25: a 6 on the 1-5 scale
    ("flex_mllm_judge_score", "<answer>0</answer>", {}, False, -1),
    ("flex_mllm_judge_score", "<answer>5</answer>", {}, True, 5),
    ("flex_mllm_judge_score", "<answer>1</answer><answer>9</answer>", {}, True, 1),  # only the first is read
    ("flex_mllm_judge_pair", "<answer>11</answer><answer>3</answer>", {}, False, "C"),
    ("flex_mllm_judge_pair", "<answer>10</answer><answer>3</answer>", {}, True, "A"),
    ("flex_vl_rewardbench", "<answer>0</answer><answer>3</answer>", {"answer0": "", "answer1": ""}, False, None),
    ("flex_mj_bench_safety", "<answer>3</answer><answer>12</answer>", {}, False, 2),
    ("flex_mllm_judge_batch", "<answer>3</answer><answer>11</answer><answer>1</answer>", {"answers": ["a", "b", "c"]},
     False, ""),
    ("flex_nisqa", "<answer>5.5</answer>", {}, False, 3.0),
    ("flex_nisqa", "<answer>4.9</answer>", {}, True, 4.9),
    ("flex_bvcc", "<answer>7</answer>", {}, False, 0.0),
    ("flex_voxsim", "<answer>0.5</answer>", {}, False, 3.5),
])
def test_a_number_outside_the_scale_is_a_parse_failure(task, text, extra, ok, pred):
    rec = make_record(TASKS[task], doc_of(task, **extra), text)
    assert (rec.ok, rec.pred) == (ok, pred)
    if not ok:
        assert rec.how == "out_of_scale"
    assert benchmarks.out_of_scale(TASKS[task], text) is (not ok)


def test_out_of_scale_counts_in_the_reported_parse_failure_rate():
    spec = TASKS["flex_mllm_judge_score"]
    outs = ["<answer>6</answer>", "<answer>4</answer>", "<answer>2</answer>", "no answer", "<answer>3</answer>",
            "<answer>5</answer>"]
    recs = []
    for i, text in enumerate(outs):
        doc = doc_of(spec.task, flex_item=i, gold=(i % 5) + 1, dataset="COCO")
        recs.append(make_record(spec, doc, text).as_dict())
    rep = benchmarks.of(spec).report(spec, recs, iters=0, seed=0)
    assert rep["parse_failures"] == 2 and rep["parse_failure_rate"] == pytest.approx(2 / 6)
