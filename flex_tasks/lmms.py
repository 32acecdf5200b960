"""Thin lmms-eval adapters: the YAML hooks. All logic lives in protocol / data / prompts /
parsing / the benchmark modules (with their reports); this module only wires them to lmms-eval's calling conventions.

Every flex YAML loads a one-row stub (``{"flex_task": <task>}``); :func:`process_docs`
replaces it with the real data, one doc per (item, run) (contract 2).
"""
from __future__ import annotations

import numpy as np

from flex_tasks import benchmarks, media, prompts
from flex_tasks.data import duplicate_ids, load_items
from flex_tasks.protocol import TASKS, TaskSpec, bootstrap_iters, get
from flex_tasks.record import GROUP_KEYS, Record, RecordRef, as_records
from flex_tasks.metrics import DEFAULT_BOOTSTRAP_SEED


def _spec(doc_or_ds) -> TaskSpec:
    return get(doc_or_ds["flex_task"])


def run_plan(spec: TaskSpec, n_items: int) -> list[tuple[int, bool]]:
    """``[(run, swap) ...]`` for every run, per item: a list of length n_items x n_runs in
    item-major order. VL-RewardBench run k: ``np.random.seed(k)``; swap item i when its
    uniform draw is >= 0.5. MJ-Bench: odd runs show the images swapped."""
    n = spec.n_runs()
    if spec.order == "random_swap":
        draws = [np.random.RandomState(k).uniform(size=n_items) for k in range(n)]
        return [(k, bool(draws[k][i] >= 0.5)) for i in range(n_items) for k in range(n)]
    if spec.order == "swap_odd_runs":
        return [(k, k % 2 == 1) for _ in range(n_items) for k in range(n)]
    return [(k, False) for _ in range(n_items) for k in range(n)]


def expand(spec: TaskSpec, items: list[dict]) -> list[dict]:
    plan = iter(run_plan(spec, len(items)))
    docs = []
    for item in items:
        for _ in range(spec.n_runs()):
            k, swap = next(plan)
            doc = dict(item)
            doc.update(flex_task=spec.task, flex_item=item["item"], flex_run=k, flex_seed=spec.seed(k),
                       flex_swap=swap, flex_target=str(item["gold"]))
            if spec.video:
                doc["flex_video"] = dict(spec.video)
            docs.append(doc)
    return docs


def process_docs(dataset):
    import datasets

    if "flex_task" not in dataset.column_names or len(dataset) == 0:
        raise ValueError("flex task YAMLs must load a stub with a 'flex_task' column (see yaml_tasks/generate.py)")
    spec = get(dataset[0]["flex_task"])
    _, items = load_items(spec)
    return datasets.Dataset.from_list(expand(spec, items))


def doc_to_messages(doc, **_):
    spec = _spec(doc)
    return prompts.messages(spec, doc, media.resolve(spec, doc))


def doc_to_visual(doc):
    return media.resolve(_spec(doc), doc)


def doc_to_text(doc):
    """Simple-mode fallback: the user text with media placeholders removed."""
    return "".join(t for kind, t in prompts.user_parts(_spec(doc), doc) if kind == "text")


def doc_to_target(doc):
    return doc["flex_target"]


def make_record(spec: TaskSpec, doc: dict, text: str) -> Record:
    """The per-(item, run) record of one output: parsed verdict (in the original order),
    gold, seed and presentation order, and the item's group fields for the report."""
    p = benchmarks.parse(spec, doc, text)  # the benchmark's parser; outside the protocol's scale = not parsed
    pred = p.value
    return Record(task=spec.task, item=doc["flex_item"], run=int(doc["flex_run"]), seed=int(doc["flex_seed"]),
                  swap=bool(doc["flex_swap"]), raw=text or "", pred=pred, ok=bool(p.ok), how=p.how,
                  gold=doc["gold"], group={k: doc[k] for k in GROUP_KEYS if k in doc}, data_id=doc.get("data_id"))


def process_results(doc, results):
    """The record once, under the task's first metric; a reference to it under the others."""
    spec = _spec(doc)
    rec = make_record(spec, doc, results[0] if results else "")
    first, *rest = [name for name, _ in spec.metric_names()]
    return {first: rec.as_dict(), **{name: RecordRef(rec, first) for name in rest}}  # the JSON edge: a dict


# ------------------------------------------------------------------ aggregations
_CACHE: list = []  # [(key, report)]
def details_of(spec: TaskSpec, report: dict) -> dict:
    """The part of a report that is not one of the task's printed metrics (the bookkeeping:
    protocol.DETAIL_KEYS). lmms-eval keeps only metric values, so `flex-judge eval` computes it
    from the records in the samples lmms-eval returns and writes it as `flex_details`."""
    printed = {name for name, _ in spec.metric_names()}
    return {k: v for k, v in report.items() if k not in printed}


def _key(records: list[Record]) -> tuple:
    return tuple((r.task, r.item, r.run, repr(r.pred), r.ok) for r in records)


def report_for(values: list) -> dict:
    """The task's report over one aggregation's inputs (records or references to them);
    computed once for all the metrics of a task."""
    records = as_records(values, "aggregation input")
    if not records:
        return {}
    key = _key(records)
    spec = get(records[0].task)
    for k, rep in _CACHE:
        if k == key:
            break
    else:
        rep = benchmarks.of(spec).report(spec, records, iters=bootstrap_iters(), seed=DEFAULT_BOOTSTRAP_SEED)
        # rows sharing a data id are separate items (keyed by position); say how many there were
        first = {r.item: r.data_id for r in records}
        rep.setdefault("breakdown", {})["duplicate_data_ids"] = duplicate_ids(d for d in first.values() if d is not None)
        _CACHE.append((key, rep))
        del _CACHE[:-4]
    return rep


def group_mean(values, sizes, weight_by_size=False):
    """A group's value of a member metric (lmms-eval ``aggregate_metric_list``): the unweighted
    mean over the member tasks, as the paper's overall column. lmms-eval also hands over the
    metrics whose names contain this one (``acc_mean_ci95``): a mean of intervals is no
    interval, so those get None. NaN when a member is NaN."""
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in values):
        return None
    if weight_by_size:
        return float(np.average(values, weights=sizes))
    return float(np.mean(values)) if values else float("nan")


CI_DIGITS = 4  # a CI's ends as lmms-eval prints values (it prints lists as they are)


def _make_agg(metric: str):
    def agg(items):
        value = report_for(items).get(metric, float("nan"))
        if metric.endswith("_ci95") and isinstance(value, list):
            return [round(float(v), CI_DIGITS) for v in value]
        return value

    agg.__name__ = f"agg_{metric}"
    return agg


ALL_METRICS = sorted({name for spec in TASKS.values() for name, _ in spec.metric_names()})
for _m in ALL_METRICS:
    globals()[f"agg_{_m}"] = _make_agg(_m)
