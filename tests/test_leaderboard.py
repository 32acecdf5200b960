"""Leaderboard on real lmms-eval output folders (tiny checkpoint, bundled fixtures): every table
value and CI equals the results file, deviations from the protocol are flagged, paper rows are
protocols.json's, and bad inputs get clear errors."""
import csv
import json
import math
import os
from pathlib import Path

import pytest

from flex_judge.analysis import leaderboard as LB
from flex_judge.analysis.runs import Run, RunError, find_results, load_run, load_runs, protocol_deviations
from flex_tasks.protocol import DETAIL_KEYS, TASKS, protocols
from test_leaderboard_fixtures import make_runs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def runs(tiny_vl):
    return make_runs(tiny_vl)


def _results(folder: Path) -> dict:
    return json.loads(find_results(folder)[0].read_text())


def test_table_values_equal_results_files(runs):
    board = LB.build(load_runs([runs["a"], runs["b"]]))
    checked = 0
    for sec_def in LB.SECTIONS:
        sec = next((s for s in board["sections"] if s["key"] == sec_def.key), None)
        for row in (sec or {"rows": []})["rows"]:
            if row["kind"] != "run":
                continue
            data = json.loads(Path(row["run"]).read_text())
            res = data["results"]
            for col, cell in row["cells"].items():
                if cell.get("derived"):
                    continue
                raw = res[cell["task"]][f"{cell['metric']},none"]
                if raw is None or (isinstance(raw, float) and math.isnan(raw)):
                    assert cell["value"] is None
                else:
                    assert cell["value"] == pytest.approx(raw * sec_def.scale, abs=1e-12)
                ci = res[cell["task"]].get(f"{cell['metric']}_ci95,none")
                if isinstance(ci, list) and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
                    assert cell["ci95"] == pytest.approx([x * sec_def.scale for x in ci])
                assert cell["parse_failure_rate"] == res[cell["task"]]["parse_failure_rate,none"]
                details = data["flex_details"][cell["task"]]  # written by `flex-judge eval`
                assert (cell["n_items"], cell["n_runs"]) == (details["n_items"], details["n_runs"])
                checked += 1
    assert checked >= 10
    keys = [s["key"] for s in board["sections"]]
    assert keys == ["mllm_as_a_judge_avg", "vl_rewardbench", "mj_bench", "genai_bench"]
    genai = next(s for s in board["sections"] if s["key"] == "genai_bench")
    assert {r["label"] for r in genai["rows"] if r["kind"] == "run"} == {"flex:vl", "flex:vl_majority"}
    meta = {m["label"]: m for m in board["runs"]}
    assert meta["flex:vl"]["model"] == "flex" and "backend=vllm" in meta["flex:vl"]["model_args"]
    assert meta["qwen2_5_vl:vl"]["limit"] == 3 and meta["flex:vl"]["lmms_eval_version"]


def test_runs_off_protocol_are_flagged_not_mixed(runs):
    board = LB.build(load_runs([runs["a"], runs["b"]]))
    mj = next(s for s in board["sections"] if s["key"] == "mj_bench")
    rows = {r["label"]: r for r in mj["rows"]}
    assert rows["flex:vl"]["flagged"] and rows["qwen2_5_vl:vl"]["flagged"]
    a, b = " ".join(rows["flex:vl"]["deviations"]), " ".join(rows["qwen2_5_vl:vl"]["deviations"])
    assert "greedy decoding" in a and "max_new_tokens=16 (protocol 4096)" in a and "--limit" not in a
    assert "--limit 3 (first 3 items, all runs)" in b
    vl = next(s for s in board["sections"] if s["key"] == "vl_rewardbench")
    assert any("n_runs=2 (protocol 5)" in d for d in vl["rows"][0]["deviations"])
    md = LB.to_markdown(board)
    assert "| flex:vl † |" in md and "Not the paper's protocol" in md
    assert "Flex-VL-7B (paper)" in md


def test_paper_rows_are_protocols_json():
    paper = protocols()["paper_results_v4"]
    board_rows = {s.key: LB._paper_rows(s) for s in LB.SECTIONS}
    for key, rows in board_rows.items():
        if key not in paper:  # a benchmark the paper does not report: no paper rows
            assert rows == []
            continue
        table = paper[key]
        for row in rows:
            name = row["label"].removesuffix(" (paper)")
            for col, v in zip(table["columns"], table[name]):
                cell = row["cells"][col]
                assert (cell["value"], cell["value2"]) == tuple(v) if isinstance(v, list) else cell["value"] == v


