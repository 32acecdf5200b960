"""VL-RewardBench: a query, an image and two responses shown in a per-run random order; the
judge scores both; the better one is mapped back to the original response index."""
from pathlib import Path

import numpy as np

from flex_tasks import metrics as M
from flex_tasks.reports import NAN, bootstrap_ci, common_details, first_record, item_run_matrix, quiet, record_grid, runwise_mean
from flex_tasks.benchmarks import Benchmark, Column, Parser, Section
from flex_tasks.benchmarks import _demo_text as dt
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.data import DataError, require_columns, source_dataset, text_rows
from flex_tasks.parsing import Parsed, pairwise_scores
from flex_tasks.protocol import TaskSpec, sampling, scale_of


def fields(spec, doc) -> dict:
    a1, a2 = (doc["answer1"], doc["answer0"]) if doc["flex_swap"] else (doc["answer0"], doc["answer1"])
    return {"query": doc["query"], "answer1": a1, "answer2": a2}


def vlrb_better(text: str) -> Parsed:
    """VL-RewardBench: index (0/1) of the presented answer judged better; equal or
    unparsable -> ``None`` (counted wrong). ``ok`` is False only when unparsable."""
    p = pairwise_scores(text)
    if not p.ok:
        return Parsed(None, False, "fallback")
    s1, s2 = p.value
    return Parsed(0 if s1 > s2 else 1 if s1 < s2 else None, True)


def parse(spec, doc, text: str) -> Parsed:
    p = vlrb_better(text)
    if p.value is not None and doc["flex_swap"]:
        return Parsed(1 - p.value, p.ok, p.how)  # presented order -> original response index
    return p


def load(spec, source) -> list[dict]:
    ds = source_dataset(spec, source)
    where = f"{spec.task} ({source})"
    require_columns(ds, ["id", "query", "response", "image", "human_ranking"], where)
    items = []
    for i, r in enumerate(text_rows(ds, ["id", "query", "response", "human_ranking"])):
        resp, rank = r["response"], r["human_ranking"]
        if not isinstance(resp, list) or len(resp) != 2 or not isinstance(rank, list) or len(rank) != 2 or rank[0] == rank[1]:
            raise DataError(f"{where} row {i} (id={r['id']}): expected response[2] and a strict human_ranking[2], "
                            f"got response={resp!r:.80} human_ranking={rank!r}")
        items.append({"data_id": str(r["id"]), "query": r["query"], "answer0": resp[0], "answer1": resp[1],
                      "gold": 0 if rank[0] < rank[1] else 1, "category": category(str(r["id"])),
                      "media": ["row:image"], "row": i})
    return items


_GROUPS = {"mathverse": "reasoning", "mmmu": "reasoning", "hallucination": "hallucination",
                "rlhf": "hallucination", "rlaif": "hallucination", "povid": "hallucination",
                "wildvision": "general", "vlfeedback": "general"}


def category(item_id: str) -> str:
    """VL-RewardBench category from the id prefix (text before the first '-' / '_')."""
    prefix = item_id.split("-")[0].split("_")[0].lower()
    return _GROUPS.get(prefix, "general")



# ---------------------------------------------------------------- report
VLRB_CATEGORIES = ("general", "hallucination", "reasoning")


def correct_grid(records):
    """The opening of the pairwise-accuracy reports (this one, Multimodal RewardBench's): items,
    runs, the item x run grid, 1.0 / 0.0 per (item, run) for the preferred response chosen (a tie
    or unparsed output is wrong, a missing run NaN) and each item's category."""
    items, runs, grid = record_grid(records)
    correct = item_run_matrix(grid, lambda r: float(r.pred is not None and r.pred == r.gold))
    cats = np.array([first_record(row).grouped("category") for row in grid])
    return items, runs, grid, correct, cats


