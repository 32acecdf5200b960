"""MLLM-as-a-Judge: score (one answer), pair (two answers) and batch (a ranking of N answers,
one '[Assistant i's Answer]' block each); one image per item."""
from pathlib import Path
import json
import os

import numpy as np

from flex_tasks import metrics as M
from flex_tasks.reports import NAN, bootstrap_ci, common_details, first_record, item_run_matrix, quiet, record_grid
import string
from typing import Optional

from flex_tasks.benchmarks import Benchmark, Column, Parser, Section
from flex_tasks.benchmarks import _demo_text as dt
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.data import DataError, read_jsonl, within
from flex_tasks.parsing import Parsed, answer_ints, pairwise_scores
from flex_tasks.protocol import FAMILY_PLACEHOLDERS, TaskSpec, sampling, scale_of


def batch_template(n_answers: int) -> str:
    """The batch layout: one '[Assistant i's Answer]' block per answer, joined by blank lines
    (the reference script strips the whole string at the end)."""
    blocks = "".join(f"[Assistant {i + 1}'s Answer]\n{{a{i + 1}}}\n\n" for i in range(n_answers))
    return FAMILY_PLACEHOLDERS["vl"]["image"] + "\n\n[Question]\n{instruction}\n\n" + blocks


def fields(spec, doc) -> dict:
    if spec.variant == "pair":
        return {"instruction": doc["instruction"], "answer1": doc["answer1"], "answer2": doc["answer2"]}
    if spec.variant == "batch":
        return {"instruction": doc["instruction"], **{f"a{i + 1}": a for i, a in enumerate(doc["answers"])}}
    return {"instruction": doc["instruction"], "answer": doc["answer"]}


def user_parts(spec, doc) -> list:
    from flex_tasks.prompts import template_parts

    if spec.variant != "batch":
        return template_parts(spec.user, fields(spec, doc))
    parts = template_parts(batch_template(len(doc["answers"])), fields(spec, doc))
    if parts and parts[-1][0] == "text":  # .strip() of the whole user string
        stripped = parts[-1][1].rstrip()
        parts = parts[:-1] + ([("text", stripped)] if stripped else [])
    return parts


def mllm_pair(text: str) -> Parsed:
    """MLLM-as-a-Judge pair: 'A' (first better), 'B', or 'C' (tie; also the fallback)."""
    p = pairwise_scores(text)
    if not p.ok:
        return Parsed("C", False, "fallback")
    s1, s2 = p.value
    return Parsed("A" if s1 > s2 else "B" if s1 < s2 else "C", True)


def mllm_score(text: str) -> Parsed:
    """MLLM-as-a-Judge score: first ``<answer>N</answer>`` integer; unparsable -> -1."""
    ints = answer_ints(text)
    if not ints:
        return Parsed(-1, False, "fallback")
    return Parsed(ints[0], True)


def mllm_batch(text: str, n_answers: Optional[int] = None) -> Parsed:
    """MLLM-as-a-Judge batch: letters A, B, ... (one per parsed score) sorted by score
    descending, ties broken by the later letter first (the reference script sorts
    (score, letter) pairs in reverse). ``ok`` requires one score per answer when
    ``n_answers`` is given."""
    ints = answer_ints(text)
    labels = string.ascii_uppercase[: len(ints)]
    ranking = "".join(label for _, label in sorted(zip(ints, labels), reverse=True))
    ok = bool(ints) and (n_answers is None or len(ints) == n_answers)
    return Parsed(ranking, ok, "answer" if ok else "fallback")


PARSERS = {"mllm_pair": mllm_pair, "mllm_score": mllm_score, "mllm_batch": mllm_batch}


def parse(spec, doc, text: str):
    if spec.variant == "batch":
        return mllm_batch(text, n_answers=len(doc["answers"]))
    return PARSERS[spec.parser](text)


