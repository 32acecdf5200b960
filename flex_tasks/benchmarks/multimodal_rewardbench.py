"""Multimodal RewardBench (Yasunaga et al. 2025, arXiv 2502.14191) as a Flex task. NOT in the
Flex-Judge paper: the paper reports no number for it, so its leaderboard table has no paper rows.

Data: one image, a question (``Text``), two responses (``Output1``, ``Output2``), the human
preference (``Better``: "Output1" | "Output2") and a ``Category``, as the hub copy that
lmms-eval's ``multimodal_rewardbench`` task reads (``syhuggingface/multimodal_rewardbench``,
split ``test``; columns ID, Text, Output1, Output2, Better, Category, Image) or a local copy of
it (``FLEX_MULTIMODAL_REWARDBENCH_PATH``: ``save_to_disk`` output or its parquet files).

The Flex prompt, argued: the closest paper protocol is VL-RewardBench's. Both benchmarks are
the same judging act (one image, one question, two candidate responses, one human preference,
accuracy as the metric), so the judge is given exactly the VL-RewardBench system prompt and
user template (score each assistant 1-10 in two ``<answer>`` tags; the higher score wins; equal
scores are a tie, counted wrong, as VL-RewardBench counts them) with its sampling settings. Not
MLLM-as-a-Judge pair (its gold has ties, Multimodal RewardBench has none) and not the upstream
GPT-4o "[[A]]/[[B]]" prompt (the Flex checkpoints were trained to answer in scores; upstream
also breaks unparsable verdicts with a coin flip, which turns parse failures into 50 % noise,
where here they are counted wrong and reported). The presentation order is the one difference:
instead of VL-RewardBench's random per-run swap, every item is judged in BOTH orders (run 0 as
given, run 1 swapped, as MJ-Bench's odd runs), so position bias cancels in the mean and the
per-item position consistency is reported.

Metrics: accuracy per run (ties and unparsable outputs wrong), mean over the two orders;
``overall_acc`` over all items (upstream's "all", a micro average), ``macro_acc`` the mean of
the eight categories present, and ``<category>_acc`` for each of upstream's reporting
categories (general correctness, general preference, knowledge, reasoning math / coding, safety
bias / toxicity, VQA; reasoning and safety are split by ID prefix as upstream's
``2_get_accuracy.py`` does); 95 % bootstrap CIs over items (both orders of an item together,
stratified by category).
"""
from pathlib import Path

import numpy as np

from flex_tasks import metrics as M
from flex_tasks.benchmarks import Benchmark, Column, Section
from flex_tasks.benchmarks import _demo_text as dt
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.benchmarks.vl_rewardbench import BENCHMARK as VLRB, correct_grid
from flex_tasks.data import DataError, require_columns, source_dataset, text_rows
from flex_tasks.parsing import Parsed
from flex_tasks.protocol import TaskSpec, sampling, scale_of
from flex_tasks.reports import NAN, bootstrap_ci, common_details, quiet, runwise_mean

NAME = "multimodal_rewardbench"
TASK = f"flex_{NAME}"
# upstream's reporting categories: (metric prefix, leaderboard column)
CATEGORIES = (("correctness", "general_correctness"), ("preference", "general_preference"), ("knowledge", "knowledge"),
              ("reasoning_math", "reasoning_math"), ("reasoning_coding", "reasoning_coding"),
              ("safety_bias", "safety_bias"), ("safety_toxicity", "safety_toxicity"), ("vqa", "vqa"))
NAMES = tuple(c for c, _ in CATEGORIES)
COLUMNS = ("ID", "Text", "Output1", "Output2", "Better", "Category", "Image")


def category(item_id: str, raw: str, where: str) -> str:
    """A row's reporting category from its ``Category`` (e.g. "open_generation/correctness_task")
    and, for reasoning and safety, its ID prefix ("math..." / "pairs...", as upstream splits)."""
    c = str(raw).lower()
    if "safety" in c:
        return "safety_bias" if item_id.lower().startswith("pairs") else "safety_toxicity"
    if "reasoning" in c:
        return "reasoning_math" if item_id.lower().startswith("math") else "reasoning_coding"
    for name in ("correctness", "preference", "knowledge", "vqa"):
        if name in c:
            return name
    raise DataError(f"{where}: Category {raw!r} is none of correctness, preference, knowledge, reasoning, safety, vqa")


def load(spec, source) -> list[dict]:
    ds = source_dataset(spec, source)
    where = f"{spec.task} ({source})"
    require_columns(ds, list(COLUMNS), where)
    items = []
    for i, r in enumerate(text_rows(ds, [c for c in COLUMNS if c != "Image"])):
        if r["Better"] not in ("Output1", "Output2"):
            raise DataError(f"{where} row {i} (ID={r['ID']}): Better must be 'Output1' or 'Output2', got {r['Better']!r}")
        items.append({"data_id": str(r["ID"]), "query": r["Text"], "answer0": r["Output1"], "answer1": r["Output2"],
                      "gold": 0 if r["Better"] == "Output1" else 1,
                      "category": category(str(r["ID"]), r["Category"], f"{where} row {i} (ID={r['ID']})"),
                      "media": ["row:Image"], "row": i})
    if not items:
        raise DataError(f"{where}: no rows")
    return items