def _prov(*tasks, source="local"):
    return {"package": {"lmms_eval_version": "0.7.3", "flex_judge_version": "0.1.0"},
            "tasks": {t: {"source": source, "n_items": 10, "full_protocol": source != "fixtures"} for t in tasks}}


def test_protocol_faithful_run_is_not_flagged():
    spec = TASKS["flex_vl_rewardbench"]
    data = {"flex_provenance": _prov(spec.task),
            "config": {"model": "flex", "model_args": "pretrained=x", "limit": None},
            "results": {spec.task: {"overall_acc,none": 0.5}}, "flex_details": {spec.task: {"n_runs": spec.runs}},
            "configs": {spec.task: {"generation_kwargs": spec.generation_kwargs()}},
            "n-samples": {spec.task: {"original": 10, "effective": 10}}}
    run = Run(Path("x_results.json"), data, "ok")
    assert protocol_deviations(run, spec.task) == []
    data["flex_details"][spec.task]["n_runs"] = 2
    assert protocol_deviations(run, spec.task) == ["n_runs=2 (protocol 5)"]
    data["flex_details"][spec.task]["n_runs"] = spec.runs
    data["configs"][spec.task]["generation_kwargs"] = dict(spec.generation_kwargs(), seed=3, top_p=0.9)
    assert {d.split("=")[0] for d in protocol_deviations(run, spec.task)} == {"top_p", "seed"}


def test_fixture_data_and_missing_provenance_are_flagged(tmp_path, capsys):
    """A demo run on the bundled fixtures, or a results file with no record of its data, never sits
    unflagged beside the paper rows; the same results given twice is warned about and shown once."""
    spec = TASKS["flex_vl_rewardbench"]
    data = {"flex_provenance": _prov(spec.task, source="fixtures"),
            "config": {"model": "flex", "model_args": "pretrained=x", "limit": None},
            "results": {spec.task: {"overall_acc,none": 0.5}}, "flex_details": {spec.task: {"n_runs": spec.runs}},
            "configs": {spec.task: {"generation_kwargs": spec.generation_kwargs()}}}
    assert protocol_deviations(Run(Path("x_results.json"), data, "ok"), spec.task) == [
        "bundled fixtures, not the benchmark data"]
    del data["flex_provenance"]
    assert protocol_deviations(Run(Path("x_results.json"), data, "ok"), spec.task) == [
        "no data provenance (run it with `flex-judge eval`)"]
    data["flex_provenance"] = _prov(spec.task)
    a = tmp_path / "a" / "2026_results.json"
    b = tmp_path / "b" / "2026_results.json"
    for f in (a, b):
        f.parent.mkdir()
        f.write_text(json.dumps(data))
    assert LB.main([str(a), str(b), "--no-paper", "--formats", "md"]) == 0
    out, err = capsys.readouterr()
    assert f"{b} is the same results as {a}" in err
    assert out.count("| flex:x |") == 1
    assert "lmms-eval 0.7.3; flex-judge 0.1.0" in out


def test_cli_writes_md_csv_json(runs, tmp_path, capsys):
    rc = LB.main([str(runs["a"]), str(runs["b"]), "--out", str(tmp_path), "--labels", "flexA,qwenB"])
    assert rc == 0
    md = (tmp_path / "leaderboard.md").read_text()
    assert "flexA †" in md and "qwenB †" in md and md == capsys.readouterr().out.rstrip("\n") + "\n"
    rows = list(csv.DictReader(open(tmp_path / "leaderboard.csv")))
    res = _results(runs["a"])["results"]
    got = next(r for r in rows if r["label"] == "flexA" and r["column"] == "pair_w_tie")
    assert float(got["value"]) == pytest.approx(res["flex_mllm_judge_pair"]["acc_w_tie,none"])
    assert got["flagged"] == "True" and got["ci95_lo"] != ""
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert [r["label"] for r in board["runs"]] == ["flexA", "qwenB"]
    rc = LB.main([str(runs["a"]), "--out", str(tmp_path / "x"), "--exclude-flagged", "--no-paper"])
    assert rc == 0 and "flex:vl" not in (tmp_path / "x" / "leaderboard.md").read_text().split("## Runs")[0]


