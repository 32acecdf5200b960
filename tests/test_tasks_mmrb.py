"""flex_multimodal_rewardbench: Multimodal RewardBench through the one-module benchmark path
(not in the Flex-Judge paper): data, both orders, the VL-RewardBench prompt, parsing back to the
data's order, accuracy per category / overall / macro against a by-hand count, CIs, errors."""
from __future__ import annotations

import pytest

from flex_tasks import benchmarks
from flex_tasks.benchmarks import multimodal_rewardbench as mmrb
from flex_tasks.data import DataError, load_items
from flex_tasks.lmms import doc_to_messages, expand, make_record
from flex_tasks.protocol import GROUPS, TASKS, protocols

TASK = "flex_multimodal_rewardbench"


@pytest.fixture
def fixtures(monkeypatch):
    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    monkeypatch.delenv("FLEX_JUDGE_RUNS", raising=False)
    spec = TASKS[TASK]
    _, items = load_items(spec)
    return spec, items


def test_protocol_entry_is_marked_not_from_the_paper_and_reuses_vl_rewardbench():
    P = protocols()
    e = P["multimodal_rewardbench"]
    assert "NOT from the Flex-Judge paper" in e["_not_in_paper"]
    assert (e["system"], e["user"], e["parse"], e["scale"]) == tuple(P["vl_rewardbench"][k] for k in ("system", "user", "parse", "scale"))
    assert e["sampling"]["runs"] == 2 and e["hub"][0] == "syhuggingface/multimodal_rewardbench"
    assert "multimodal_rewardbench" not in P["paper_results_v4"]
    spec = TASKS[TASK]
    assert (spec.system, spec.user, spec.order, spec.n_runs()) == (e["system"], e["user"], "swap_odd_runs", 2)
    assert spec.hub == ("syhuggingface/multimodal_rewardbench", None, "test")


def test_fixtures_load_every_category_and_both_orders(fixtures):
    spec, items = fixtures
    assert [it["category"] for it in items] == ["correctness", "preference", "knowledge", "reasoning_math",
                                                "reasoning_coding", "safety_bias", "safety_toxicity", "vqa", "correctness"]
    assert [it["gold"] for it in items] == [0, 1, 0, 1, 0, 1, 0, 1, 0]
    docs = expand(spec, items)
    assert [(d["flex_item"], d["flex_run"], d["flex_swap"]) for d in docs[:4]] == [(0, 0, False), (0, 1, True),
                                                                                 (1, 0, False), (1, 1, True)]
    given, swapped = (doc_to_messages(d)[1]["content"] for d in docs[:2])
    assert given[0]["type"] == swapped[0]["type"] == "image"  # the image first, as VL-RewardBench shows it
    text_given = "".join(p.get("text", "") for p in given)
    text_swapped = "".join(p.get("text", "") for p in swapped)
    assert "[Assistant 1's Answer]\nFirst response 0.\n\n[Assistant 2's Answer]\nSecond response 0." in text_given
    assert "[Assistant 1's Answer]\nSecond response 0.\n\n[Assistant 2's Answer]\nFirst response 0." in text_swapped
    assert doc_to_messages(docs[0])[0]["content"][0]["text"] == protocols()["vl_rewardbench"]["system"]


def test_verdict_is_mapped_back_to_the_data_order(fixtures):
    spec, items = fixtures
    given, swapped = expand(spec, items)[:2]
    first_wins = "<think>t</think><answer>8</answer><answer>3</answer>"
    assert make_record(spec, given, first_wins).pred == 0
    assert make_record(spec, swapped, first_wins).pred == 1  # shown first = Output2
    tie = make_record(spec, given, "<answer>5</answer><answer>5</answer>")
    assert (tie.pred, tie.ok) == (None, True)
    off = make_record(spec, given, "<answer>11</answer><answer>5</answer>")  # outside the 1-10 scale
    assert (off.pred, off.ok, off.how) == (None, False, "out_of_scale")


