"""One typed Record from make_record to the reports, the samples file, compare and the HTML
report (issue 22): dicts only at the JSON edges, parsed strictly once.

- every task's report gives the same numbers from Records, from their dicts and from the
  Records a samples file is read back into (flex_judge.analysis.runs.load_records);
- compare's paired headline on loaded Records is the task's report of the dicts;
- a samples line whose record lacks a field or has one of the wrong type fails naming file:line;
- no module under flex_tasks/ or flex_judge/ indexes a record as a dict (source scan).
"""
from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from flex_tasks import benchmarks, lmms
from flex_tasks.data import load_items
from flex_tasks.protocol import TASKS
from flex_tasks.record import Record, RecordError, RecordRef, as_records

ROOT = Path(__file__).resolve().parents[1]


def _outputs():
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    try:
        import make_task_golden as g
    finally:
        sys.path.pop(0)
    return g.fixed_output


def _same(a, b, where=""):
    """Equal reports, NaN equal to NaN."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), (where, set(a) ^ set(b))
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, (where, a, b)


@pytest.fixture(scope="module")
def task_records():
    """task -> Records of the bundled fixtures with the golden's fixed outputs (made as lmms-eval
    makes them: make_record per doc)."""
    import os

    old = os.environ.get("FLEX_JUDGE_DATA")
    os.environ["FLEX_JUDGE_DATA"] = "fixtures"  # the test is the edge that picks the data
    try:
        fixed_output = _outputs()
        out = {}
        for task, spec in TASKS.items():
            _, items = load_items(spec)
            docs = lmms.expand(spec, items)
            out[task] = [lmms.make_record(spec, d, fixed_output(spec, d, i)) for i, d in enumerate(docs)]
        return out
    finally:
        if old is None:
            os.environ.pop("FLEX_JUDGE_DATA")
        else:
            os.environ["FLEX_JUDGE_DATA"] = old


@pytest.mark.parametrize("task", sorted(TASKS))
def test_reports_of_records_equal_reports_of_their_dicts(task, task_records):
    spec = TASKS[task]
    recs = task_records[task]
    assert recs and all(isinstance(r, Record) for r in recs)
    dicts = [r.as_dict() for r in recs]
    report = benchmarks.of(spec).report
    from_records = report(spec, recs, iters=20, seed=3)
    _same(from_records, report(spec, dicts, iters=20, seed=3), task)
    _same(from_records, report.__wrapped__(spec, recs, iters=20, seed=3), task)  # the module's own function
    # what lmms-eval hands an aggregation: the dict under the first metric, references under the others
    outs = [lmms.process_results(d, [r.raw]) for d, r in zip(_docs(spec, recs), recs)]
    first, *rest = [m for m, _ in spec.metric_names()]
    for m in [first, *rest]:
        assert _json(as_records([o[m] for o in outs])) == _json(recs), m
    if rest:
        assert all(isinstance(o[rest[0]], RecordRef) and isinstance(o[first], dict) for o in outs)


def _json(recs) -> list[str]:
    """Records as their samples-file JSON (NaN group values compare equal as text)."""
    return [json.dumps(r.as_dict(), sort_keys=True) for r in recs]


def _docs(spec, recs):
    import os

    old = os.environ.get("FLEX_JUDGE_DATA")
    os.environ["FLEX_JUDGE_DATA"] = "fixtures"
    try:
        _, items = load_items(spec)
        return lmms.expand(spec, items)
    finally:
        if old is None:
            os.environ.pop("FLEX_JUDGE_DATA")
        else:
            os.environ["FLEX_JUDGE_DATA"] = old


def test_samples_file_read_back_as_records_and_compared(task_records, tmp_path):
    """Records written as lmms-eval writes them and read back by the compare / leaderboard /
    report loader are the same Records; compare's headline on them is the dict path's report."""
    from test_paired import write_run

    from flex_judge.analysis import compare as C
    from flex_judge.analysis import report as R
    from flex_judge.analysis.runs import load_runs

    tasks = sorted(TASKS)
    by_task = {t: [r.as_dict() for r in task_records[t]] for t in tasks}
    run = load_runs([write_run(tmp_path, "judge", by_task)])[0]
    for t in tasks:
        loaded = run.records(t)
        assert all(isinstance(r, Record) for r in loaded), t
        assert _json(loaded) == _json(task_records[t]), t
        keys = sorted({(r.item, r.run) for r in loaded})
        form = C.headline_stat(t, keys, {(r.item, r.run): r for r in loaded})
        metric = TASKS[t].headline[0][0]
        want = benchmarks.of(TASKS[t]).report(TASKS[t], by_task[t], iters=0, seed=0)[metric]
        assert form["stat"](np.ones((1, form["n_items"])))[0] == pytest.approx(want, abs=1e-12, nan_ok=True), t
        if TASKS[t].order is not None:
            assert C.position_consistency(run, t)["pairs"] >= 0
    items = R.build_items([run], with_media=False)
    shown = {(items["tasks"][it["t"]]["task"], it["item"], r["run"]): r["judges"]["0"]
             for it in items["items"] for r in it["runs"]}
    for t in tasks:
        for rec in task_records[t]:
            j = shown[(t, rec.item, rec.run)]
            assert (j["text"], j["ok"], j["how"]) == (rec.raw, rec.ok, rec.how)


def _write_samples(tmp_path, task, rec_dict) -> Path:
    from test_paired import write_run

    good = [r.as_dict() for r in [Record(task=task, item=i, run=0, seed=0, swap=False, raw="", pred=0, ok=True,
                                         how="answer", gold=0, group={"category": "general"}) for i in range(2)]]
    folder = write_run(tmp_path, "judge", {task: good})
    f = next(folder.glob("*_samples_*.jsonl"))
    key = TASKS[task].metric_names()[0][0]
    lines = f.read_text().splitlines()
    lines.insert(1, json.dumps({"doc_id": 9, key: rec_dict, "filtered_resps": [""]}))
    f.write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("change, message", [
    ({"ok": "yes"}, "record field 'ok' must be true or false, got 'yes'"),
    ({"run": "1"}, "record field 'run' must be an integer, got '1'"),
    ({"seed": None}, "record field 'seed' must be an integer, got None"),
    ({"raw": 3}, "record field 'raw' must be a string, got 3"),
    ({"drop": "how"}, "lacks"),
])
def test_malformed_samples_line_names_file_and_line(tmp_path, change, message):
    from flex_judge.analysis.runs import RunError, load_runs

    task = "flex_vl_rewardbench"
    bad = Record(task=task, item=5, run=0, seed=0, swap=False, raw="", pred=1, ok=True, how="answer", gold=0,
                 group={"category": "general"}).as_dict()
    if "drop" in change:
        bad.pop(change["drop"])
    else:
        bad.update(change)
    run = load_runs([_write_samples(tmp_path, task, bad)])[0]
    with pytest.raises(RunError) as e:
        run.records(task)
    assert f"_samples_{task}.jsonl:2:" in str(e.value) and message in str(e.value)


def test_from_dict_is_strict_and_round_trips():
    r = Record(task="t", item=0, run=1, seed=1, swap=True, raw="x", pred=[1, 2], ok=False, how="fallback",
               gold=None, group={"dataset": "D"}, data_id="id0")
    assert Record.from_dict(r.as_dict()) == r and r.group.get("dataset") == "D" and r.grouped("dataset") == "D"
    with pytest.raises(RecordError, match=r"rows.jsonl:7: the record lacks gold"):
        Record.from_dict({k: v for k, v in r.as_dict().items() if k != "gold"}, "rows.jsonl:7")
    with pytest.raises(RecordError, match="'swap' must be true or false, got 1"):
        Record.from_dict(dict(r.as_dict(), swap=1))
    with pytest.raises(RecordError, match="no 'category'"):
        r.grouped("category")
    with pytest.raises(RecordError, match="must be a JSON object"):
        as_records(["@acc"], "aggregation input")


# ---------------------------------------------------------------- no dict access on records
RECORD_FIELDS = set(Record.__dataclass_fields__) | {"category", "dataset", "set", "system", "system_gt", "text"}
# names the code gives a record (a Record, or a row of the record grid)
RECORD_NAMES = {"r", "rec", "rec0", "record", "first", "a", "b", "x", "y"}
# (module, function): a name above bound to something that is not a flex Record
NOT_RECORDS = {
    ("flex_judge/judging/items.py", "summarize"): "rows of `flex-judge judge` output (their own schema)",
    ("flex_judge/demo.py", "render_table"): "rows of the demo's table",
    ("flex_judge/demo.py", "report"): "rows of the demo's table",
    ("flex_judge/demo.py", "readme_table"): "rows of the demo's table",
}


def _hits(path: Path):
    tree = ast.parse(path.read_text())
    for n in ast.walk(tree):
        base = key = None
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant):
            base, key = n.value, n.slice.value
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" and n.args
              and isinstance(n.args[0], ast.Constant)):
            base, key = n.func.value, n.args[0].value
        if key not in RECORD_FIELDS:
            continue
        recordish = (isinstance(base, ast.Name) and base.id in RECORD_NAMES) or (
            isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "first_record") or (
            isinstance(base, ast.Subscript) and isinstance(base.value, ast.Name)
            and base.value.id in {"ra", "rb", "recs", "row", "grid"} and not isinstance(base.slice, ast.Constant))
        if recordish:
            yield n.lineno, ast.unparse(n)


def _functions(path: Path) -> list:
    """(first line, last line, name) of every function of a module."""
    return [(f.lineno, f.end_lineno, f.name) for f in ast.walk(ast.parse(path.read_text()))
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_module_indexes_a_record_as_a_dict():
    found = []
    for path in sorted([*ROOT.glob("flex_tasks/**/*.py"), *ROOT.glob("flex_judge/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        spans = _functions(path)
        for line, code in _hits(path):
            if any((rel, name) in NOT_RECORDS for lo, hi, name in spans if lo <= line <= hi):
                continue
            found.append(f"{rel}:{line}: {code}")
    assert not found, "records are typed (flex_tasks.record.Record): use attributes, not keys:\n" + "\n".join(found)


def test_the_scan_finds_dict_access_on_records():
    """The scan is not vacuous: it flags the forms the code used before records were typed."""
    import tempfile

    src = ('def f(records, grid, ra, rb, k):\n'
           '    a = [r["pred"] for r in records]\n'
           '    b = first_record(grid[0])["category"]\n'
           '    c = ra[k].get("ok")\n'
           '    d = rec.get("how", "fallback")\n')
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.py"
        p.write_text(src)
        assert sorted(line for line, _ in _hits(p)) == [2, 3, 4, 5]