def test_not_a_run_folder(tmp_path, capsys):
    assert LB.main([str(tmp_path)]) == 2
    assert "not an lmms-eval output folder" in capsys.readouterr().err
    bad = tmp_path / "m" / "20260101_000000_results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"results": {"mme": {"acc,none": 1.0}}}))
    with pytest.raises(RunError, match="no flex tasks in this run"):
        load_run(bad)
    bad.write_text("{not json")
    with pytest.raises(RunError, match="cannot read results JSON"):
        load_run(bad)
    with pytest.raises(RunError, match="no such file or folder"):
        find_results(tmp_path / "missing")


def test_run_without_samples_is_clear(runs, tmp_path):
    import shutil

    shutil.copytree(runs["a"], tmp_path / "a")
    for f in (tmp_path / "a").glob("*/*_samples_flex_vl_rewardbench.jsonl"):
        f.unlink()
    run = load_runs([tmp_path / "a"])[0]
    assert LB.build([run])["sections"]  # the table needs only the results file
    with pytest.raises(RunError, match="--log_samples"):
        run.records("flex_vl_rewardbench")


def test_audio_and_genai_cells_from_a_results_dict():
    res = {"flex_bvcc": {"lcc,none": 0.1, "srcc,none": 0.2, "sys_lcc,none": 0.3, "sys_srcc,none": 0.4,
                         "lcc_ci95,none": [0.0, 0.2], "parse_failure_rate,none": 0.5},
           **{t: {"acc_mean,none": v, "acc_majority,none": v + 0.1}
              for t, v in (("flex_genai_bench_image", 0.4), ("flex_genai_bench_editing", 0.5),
                           ("flex_genai_bench_video", 0.6))}}
    details = {t: {"n_runs": TASKS[t].runs if TASKS[t].multi_run else 1} for t in res}
    data = {"flex_provenance": _prov(*res), "config": {"model": "flex", "model_args": "pretrained=/x/judge"}, "results": res,
            "flex_details": details,
            "configs": {t: {"generation_kwargs": TASKS[t].generation_kwargs()} for t in res}}
    board = LB.build([Run(Path("d_results.json"), data, "j")], with_paper=False)
    audio = next(s for s in board["sections"] if s["key"] == "audio_lcc_srcc")
    cells = audio["rows"][0]["cells"]
    assert (cells["bvcc_utt"]["value"], cells["bvcc_utt"]["value2"], cells["bvcc_sys"]["value2"]) == (0.1, 0.2, 0.4)
    assert not audio["rows"][0]["flagged"]
    assert "0.100 / 0.200 [0.000, 0.200]" in LB.to_markdown(board)
    genai = next(s for s in board["sections"] if s["key"] == "genai_bench")
    rows = {r["label"]: r["cells"] for r in genai["rows"]}
    assert rows["j"]["overall"]["value"] == pytest.approx(50.0)
    assert rows["j_majority"]["overall"]["value"] == pytest.approx(60.0)


def test_flex_model_arg_caps_are_flagged():
    """A task run at protocol settings but with the flex model capping the output is not the protocol."""
    spec = TASKS["flex_vl_rewardbench"]
    data = {"flex_provenance": _prov(spec.task),
            "config": {"model": "flex", "model_args": "pretrained=x,max_new_tokens=96,assistant_prefix=<think>\\n",
                       "limit": None},
            "results": {spec.task: {"overall_acc,none": 0.5}}, "flex_details": {spec.task: {"n_runs": spec.runs}},
            "configs": {spec.task: {"generation_kwargs": spec.generation_kwargs()}},
            "n-samples": {spec.task: {"original": 10, "effective": 10}}}
    devs = protocol_deviations(Run(Path("x_results.json"), data, "ok"), spec.task)
    assert devs[0] == "model_args max_new_tokens=96 caps the output (protocol 4096)"
    assert devs[1].startswith("model_args assistant_prefix=") and len(devs) == 2
    data["config"]["model_args"] = "pretrained=x,max_new_tokens=8192"
    assert protocol_deviations(Run(Path("x_results.json"), data, "ok"), spec.task) == []