def test_report_against_a_count_by_hand(fixtures):
    spec, items = fixtures
    docs = expand(spec, items)
    # per (item, run): 1 = the judge prefers the gold response, 0 = the other one, None = tie
    plan = {0: (1, 1), 1: (1, 0), 2: (0, 0), 3: (1, None), 4: (1, 1), 5: (0, 1), 6: (1, 1), 7: (None, None), 8: (0, 1)}
    recs = []
    for d in docs:
        right = plan[d["flex_item"]][d["flex_run"]]
        if right is None:
            text = "<answer>4</answer><answer>4</answer>"
        else:
            pref = d["gold"] if right else 1 - d["gold"]  # the data-order index the judge prefers
            shown_first = pref == (1 if d["flex_swap"] else 0)
            text = "<answer>9</answer><answer>2</answer>" if shown_first else "<answer>2</answer><answer>9</answer>"
        recs.append(make_record(spec, d, text))
    rep = mmrb.report(spec, recs, iters=300, seed=5)
    hits = {i: [x == 1 for x in v] for i, v in plan.items()}
    per_run = [sum(hits[i][k] for i in hits) / 9 for k in (0, 1)]
    assert rep["overall_acc"] == pytest.approx(sum(per_run) / 2)
    cats = [it["category"] for it in items]
    per_cat = {}
    for c in mmrb.NAMES:
        sel = [i for i in hits if cats[i] == c]
        per_cat[c] = sum(sum(hits[i][k] for i in sel) / len(sel) for k in (0, 1)) / 2
        assert rep[f"{c}_acc"] == pytest.approx(per_cat[c]), c
    assert rep["macro_acc"] == pytest.approx(sum(per_cat.values()) / 8)
    lo, hi = rep["overall_acc_ci95"]
    assert 0 <= lo <= rep["overall_acc"] <= hi <= 1
    assert rep["overall_acc_ci95"] == mmrb.report(spec, recs, iters=300, seed=5)["overall_acc_ci95"]  # seeded
    assert rep["parse_failures"] == 0 and rep["breakdown"]["ties"] == 3
    # both orders parsed (a tie is a verdict) and the same: items 0, 2, 4, 6 and 7 (a tie in both)
    assert rep["breakdown"]["position_checked"] == 9
    assert rep["breakdown"]["position_consistency"] == pytest.approx(5 / 9)
    printed = {name for name, _ in spec.metric_names()}
    assert {"overall_acc", "macro_acc", "vqa_acc", "overall_acc_ci95", "parse_failure_rate"} <= printed


def _copy(tmp_path, **change):
    import datasets as d

    rows = [{"ID": "vqa_1", "Text": "q", "Output1": "a", "Output2": "b", "Better": "Output1", "Category": "vqa",
             "Image": {"bytes": mmrb.fx.png(1), "path": None}}]
    rows[0].update(change)
    feats = d.Features({k: d.Value("string") for k in mmrb.COLUMNS if k != "Image"} | {"Image": d.Image()})
    mmrb.fx.parquet(rows, feats, tmp_path / "data" / "test-00000-of-00001.parquet")
    return tmp_path


@pytest.mark.parametrize("change, message", [
    ({"Category": "humor"}, "Category 'humor' is none of"),
    ({"Better": "Output3"}, "Better must be 'Output1' or 'Output2'"),
])
def test_bad_rows_are_named(tmp_path, monkeypatch, change, message):
    monkeypatch.delenv("FLEX_JUDGE_DATA", raising=False)
    monkeypatch.setenv("FLEX_MULTIMODAL_REWARDBENCH_PATH", str(_copy(tmp_path, **change)))
    with pytest.raises(DataError, match="row 0 \\(ID=vqa_1\\).*" + message.replace("(", "\\(").replace(")", "\\)")):
        load_items(TASKS[TASK])


def test_offline_copy_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEX_JUDGE_DATA", raising=False)
    monkeypatch.setenv("FLEX_MULTIMODAL_REWARDBENCH_PATH", str(_copy(tmp_path)))
    _, items = load_items(TASKS[TASK])
    assert [(it["data_id"], it["category"], it["gold"]) for it in items] == [("vqa_1", "vqa", 0)]


def test_own_leaderboard_table_not_in_the_paper_and_not_in_flex_all():
    from flex_judge.analysis import leaderboard

    (sec,) = [s for s in leaderboard.SECTIONS if s.key == "multimodal_rewardbench"]
    assert "not in the paper" in sec.title and leaderboard._paper_rows(sec) == []
    assert [c.name for c in sec.columns][-2:] == ["overall", "macro"] and sec.scale == 100.0
    assert leaderboard.SECTIONS[-1] is sec  # after the paper's tables
    assert TASK not in str([GROUPS[g] for g in GROUPS["flex_all"]]) and GROUPS["flex_beyond_paper"] == [TASK]
    assert not benchmarks.get("multimodal_rewardbench").in_paper