def _dirs(root: Path, env: str) -> tuple[Path, Path]:
    for bench in (root / "Dataset" / "Benchmark", root / "Benchmark", root):
        if (bench / "pair.jsonl").exists() or (bench / "score.jsonl").exists() or (bench / "batch.jsonl").exists():
            return bench, bench.parent
    raise DataError(f"{env}={root}: expected Dataset/Benchmark/{{pair,score,batch}}.jsonl (or Benchmark/...) under it")


def _image(source: Path, data_dir: Path, rel: str, where: str, row: int, env: str) -> str:
    root = Path(os.path.commonpath([os.path.abspath(source), os.path.abspath(data_dir)]))
    inside, refused = [], None
    for base in (data_dir / "image", data_dir / "images", data_dir, data_dir.parent):
        try:
            inside.append(within(root, base, rel, where, row, env))
        except DataError as e:
            refused = e
    if not inside:
        raise refused
    for cand in inside:
        if cand.exists():
            return str(cand)
    if refused is not None and "through a symlink" in str(refused):  # it exists, but leads out of the root
        raise refused
    raise DataError(f"{where} row {row}: image {rel!r} not found under {data_dir}/image, {data_dir}/images or {data_dir} (setting {env})")


def load(spec, source) -> list[dict]:
    bench_dir, data_dir = _dirs(Path(source), spec.env)
    path = bench_dir / f"{spec.variant}.jsonl"
    items = []
    for i, r in enumerate(read_jsonl(path)):
        where = f"{path} row {i}"
        try:
            base = {"data_id": str(r.get('id', r.get('score_id', r.get('pair_id', i)))),
                    "dataset": str(r["original_dataset"]), "instruction": r["instruction"],
                    "media": [_image(Path(source), data_dir, r["image_path"], str(path), i, spec.env)]}
            if spec.variant == "pair":
                gold = str(r["human"]).strip().upper()
                if gold not in ("A", "B", "C"):
                    raise DataError(f"{where}: human must be A, B or C, got {r['human']!r}")
                base.update(answer1=r["answer1"]["answer"], answer2=r["answer2"]["answer"], gold=gold)
            elif spec.variant == "score":
                try:
                    base.update(answer=r["answer"], gold=int(float(str(r["human"]).strip())))
                except ValueError:
                    raise DataError(f"{where}: human score {r['human']!r} is not a number") from None
            else:
                human = r.get("human_answer", r.get("human"))
                if human is None:
                    raise DataError(f"{where}: no ranking in 'human_answer' or 'human'")
                ranking = "".join(ch for ch in str(human).upper() if ch.isalpha())
                base.update(answers=[a["answer"] for a in r["answers"]], gold=ranking)
        except KeyError as e:
            raise DataError(f"{where}: missing field {e}") from None
        items.append(base)
    if not items:
        raise DataError(f"{path}: no rows")
    return items



# ---------------------------------------------------------------- reports (per variant)
def by_dataset(grid) -> tuple[np.ndarray, list[str]]:
    ds = np.array([first_record(row).grouped("dataset") for row in grid])
    return ds, sorted(set(ds.tolist()))


def per_dataset(idx, ds, names, value) -> dict:
    """{dataset: value(item indices of that dataset in idx)}; value returns None to leave one out."""
    out = {}
    for name in names:
        sel = idx[ds[idx] == name]
        v = value(sel) if len(sel) else None
        if v is not None:
            out[name] = float(v)
    return out


def mean_over_datasets(per_ds):
    """The MLLM-as-a-Judge headline: per-dataset values averaged over datasets (NaN if none)."""
    def stat(idx):
        v = per_ds(idx)
        return float(np.mean(list(v.values()))) if v else NAN
    return stat