def test_eval_records_data_provenance_per_task(runs):
    """`flex-judge eval` writes, per flex task: the source, item count, a hash of the loaded items
    (equal to hashing the items loaded here independently) and why the run is partial."""
    from importlib import metadata

    from flex_tasks.data import load_items
    from flex_tasks.provenance import items_hash

    a, b = _results(runs["a"]), _results(runs["b"])
    assert a["flex_provenance"]["package"]["lmms_eval_version"] == metadata.version("lmms_eval")
    prov = a["flex_provenance"]["tasks"]
    assert set(prov) == {t for t in a["results"] if t in TASKS}
    os.environ["FLEX_JUDGE_DATA"] = "fixtures"
    try:
        source, items = load_items(TASKS["flex_vl_rewardbench"])
    finally:
        del os.environ["FLEX_JUDGE_DATA"]
    vl = prov["flex_vl_rewardbench"]
    assert (vl["source"], vl["n_items"], vl["items_sha256"]) == ("fixtures", len(items), items_hash(items, source))
    assert vl["full_protocol"] is False
    assert vl["partial_reasons"] == ["bundled mini fixtures, not the benchmark", "FLEX_JUDGE_RUNS=2 (protocol 5 runs)"]
    assert "--limit 3" in b["flex_provenance"]["tasks"]["flex_mj_bench_alignment"]["partial_reasons"]


def _crafted_run(folder: Path, model_args: str, results: dict) -> Path:
    """A minimal results file of `flex-judge eval`: metrics as lmms-eval writes them
    ('<metric>,none'), the bookkeeping (DETAIL_KEYS) under flex_details."""
    folder.mkdir(parents=True)
    res = {t: {f"{k},none": v for k, v in m.items() if k not in DETAIL_KEYS} for t, m in results.items()}
    details = {t: {k: v for k, v in m.items() if k in DETAIL_KEYS} for t, m in results.items()}
    data = {"results": res, "config": {"model": "flex", "model_args": model_args, "limit": None},
            "configs": {}, "n-samples": {}, "flex_provenance": _prov(*results), "flex_details": details}
    path = folder / "20261129_000000_results.json"
    path.write_text(json.dumps(data))
    return path


def test_paper_rows_are_compared_with_as_released_mllm_values(tmp_path):
    common = {"parse_failure_rate": 0.0, "n_items": 3, "n_runs": 3}
    path = _crafted_run(tmp_path / "r", "pretrained=ckpt/vl", {
        "flex_mllm_judge_score": {"pearson": -0.451, "pearson_as_released": -0.332, **common},
        "flex_mllm_judge_batch": {"levenshtein": 0.429, "levenshtein_as_released": 0.321, **common}})
    run = load_runs([path])
    sec = next(s for s in LB.build(run)["sections"] if s["key"] == "mllm_as_a_judge_avg")
    row = next(r for r in sec["rows"] if r["kind"] == "run")
    assert row["cells"]["score_pearson"]["value"] == -0.332
    assert row["cells"]["score_pearson"]["metric"] == "pearson_as_released"
    assert row["cells"]["batch_levenshtein(lower better)"]["value"] == 0.321
    md = LB.to_markdown(LB.build(run))
    assert "`pearson_as_released` (runs pooled as the released test/evaluate.py does" in md
    sec = next(s for s in LB.build(run, with_paper=False)["sections"] if s["key"] == "mllm_as_a_judge_avg")
    assert sec["rows"][0]["cells"]["score_pearson"]["value"] == -0.451  # no paper rows: the protocol value


def test_unit_audio_scaling_is_flagged_against_paper_rows(tmp_path):
    common = {"lcc": 0.5, "srcc": 0.5, "parse_failure_rate": 0.0, "n_items": 3, "n_runs": 1}
    unit = load_runs([_crafted_run(tmp_path / "u", "pretrained=ckpt/omni,audio_scaling=unit", {"flex_voxsim": common})])[0]
    released = load_runs([_crafted_run(tmp_path / "r", "pretrained=ckpt/omni", {"flex_voxsim": common})])[0]
    assert any("audio_scaling=unit" in d for d in protocol_deviations(unit, "flex_voxsim"))
    assert not any("audio_scaling" in d for d in protocol_deviations(released, "flex_voxsim"))
    audio = next(s for s in LB.build([unit, released])["sections"] if s["key"] == "audio_lcc_srcc")
    assert [r["flagged"] for r in audio["rows"] if r["kind"] == "run"] == [False, True]


