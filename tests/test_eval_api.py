"""`flex-judge eval` drives lmms-eval through its public API (flex_judge/lmms_main.py): a plain
`lmms-eval --model flex` run and a `flex-judge eval` run of the same task give the same samples and
the same metrics (NISQA's per-set values among them, as real metrics of the task); a SIGKILL of the
process the user started leaves no process behind; Ctrl-C is one quiet line and the rerun resumes;
settings at fault are one line, before any model loads. Real lmms-eval CLI, real transformers on the
tiny checkpoints, the bundled fixtures."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from run_env import fixture_env

REPO = Path(__file__).resolve().parents[1]
NISQA = "flex_nisqa"
VLRB = "flex_vl_rewardbench"
VLRB_DOCS = 6 * 2  # fixture items x FLEX_JUDGE_RUNS


def flex_judge(*args, timeout=600, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flex_judge.cli", *args], cwd=REPO, env=fixture_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def _results(out: Path) -> dict:
    files = sorted(out.rglob("*_results.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def _samples(out: Path, task: str) -> list[dict]:
    files = sorted(out.rglob(f"*_samples_{task}.jsonl"))
    assert len(files) == 1, files
    return sorted((json.loads(line) for line in files[0].read_text().splitlines() if line.strip()),
                  key=lambda r: r["doc_id"])


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (JSON text of both); configs name hook functions with their address
    in the process that ran them (``<function f at 0x7f...>``), which is left out."""
    def text(x):
        return re.sub(r" at 0x[0-9a-f]+>", ">", json.dumps(x, sort_keys=True))

    return text(a) == text(b)


# ------------------------------------------------------------------ both paths, one task
@pytest.fixture(scope="module")
def both_paths(tiny_omni, tmp_path_factory):
    from flex_judge.cli import tasks_path

    model_args = f"pretrained={tiny_omni},backend=hf,dtype=float32,max_new_tokens=8"
    plain_out, flex_out = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("flex")
    plain = subprocess.run([sys.executable, "-m", "lmms_eval", "--model", "flex", "--model_args", model_args,
                            "--tasks", NISQA, "--include_path", str(tasks_path()), "--output_path", str(plain_out),
                            "--log_samples"], cwd=REPO, env=fixture_env(), capture_output=True, text=True, timeout=600)
    assert plain.returncode == 0, plain.stderr[-3000:]
    flex = flex_judge("eval", "--model_args", model_args, "--tasks", NISQA, "--output_path", str(flex_out),
                      "--log_samples")
    assert flex.returncode == 0, flex.stderr[-3000:]
    return plain_out, flex_out


def test_plain_lmms_eval_and_flex_judge_eval_give_the_same_samples_and_metrics(both_paths):
    plain_out, flex_out = both_paths
    plain, flex = _results(plain_out), _results(flex_out)
    for key in ("results", "configs", "n-samples", "higher_is_better", "versions"):
        assert _same(plain[key], flex[key]), key
    rows_p, rows_f = _samples(plain_out, NISQA), _samples(flex_out, NISQA)
    assert len(rows_p) == 9
    for p, f in zip(rows_p, rows_f):
        assert _same(p, f)
    # flex-judge eval adds, lmms-eval alone does not
    assert "flex_provenance" not in plain and NISQA in flex["flex_provenance"]["tasks"]
    assert flex["flex_details"][NISQA]["n_items"] == 9


def test_nisqa_per_set_values_are_lmms_eval_metrics(both_paths):
    """Each set's LCC / SRCC / MSE is a metric of the task in both runs, equal to scipy / numpy on
    the records of that set (the records are in the samples)."""
    from scipy import stats

    plain_out, _ = both_paths
    res = _results(plain_out)["results"][NISQA]
    rows = _samples(plain_out, NISQA)
    for s in ("FOR", "LIVETALK", "P501"):
        recs = [r["lcc"] for r in rows if r["lcc"]["set"] == s]
        assert len(recs) == 3
        pred = np.array([float(r["pred"]) for r in recs])
        gold = np.array([float(r["gold"]) for r in recs])
        assert res[f"mse_{s},none"] == pytest.approx(float(np.mean((pred - gold) ** 2)))
        want = stats.pearsonr(pred, gold)[0] if np.ptp(pred) > 0 else math.nan
        got = res[f"lcc_{s},none"]
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
        assert f"srcc_{s},none" in res
    assert "per_set" not in _results(both_paths[1])["flex_details"][NISQA]["breakdown"]  # one place only