def accuracy_report(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    items, runs, grid, correct, cats = correct_grid(records)

    def overall(idx):
        return runwise_mean(correct, idx)

    def macro(idx):
        per_run = []
        with quiet():
            for j in range(len(runs)):
                accs = [np.nanmean(correct[idx][cats[idx] == c, j]) for c in VLRB_CATEGORIES if (cats[idx] == c).any()]
                per_run.append(np.mean(accs) if accs else NAN)
            return float(np.nanmean(per_run)) if per_run else NAN

    all_idx = np.arange(len(items))
    out = {"overall_acc": overall(all_idx), "macro_acc": macro(all_idx)}
    official = vlrb_official(grid, cats)
    out["overall_acc_official"], out["macro_acc_official"] = official["overall"], official["macro"]
    for c in VLRB_CATEGORIES:
        out[f"{c}_acc"] = runwise_mean(correct, all_idx, np.broadcast_to((cats == c)[:, None], correct.shape)) if (cats == c).any() else NAN
    out["overall_acc_ci95"] = bootstrap_ci(overall, len(items), iters, seed)
    out["macro_acc_ci95"] = bootstrap_ci(macro, len(items), iters, seed)
    out.update(common_details(records, items, runs, iters, seed))
    with quiet():
        out["breakdown"] = {
            "per_run_overall_acc": [float(v) for v in np.nanmean(correct, axis=0)],
            "category_counts": {c: int((cats == c).sum()) for c in VLRB_CATEGORIES},
            "ties": sum(1 for r in records if r.ok and r.pred is None),
            "official_scorer": official,
        }
    return out


def vlrb_official(grid, cats) -> dict:
    """VL-RewardBench's own scorer (upstream ``cal.py``): per item, the verdict held by more
    than half of its runs ('agree' = the human-preferred response, 'reject' = the other one,
    no choice = a tie or an unparsed output); items without such a majority and items whose
    majority made no choice are left out. Accuracy = agree items / (agree + reject items),
    per category, overall (pooled) and macro (mean of the three categories)."""
    agree: dict = {c: 0 for c in VLRB_CATEGORIES}
    decided: dict = {c: 0 for c in VLRB_CATEGORIES}
    for row, cat in zip(grid, cats):
        recs = [r for r in row if r is not None]
        n_agree = sum(1 for r in recs if r.pred is not None and r.pred == r.gold)
        n_reject = sum(1 for r in recs if r.pred is not None and r.pred != r.gold)
        if n_agree > len(recs) / 2:
            agree[cat] += 1
            decided[cat] += 1
        elif n_reject > len(recs) / 2:
            decided[cat] += 1
    per_cat = {c: agree[c] / decided[c] if decided[c] else NAN for c in VLRB_CATEGORIES}
    total = sum(decided.values())
    present = [per_cat[c] for c in VLRB_CATEGORIES if decided[c]]
    return {"overall": sum(agree.values()) / total if total else NAN,
            "macro": float(np.mean(present)) if present else NAN,
            "per_category": per_cat, "items_counted": total}


def report(spec, records, **kwargs) -> dict:
    return accuracy_report(records, **kwargs)


# ---------------------------------------------------------------- bundled fixtures, demo rows
def write_fixtures(root: Path):
    """The hub repo's parquet (embedded images), as a user's offline copy looks."""
    import datasets as d

    ids = ["wildvision-battle_0", "VLFeedback_1", "RLAIF-V-Dataset_2", "hallucination_pair_3", "mathverse_4", "mmmu-pro_5"]
    rows = [{"id": i, "query": f"What is shown in picture {n}?", "response": [f"Answer one for {n}.", f"Answer two for {n}."],
             "image": {"bytes": fx.png(100 + n), "path": None}, "human_ranking": [0, 1] if n % 2 == 0 else [1, 0],
             "models": ["model-a", "model-b"], "judge": "human", "rationale": "", "query_source": i.split("_")[0],
             "ground_truth": ""} for n, i in enumerate(ids)]
    feats = d.Features({"id": d.Value("string"), "query": d.Value("string"), "response": d.Sequence(d.Value("string")),
                        "image": d.Image(), "human_ranking": d.Sequence(d.Value("int64")), "models": d.Sequence(d.Value("string")),
                        "judge": d.Value("string"), "rationale": d.Value("string"), "query_source": d.Value("string"),
                        "ground_truth": d.Value("string")})
    fx.parquet(rows, feats, root / "data" / "test-00000-of-00001.parquet")


def demo_example(rng, spec):
    """Two text answers about one image, two scores 1-10."""
    q, a1, a2, media, why, answer = dt.vision_pair(rng)
    return {"query": q, "answer0": a1, "answer1": a2, "flex_swap": False}, media, why, answer



def compare_fields(question: str, response_a: str, response_b: str) -> dict:
    return {"query": question, "answer0": response_a, "answer1": response_b}


def tasks(P):
    s, e = sampling(P, "vl_rewardbench"), P["vl_rewardbench"]
    return [TaskSpec(
        task="flex_vl_rewardbench", bench="vl_rewardbench", variant="test", system=e["system"], user=e["user"],
        temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
        order="random_swap", parser="vlrb_better", parser_default=None,
        headline=(("overall_acc", True), ("macro_acc", True)),
        extra_metrics=(("general_acc", True), ("hallucination_acc", True), ("reasoning_acc", True),
                       ("overall_acc_official", True), ("macro_acc_official", True)),
        env="FLEX_VL_REWARDBENCH_PATH", hub=("MMInstruction/VL-RewardBench", None, "test"),
        multi_run=True, limit_mm=e["limit_mm_per_prompt"], scale=scale_of(e))]


T = "flex_vl_rewardbench"
LEADERBOARD = (Section("vl_rewardbench", "VL-RewardBench (accuracy, %)", (
    Column("general", T, "general_acc"), Column("hallucination", T, "hallucination_acc"),
    Column("reasoning", T, "reasoning_acc"), Column("overall", T, "overall_acc"), Column("macro", T, "macro_acc")),
    scale=100.0),)

BENCHMARK = Benchmark("vl_rewardbench", tasks=tasks,
                      parsers={"vlrb_better": Parser(vlrb_better, "verdict", 2, winner={0: "A", 1: "B", None: "tie"}, headline="runwise_accuracy")},
                      api={"compare": (T,)}, leaderboard=LEADERBOARD, load=load, fields=fields, parse=parse, report=report,
                      write_fixtures=write_fixtures, demo_example=demo_example, compare_fields=compare_fields)