def test_bookkeeping_read_from_flex_details_or_older_metrics(tmp_path):
    """Item and run counts come from flex_details; results files written before it existed held
    them as metrics and still read the same."""
    spec = TASKS["flex_vl_rewardbench"]
    new = load_runs([_crafted_run(tmp_path / "new", "pretrained=x", {spec.task: {
        "overall_acc": 0.5, "parse_failure_rate": 0.1, "n_items": 7, "n_runs": 2}})])[0]
    data = json.loads(new.results_file.read_text())
    assert "n_runs,none" not in data["results"][spec.task]
    old = Run(Path("old_results.json"), {**data, "flex_details": {}, "results": {spec.task: {
        **data["results"][spec.task], "n_items,none": 7, "n_runs,none": 2, "bootstrap_seed,none": 1234}}}, "old")
    for run in (new, old):
        assert (run.details(spec.task)["n_items"], run.details(spec.task)["n_runs"]) == (7, 2)
        assert "n_runs=2 (protocol 5)" in protocol_deviations(run, spec.task)
        cell = LB.build([run], with_paper=False)["sections"][0]["rows"][0]["cells"]["overall"]
        assert (cell["n_items"], cell["n_runs"], cell["parse_failure_rate"]) == (7, 2, 0.1)


# ---------------------------------------------------------------- rank marks backed by a paired test
def _judges(tmp_path, skills: dict) -> list:
    import random

    from test_paired import make_records, write_run

    tasks = ["flex_mj_bench_alignment", "flex_nisqa"]
    base = {t: make_records(t, 150, 2 if TASKS[t].multi_run else 1, random.Random(f"{t}-base"), 0.9) for t in tasks}
    folders = []
    for name, skill in skills.items():
        recs = base if skill is None else {
            t: make_records(t, 150, 2 if TASKS[t].multi_run else 1, random.Random(f"{t}-{name}"), skill, like=base[t])
            for t in tasks}
        folders.append(write_run(tmp_path, name, recs))
    return load_runs(folders, labels=list(skills))


def _ranked_cells(board):
    return {(sec["key"], col): (row["label"], row["cells"][col]["rank_test"]) for sec in board["sections"]
            for row in sec["rows"] for col in sec["columns"] if "rank_test" in row["cells"].get(col, {})}


def test_rank_mark_only_where_the_paired_test_says_so(tmp_path):
    board = LB.build(_judges(tmp_path / "clear", {"weak": 0.3, "good": None}), with_paper=False)
    marks = _ranked_cells(board)
    assert set(marks) == {("mj_bench", "alignment_w_tie"), ("audio_lcc_srcc", "nisqa_utt")}
    for label, rt in marks.values():
        assert label == "good" and rt["vs"] == "weak" and rt["significant"] and rt["p_holm"] < 0.05
    mj = marks[("mj_bench", "alignment_w_tie")][1]
    assert mj["test"] == "McNemar exact" and mj["diff"] > 10  # percent points, like the cells
    md = LB.to_markdown(board)
    row = next(line for line in md.splitlines() if line.startswith("| good"))
    assert row.count("** (1st)") == 1  # the MJ-Bench table's w_tie column only (w.o. tie is not a headline)
    assert "## Rank marks" in md and "good beats weak" in md
    # a near tie: the top row is not marked, and the notes say so
    board = LB.build(_judges(tmp_path / "close", {"a": None, "b": 0.88}), with_paper=False)
    marks = _ranked_cells(board)
    assert marks and not any(rt["significant"] for _, rt in marks.values())
    md = LB.to_markdown(board)
    assert "** (1st)" not in md and "is not significantly better than" in md
    # identical runs tie: no test, no mark
    board = LB.build(_judges(tmp_path / "same", {"x": None, "y": None}), with_paper=False)
    assert _ranked_cells(board) == {} and any("tie: no rank mark" in n for n in board["rank_notes"])
    json.dumps(LB.json_safe(board), allow_nan=False)