# ------------------------------------------------------------------ SIGKILL and Ctrl-C of the outer process
def _journal(out: Path) -> list[str]:
    keys = []
    for f in sorted((out / "flex_journal").glob("judgments*.jsonl")):
        keys += [json.loads(line)["key"] for line in f.read_text().splitlines() if line.strip()]
    return keys


def _children() -> dict[int, int]:
    """pid -> parent pid, of every process that is not a zombie."""
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat[0] != "Z":
                out[int(p.name)] = int(stat[1])
    return out


def _tree(root: int) -> set[int]:
    parents, tree, todo = _children(), set(), [root]
    while todo:
        pid = todo.pop()
        kids = [c for c, pp in parents.items() if pp == pid]
        tree.update(kids)
        todo += kids
    return tree


def _alive(pids) -> set[int]:
    return set(pids) & set(_children())


def _start_eval(tiny_vl, out: Path, *extra: str) -> subprocess.Popen:
    # long outputs, one request per engine call: the run is still judging when the signal lands
    model_args = f"pretrained={tiny_vl},backend=hf,dtype=float32,max_new_tokens=48,stream_window=1"
    return subprocess.Popen([sys.executable, "-m", "flex_judge.cli", "eval", *extra, "--model_args", model_args,
                             "--tasks", VLRB, "--output_path", str(out), "--log_samples"], cwd=REPO, env=fixture_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_judgments(proc, out: Path, n: int = 1):
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(_journal(out)) < n:
        time.sleep(0.05)
    assert proc.poll() is None and len(_journal(out)) >= n, "the run ended or never judged"


@pytest.mark.parametrize("nproc", ["1", "2"])
def test_sigkill_of_flex_judge_eval_leaves_no_process_behind(tiny_vl, tmp_path, nproc):
    """The process the user started is SIGKILLed mid-run: its whole tree (lmms_main, or torchrun and
    its ranks) is gone within 30 s and the journal stops growing; no results file is written."""
    out = tmp_path / "killed"
    proc = _start_eval(tiny_vl, out, "--num_processes", nproc)
    try:
        _wait_for_judgments(proc, out)
        tree = _tree(proc.pid)
        assert tree, "no child process found"
        os.kill(proc.pid, signal.SIGKILL)  # the user's process only, not its group
        proc.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline and _alive(tree):
            time.sleep(0.1)
        assert not _alive(tree), f"left behind: {sorted(_alive(tree))}"
        done = len(_journal(out))
        time.sleep(3)
        assert len(_journal(out)) == done < VLRB_DOCS
        assert not list(out.rglob("*_results.json"))
    finally:
        for pid in _alive(_tree(proc.pid) | {proc.pid}):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_is_one_quiet_line_and_the_rerun_resumes(tiny_vl, tmp_path):
    out = tmp_path / "ctrl_c"
    proc = _start_eval(tiny_vl, out)
    try:
        _wait_for_judgments(proc, out)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the foreground process group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.count("interrupted") == 1 and "rerun the same command to resume" in err
    done = len(_journal(out))
    assert 1 <= done < VLRB_DOCS

    model_args = f"pretrained={tiny_vl},backend=hf,dtype=float32,max_new_tokens=48,stream_window=1"
    rerun = flex_judge("eval", "--model_args", model_args, "--tasks", VLRB, "--output_path", str(out), "--log_samples")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    keys = _journal(out)
    assert len(keys) == len(set(keys)) == VLRB_DOCS
    assert f"{done} of {VLRB_DOCS} requests already judged" in rerun.stderr + rerun.stdout


# ------------------------------------------------------------------ settings at fault, help
def test_model_args_with_a_real_newline_are_refused_before_anything_loads():
    proc = flex_judge("eval", "--model_args", "pretrained=x,assistant_prefix=<think>\n", "--tasks", VLRB, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--model_args assistant_prefix=...: the value holds a real newline" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_escaped_newline_reaches_the_model_as_a_newline():
    """What the refusal tells the user to write works: ``\\n`` (two characters) is a newline to the
    flex model, after lmms-eval's own model_args parser."""
    from lmms_eval.utils import simple_parse_args_string

    from flex_models.args import parse_args

    parsed = simple_parse_args_string("pretrained=x,assistant_prefix=<think>\\n")
    assert parse_args(parsed).assistant_prefix == "<think>\n"


def test_unknown_task_is_one_line_with_a_suggestion(tmp_path):
    proc = flex_judge("eval", "--model_args", "pretrained=x", "--tasks", "flex_vl_rewardbench,mmmu_vall",
                      "--output_path", str(tmp_path), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert re.search(r"--tasks: not found: 'mmmu_vall' \(did you mean 'mmmu_val'\?\)", proc.stderr), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_verbose_shows_the_traceback_otherwise_one_line(tmp_path):
    """An lmms-eval error (an unknown model): exit 1 and one line naming it; `flex-judge --verbose`
    adds the traceback."""
    base = ["eval", "--model", "nosuch_model", "--model_args", "x=1", "--tasks", VLRB, "--output_path", str(tmp_path)]
    quiet, loud = flex_judge(*base, timeout=300), flex_judge("--verbose", *base, timeout=300)
    assert quiet.returncode == loud.returncode == 1, quiet.stderr[-2000:]
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr
    assert "flex-judge eval: FAILED\n  ValueError: Model 'nosuch_model' not found" in quiet.stderr


def test_eval_help_lists_flex_options_then_lmms_eval_options():
    proc = flex_judge("eval", "--help", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    flex_part, _, lmms_part = text.partition("lmms-eval options:")
    for name, default in (("--num_processes N", "1"), ("--verbose", "off"), ("FLEX_JUDGE_DATA", "unset"),
                          ("FLEX_JUDGE_RUNS", "the protocol's"), ("FLEX_JUDGE_JOURNAL", "<output_path>/flex_journal")):
        assert re.search(rf"{re.escape(name)}\s+default: {re.escape(default)}", flex_part), name
    assert "--model_args" in lmms_part and "--include_path" in lmms_part


def test_tasks_path_help_exits_0():
    proc = flex_judge("tasks-path", "--help", timeout=120)
    assert proc.returncode == 0 and "usage: flex-judge tasks-path" in proc.stdout


def test_top_level_help_lists_verbose():
    proc = flex_judge("--help", timeout=120)
    assert proc.returncode == 0 and "--verbose" in proc.stdout


def test_documented_max_new_tokens_precedence_matches_the_code():
    """README / docs say: model_args max_new_tokens fills in where a task gives none and, given
    explicitly, caps every task's budget. The code does that (flex_models.requests.build_spec)."""
    from flex_models.args import parse_args
    from flex_models.requests import build_spec

    task = {"max_new_tokens": 4096, "temperature": 0.6, "top_p": 0.95, "do_sample": True}
    explicit = parse_args({"pretrained": "x", "max_new_tokens": 8})
    default = parse_args({"pretrained": "x"})
    assert build_spec(task, explicit.max_new_tokens, cap_max_new_tokens=explicit.max_new_tokens_cap).max_new_tokens == 8
    assert build_spec(task, default.max_new_tokens, cap_max_new_tokens=default.max_new_tokens_cap).max_new_tokens == 4096
    no_budget = {k: v for k, v in task.items() if k != "max_new_tokens"}
    assert build_spec(no_budget, default.max_new_tokens, cap_max_new_tokens=default.max_new_tokens_cap).max_new_tokens \
        == default.max_new_tokens
    assert "caps every task's `max_new_tokens`" in (REPO / "docs" / "eval.md").read_text()


def test_readme_max_new_tokens_row_matches_the_code():
    row = next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("| `max_new_tokens`"))
    assert "caps every task's `max_new_tokens`" in row and "wins)" not in row


def test_lmms_main_assigns_into_no_module_and_keeps_no_global_state():
    """Structural guard of the public-API driver: the only attributes it assigns are its own parsed
    args, the parser's prog and (restored) sys.argv (item assignments go only into its own local
    dicts); no `global`, no os.environ writes."""
    import ast

    tree = ast.parse((REPO / "flex_judge" / "lmms_main.py").read_text())
    targets = []
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Global)
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(t, ast.Attribute):
                    targets.append(ast.unparse(t))
    allowed = {"sys.argv", "parser.prog", "args.log_samples", "args.model_args", "args.include_path"}
    assert set(targets) <= allowed, set(targets) - allowed
    assert "os.environ[" not in (REPO / "flex_judge" / "lmms_main.py").read_text()