def pair_report(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Majority over runs (A=-1, B=+1, C=0 summed) per item; accuracy per original dataset,
    averaged over datasets. 'w.o. tie' keeps items whose human label is not C (a dataset
    without such items is left out of that average)."""
    items, runs, grid = record_grid(records)
    ds, names = by_dataset(grid)
    gold = np.array([first_record(row).gold for row in grid])
    maj = np.array([M.sign_majority([r.pred for r in row if r is not None]) for row in grid])
    hit = (maj == gold).astype(float)

    def acc(sel):
        return hit[sel].mean() if len(sel) else None

    def per_ds(idx, with_tie):
        return per_dataset(idx, ds, names, acc if with_tie else (lambda sel: acc(sel[gold[sel] != "C"])))

    w_tie = mean_over_datasets(lambda idx: per_ds(idx, True))
    wo_tie = mean_over_datasets(lambda idx: per_ds(idx, False))

    all_idx = np.arange(len(items))
    out = {"acc_w_tie": w_tie(all_idx), "acc_wo_tie": wo_tie(all_idx)}
    out["acc_w_tie_ci95"] = bootstrap_ci(w_tie, len(items), iters, seed, strata=ds)
    out["acc_wo_tie_ci95"] = bootstrap_ci(wo_tie, len(items), iters, seed, strata=ds)
    out.update(common_details(records, items, runs, iters, seed))
    out["breakdown"] = {"per_dataset_w_tie": per_ds(all_idx, True), "per_dataset_wo_tie": per_ds(all_idx, False)}
    return out


def score_report(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Pearson(pred, human) per original dataset per run (unparsable pred = -1, NaN -> 0),
    median over runs, mean over datasets. ``pearson_as_released``: the same with run k's
    Pearson taken over runs 1..k pooled, as the released evaluation script computes it
    (docs/divergences.md)."""
    items, runs, grid = record_grid(records)
    ds, names = by_dataset(grid)
    pred = item_run_matrix(grid, lambda r: float(r.pred))
    gold = np.array([float(first_record(row).gold) for row in grid])

    def median_pearson(sel):
        rs = []
        for j in range(len(runs)):
            ok = ~np.isnan(pred[sel, j])
            rs.append(M.nan_to_zero(M.pearson(pred[sel, j][ok], gold[sel][ok])))
        return np.median(rs)

    def pooled_median_pearson(sel):
        # released test/evaluate.py: prediction lists are never reset between runs, so "run k"
        # is Pearson over runs 1..k pooled; then the median of those values
        rs = []
        for j in range(len(runs)):
            p, g = pred[sel, : j + 1].T.ravel(), np.tile(gold[sel], j + 1)
            ok = ~np.isnan(p)
            rs.append(M.nan_to_zero(M.pearson(p[ok], g[ok])))
        return np.median(rs)

    return _dataset_mean_report("pearson", median_pearson, pooled_median_pearson, records, items, runs, ds, names,
                                iters, seed)


def batch_report(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Normalised Levenshtein(pred ranking, human ranking) per item; mean per dataset per
    run; worst (max) over runs; mean over datasets. Lower is better.
    ``levenshtein_as_released``: run k's mean taken over runs 1..k pooled, as the released
    evaluation script computes it (docs/divergences.md)."""
    items, runs, grid = record_grid(records)
    ds, names = by_dataset(grid)
    dist = item_run_matrix(grid, lambda r: M.norm_levenshtein(r.pred, r.gold))

    def worst_run(sel):
        with quiet():
            return np.nanmax(np.nanmean(dist[sel], axis=0))

    def pooled_worst(sel):
        # released test/evaluate.py: "run k" is the mean distance over runs 1..k pooled
        with quiet():
            return max(np.nanmean(dist[sel, : j + 1]) for j in range(len(runs)))

    return _dataset_mean_report("levenshtein", worst_run, pooled_worst, records, items, runs, ds, names, iters, seed)


def _dataset_mean_report(metric, per_runs, as_released_runs, records, items, runs, ds, names, iters, seed) -> dict:
    """A per-dataset statistic (over an item selection's runs) averaged over datasets: the
    headline with its dataset-stratified CI, the as-released variant, and both per dataset."""
    def per_ds(idx):
        return per_dataset(idx, ds, names, per_runs)

    stat = mean_over_datasets(per_ds)
    as_released = mean_over_datasets(lambda idx: per_dataset(idx, ds, names, as_released_runs))
    all_idx = np.arange(len(items))
    out = {metric: stat(all_idx), f"{metric}_ci95": bootstrap_ci(stat, len(items), iters, seed, strata=ds),
           f"{metric}_as_released": as_released(all_idx)}
    out.update(common_details(records, items, runs, iters, seed))
    out["breakdown"] = {f"per_dataset_{metric}": per_ds(all_idx),
                        f"per_dataset_{metric}_as_released": per_dataset(all_idx, ds, names, as_released_runs)}
    return out


REPORTS = {"score": score_report, "pair": pair_report, "batch": batch_report}


def report(spec, records, **kwargs) -> dict:
    return REPORTS[spec.variant](records, **kwargs)


# ---------------------------------------------------------------- bundled fixtures
def write_fixtures(root: Path):
    """The upstream folder layout: Dataset/image/<dataset>/... and Dataset/Benchmark/{pair,score,batch}.jsonl."""
    data = root / "Dataset"
    for n in range(4):
        path = data / "image" / ("COCO" if n < 2 else "ChartQA") / f"img_{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fx.image(600 + n).save(path)
    img = lambda n: f"{'COCO' if n < 2 else 'ChartQA'}/img_{n}.png"
    pair = [{"id": n, "pair_id": 100 + n, "image_path": img(n % 4), "original_dataset": "COCO" if n % 4 < 2 else "ChartQA",
             "instruction": f"Describe image {n}.", "answer1": {"name": "m1", "answer": f"First answer {n}."},
             "answer2": {"name": "m2", "answer": f"Second answer {n}."}, "human": "ABCA"[n], "true_answers": ""} for n in range(4)]
    score = [{"id": n, "score_id": 200 + n, "image_path": img(n % 4), "original_dataset": ["COCO", "COCO", "COCO", "ChartQA", "MathVista"][n],
              "instruction": f"What is in image {n}?", "answer": f"An answer {n}.", "name": "m1",
              "human": str(n % 5 + 1) if n == 2 else n % 5 + 1, "true_answers": ""} for n in range(5)]
    batch = []
    for n, ranking in enumerate(["ABC", "CAB", "BCA"]):
        row = {"id": n, "image_path": img(n), "original_dataset": "COCO" if n < 2 else "ChartQA",
               "instruction": f"Rank the answers for image {n}.",
               "answers": [{"name": f"m{k}", "answer": f"Answer {k} to {n}."} for k in range(3)]}
        row["human_answer" if n != 1 else "human"] = ranking
        batch.append(row)
    for name, rows in (("pair", pair), ("score", score), ("batch", batch)):
        fx.write_text(data / "Benchmark" / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------- demo rows (per variant)
def _demo_score(rng, spec):
    """One answer, a score 1-5."""
    scene = dt.scene(rng)
    q, right, (wrong,), key = dt.qa(rng, scene)
    good = rng.random() < 0.5
    answer = right if good else wrong
    score = rng.randint(4, 5) if good else rng.randint(1, 2)
    why = "The answer is " + ("right." if good else f"wrong, not {key}.")
    return {"instruction": q, "answer": answer}, [f"image: {dt.say(scene)}"], why, dt.answers(score)


def _demo_pair(rng, spec):
    """Two text answers about one image, two scores 1-10."""
    q, a1, a2, media, why, answer = dt.vision_pair(rng)
    return {"instruction": q, "answer1": a1, "answer2": a2}, media, why, answer


def _demo_batch(rng, spec):
    """3-4 answers, one distinct score each."""
    scene = dt.scene(rng)
    k = rng.randint(3, 4)
    q, right, wrongs, key = dt.qa(rng, scene, n_wrong=k)
    good = [rng.random() < 0.4 for _ in range(k)]
    answers = [right if g else wrongs[i] for i, g in enumerate(good)]
    scores = sorted(rng.sample(range(1, 11), k), reverse=True)
    ranked = sorted(range(k), key=lambda i: (not good[i], i))  # right answers first
    per = [0] * k
    for s, i in zip(scores, ranked):
        per[i] = s
    why = " ".join(f"{i + 1} is {'right' if g else 'wrong'}." for i, g in enumerate(good)) + f" It is {key}."
    return {"instruction": q, "answers": answers}, [f"image: {dt.say(scene)}"], why, dt.answers(*per)


DEMO_EXAMPLES = {"score": _demo_score, "pair": _demo_pair, "batch": _demo_batch}


def demo_example(rng, spec):
    return DEMO_EXAMPLES[spec.variant](rng, spec)



def compare_fields(question: str, response_a: str, response_b: str) -> dict:
    """An API compare request as a pair item (the pair variant's fields)."""
    return {"instruction": question, "answer1": response_a, "answer2": response_b}


# variant -> (parser, headline metrics, extra metrics)
VARIANTS = {
    "score": ("mllm_score", (("pearson", True),), (("pearson_as_released", True),)),
    "pair": ("mllm_pair", (("acc_w_tie", True), ("acc_wo_tie", True)), ()),
    "batch": ("mllm_batch", (("levenshtein", False),), (("levenshtein_as_released", False),)),
}


def tasks(P):
    m = P["mllm_as_a_judge"]
    s = sampling(P, "mllm_as_a_judge")
    out = []
    for variant, (parser, headline, extra) in VARIANTS.items():
        # the batch template's note after the answer blocks is not prompt text (user_parts lays them out)
        user = m["user_batch"].split("\n\n... (")[0] if variant == "batch" else m[f"user_{variant}"]
        out.append(TaskSpec(
            task=f"flex_mllm_judge_{variant}", bench="mllm_as_a_judge", variant=variant,
            system=m["system"][variant], user=user,
            temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
            order=None, parser=parser, parser_default=None, headline=headline, extra_metrics=extra,
            env="FLEX_MLLM_JUDGE_PATH", image_size=448,
            stop=tuple(s["stop_score_split"]) if variant == "score" else ("<|im_end|>",),
            include_stop_str_in_output=bool(s["include_stop_str_in_output"]),
            multi_run=True, group="flex_mllm_judge", limit_mm={"image": 1}, scale=scale_of(m, variant)))
    return out


TASK = {v: f"flex_mllm_judge_{v}" for v in VARIANTS}
LEADERBOARD = (Section("mllm_as_a_judge_avg", "MLLM-as-a-Judge (score: Pearson; pair: accuracy; batch: norm. Levenshtein, lower is better)", (
    Column("score_pearson", TASK["score"], "pearson", as_released="pearson_as_released"),
    Column("pair_w_tie", TASK["pair"], "acc_w_tie"),
    Column("pair_wo_tie", TASK["pair"], "acc_wo_tie"),
    Column("batch_levenshtein(lower better)", TASK["batch"], "levenshtein", as_released="levenshtein_as_released"))),)

BENCHMARK = Benchmark("mllm_as_a_judge", tasks=tasks,
                      parsers={"mllm_pair": Parser(mllm_pair, "verdict", 2, winner={"A": "A", "B": "B", "C": "tie"},
                                                    headline="dataset_majority_accuracy"),
                               "mllm_score": Parser(mllm_score, "score", 1, headline="dataset_median_pearson"),
                               "mllm_batch": Parser(mllm_batch, "ranking", "per_answer", headline="dataset_worst_levenshtein")},
                      groups={"flex_mllm_judge": tuple(TASK.values())},
                      api={"compare": (TASK["pair"],), "score": (TASK["score"],), "rank": (TASK["batch"],)},
                      # the API's short names: mllm_score -> flex_mllm_judge_score
                      aliases={f"flex_mllm_{v}": t for v, t in TASK.items()},
                      judge_defaults=TASK, leaderboard=LEADERBOARD, load=load, fixtures="mllm_judge", fields=fields, user_parts=user_parts, parse=parse,
                      report=report, write_fixtures=write_fixtures, demo_example=demo_example, compare_fields=compare_fields)