def fields(spec, doc) -> dict:
    a1, a2 = (doc["answer1"], doc["answer0"]) if doc["flex_swap"] else (doc["answer0"], doc["answer1"])
    return {"query": doc["query"], "answer1": a1, "answer2": a2}


def parse(spec, doc, text: str) -> Parsed:
    """VL-RewardBench's rule (the better shown response, tie None), mapped back to the data's order."""
    p = VLRB.parsers["vlrb_better"].fn(text)
    if p.value is not None and doc["flex_swap"]:
        return Parsed(1 - p.value, p.ok, p.how)
    return p


def report(spec, records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    items, runs, grid, correct, cats = correct_grid(records)

    def overall(idx):
        return runwise_mean(correct, idx)

    def macro(idx):
        with quiet():
            accs = [runwise_mean(correct, idx[cats[idx] == c]) for c in NAMES if (cats[idx] == c).any()]
            return float(np.mean(accs)) if accs else NAN

    all_idx = np.arange(len(items))
    out = {"overall_acc": overall(all_idx), "macro_acc": macro(all_idx)}
    for c in NAMES:
        out[f"{c}_acc"] = runwise_mean(correct, all_idx[cats == c]) if (cats == c).any() else NAN
    out["overall_acc_ci95"] = bootstrap_ci(overall, len(items), iters, seed, strata=cats)
    out["macro_acc_ci95"] = bootstrap_ci(macro, len(items), iters, seed, strata=cats)
    out.update(common_details(records, items, runs, iters, seed))
    # position consistency: items whose two orders both parsed and gave the same verdict (a tie is a verdict)
    both = [(row[0], row[1]) for row in grid if len(row) > 1 and row[0] is not None and row[1] is not None
            and row[0].ok and row[1].ok]
    with quiet():
        out["breakdown"] = {
            "per_run_overall_acc": [float(v) for v in np.nanmean(correct, axis=0)],
            "category_counts": {c: int((cats == c).sum()) for c in NAMES},
            "ties": sum(1 for r in records if r.ok and r.pred is None),
            "position_consistency": (sum(a.pred == b.pred for a, b in both) / len(both)) if both else None,
            "position_checked": len(both),
        }
    return out


def tasks(P):
    e = P[NAME]
    s = sampling(P, NAME)
    return [TaskSpec(
        task=TASK, bench=NAME, variant="test", system=e["system"], user=e["user"],
        temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
        order="swap_odd_runs", parser="vlrb_better", parser_default=None,
        headline=(("overall_acc", True), ("macro_acc", True)),
        extra_metrics=tuple((f"{c}_acc", True) for c in NAMES),
        env="FLEX_MULTIMODAL_REWARDBENCH_PATH", hub=tuple(e["hub"]), multi_run=True,
        limit_mm=e["limit_mm_per_prompt"], scale=scale_of(e))]


# ---------------------------------------------------------------- bundled fixtures, demo rows
FIXTURE_ROWS = (("nocaps_1", "open_generation/correctness_task"), ("visitbench_2", "open_generation/preference_task"),
                ("mmmu_3", "knowledge"), ("math_4", "reasoning"), ("code_5", "reasoning"), ("pairs_6", "safety"),
                ("hateful_7", "safety"), ("vqa_8", "vqa"), ("nocaps_9", "open_generation/correctness_task"))


def write_fixtures(root: Path):
    """The hub copy's parquet (embedded images), as a user's offline copy looks; one row per
    reporting category (two of correctness), golds alternating."""
    import datasets as d

    rows = [{"ID": i, "Text": f"What does picture {n} show?", "Output1": f"First response {n}.",
             "Output2": f"Second response {n}.", "Better": "Output1" if n % 2 == 0 else "Output2", "Category": c,
             "Image": {"bytes": fx.png(900 + n), "path": None}} for n, (i, c) in enumerate(FIXTURE_ROWS)]
    feats = d.Features({"ID": d.Value("string"), "Text": d.Value("string"), "Output1": d.Value("string"),
                        "Output2": d.Value("string"), "Better": d.Value("string"), "Category": d.Value("string"),
                        "Image": d.Image()})
    fx.parquet(rows, feats, root / "data" / "test-00000-of-00001.parquet")


def demo_example(rng, spec):
    """Two text answers about one image, two scores 1-10 (VL-RewardBench's format)."""
    q, a1, a2, media, why, answer = dt.vision_pair(rng)
    return {"query": q, "answer0": a1, "answer1": a2, "flex_swap": False}, media, why, answer


LEADERBOARD = (Section(NAME, "Multimodal RewardBench (accuracy, %; not in the paper: no paper rows)",
                       tuple(Column(col, TASK, f"{c}_acc") for c, col in CATEGORIES)
                       + (Column("overall", TASK, "overall_acc"), Column("macro", TASK, "macro_acc")), scale=100.0),)

# No API verb of its own: its prompt is VL-RewardBench's (Judge.compare with that protocol).
BENCHMARK = Benchmark(NAME, tasks=tasks, parsers={"vlrb_better": VLRB.parsers["vlrb_better"]}, leaderboard=LEADERBOARD,
                      load=load, fields=fields, parse=parse, report=report, write_fixtures=write_fixtures,
                      demo_example=demo_example, in_paper=False)
