"""The trainer's command line: --help generated from the config dataclass, the documented defaults
checked against the code's, --resume of a finished run, and no os.environ writes in the trainer."""
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import config as C

REPO = Path(__file__).resolve().parents[1]


def test_train_help_lists_every_key_with_type_default_and_doc(capsys):
    from trainer.train import main

    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines: compare word by word
    for row in C.key_table():
        metavar = "{" + ",".join(row["choices"]) + "}" if row["choices"] else row["type"].upper()
        want = " ".join(f"--{row['name']} {metavar} {row['doc']} (default: {row['default']})".split())
        assert want in text, row["name"]
    assert len(C.key_table()) == len(C.FIELDS) >= 37


def test_every_default_reads_back_as_typed_on_the_command_line():
    for name in C.FIELDS:
        text = C.value_text(C.default_of(name))
        back = "" if text == '""' else C._coerce(name, text)
        assert back == C.default_of(name), (name, text, back)


def _doc_table(path: Path, start: str, end: str) -> dict[str, tuple[str, str]]:
    text = path.read_text()
    body = text[text.index(start):text.index(end)]
    rows = {}
    for line in body.splitlines():
        m = re.match(r"\| `([a-z_0-9]+)` \| (\w+) \| `([^`]*)` \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_docs_key_table_matches_the_code_defaults():
    """docs/trainer.md's table: every key, no other, each with the code's type and default (the
    documented default, typed after --key, gives the code's default)."""
    rows = _doc_table(REPO / "docs" / "trainer.md", "<!-- keys:start", "<!-- keys:end -->")
    assert set(rows) == set(C.FIELDS)
    for name, (kind, default) in rows.items():
        assert kind == C._HINTS[name].__name__, name
        assert ("" if default == '""' else C._coerce(name, default)) == C.default_of(name), (name, default)


def test_docs_recipe_sentence_matches_the_code_defaults():
    """The recipe numbers in docs/trainer.md's first paragraph are TrainConfig's defaults."""
    text = " ".join((REPO / "docs" / "trainer.md").read_text().split("## Commands")[0].split())
    num = r"([0-9.e-]+)"
    found = {
        "learning_rate": rf"lr {num} \(VL\)", "epochs": rf"{num} epoch,",
        "per_device_batch": rf"micro-batch {num} ×", "grad_accum": rf"× accumulation {num},",
        "warmup_ratio": rf"warmup {num} %", "weight_decay": rf"weight decay {num},", "max_length": rf"max length {num}\.",
    }
    d = C.TrainConfig()
    for key, pattern in found.items():
        m = re.search(pattern, text)
        assert m, (key, pattern)
        value = float(m.group(1)) / (100 if key == "warmup_ratio" else 1)
        assert value == pytest.approx(getattr(d, key)), (key, m.group(0))
    assert f"betas ({d.adam_betas[0]}, {d.adam_betas[1]}), {d.precision}, gradient checkpointing" in text
    assert f"{d.scheduler}, weight decay" in text and d.gradient_checkpointing


def test_data_help_lists_every_option_with_its_default():
    from trainer.data_pipeline import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "cmd").choices  # argparse's subparsers
    for name, sub in subs.items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if action.dest == "help":
                continue
            if action.required:
                assert f"{action.help} (required)" in text, (name, action.dest)
            elif action.default is not None:
                assert f"(default: {action.default})" in text, (name, action.dest)
            else:
                assert "(default: not written)" in action.help, (name, action.dest)  # says what None means
    r = subprocess.run([sys.executable, "-m", "flex_judge.cli", "data", "generate", "--help"], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    out = " ".join(r.stdout.split())
    assert r.returncode == 0 and "(default: [13, 79])" in out and "(default: 4096)" in out


def test_resume_of_a_finished_run_says_so_and_does_not_train(tiny_vl, tmp_path, capsys):
    from trainer.make_demo_data import make_rows
    from trainer.train import main

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(4)))
    out = tmp_path / "run"
    args = ["--model", str(tiny_vl), "--train_file", str(data), "--output_dir", str(out), "--max_length", "2048",
            "--per_device_batch", "2", "--grad_accum", "1", "--max_steps", "2", "--precision", "fp32",
            "--gradient_checkpointing", "false", "--progress_bar", "false", "--plot", "false", "--save_every", "1"]
    assert main(args) == 0
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert (out / "model" / "flex_train_config.yaml") in files and (out / "checkpoints" / "last") in files
    capsys.readouterr()
    for resume in (["--resume"], ["--resume_from", "step-1"]):
        assert main(args + resume) == 0
        err = capsys.readouterr().err
        assert "holds a finished run" in err and "not training" in err and "--overwrite" in err
        # nothing rewritten: not the model, not the log, not the config
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


WRITES = {"setdefault", "update", "pop", "clear", "popitem", "__setitem__", "__delitem__"}


def _environ_writes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            for t in getattr(node, "targets", None) or [getattr(node, "target", None)]:
                if isinstance(t, ast.Subscript):
                    target = t.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
            target = node.func.value
        if target is not None and ast.unparse(target) in ("os.environ", "environ"):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


@pytest.mark.parametrize("path", sorted((REPO / "trainer").glob("*.py")) + [REPO / "flex_judge" / "demo.py"],
                         ids=lambda p: p.name)
def test_library_code_writes_no_environ(path):
    """The FSDP wrap class goes to accelerate on its plugin object, the teacher's vLLM settings and
    the demo's thread count to child processes in their env: no module here writes os.environ."""
    assert _environ_writes(path) == []


def test_teacher_env_adds_only_missing_cpu_defaults():
    from flex_models.backends.vllm_backend import CPU_ENV
    from trainer.data_pipeline import teacher_env

    assert teacher_env({"A": "1"}, cpu=False) is None
    env = teacher_env({"A": "1", "VLLM_HOST_IP": "10.0.0.1"}, cpu=True)
    assert env == {**CPU_ENV, "A": "1", "VLLM_HOST_IP": "10.0.0.1"}  # what the user set wins
    assert teacher_env(env, cpu=True) is None  # the child builds its engine in-process


@pytest.mark.parametrize("text, pair", [
    ("r</think><answer>8</answer><answer> 3 </answer>", [8, 3]),  # spaces inside a tag
    ("<answer>-1</answer><answer>2</answer>", [-1, 2]),
    ("<answer>[[A>B]]</answer><answer>3</answer><answer>4</answer>", [3, 4]),  # non-integer spans skipped
    ("<answer><answer>5</answer><answer>6</answer>", [5, 6]),  # an unclosed tag: the innermost span
    ("<answer>3</answer>", None), ("no tags 8 3", None)])
def test_filter_reads_answers_through_the_one_splitter(text, pair):
    from flex_tasks.parsing import answer_spans
    from trainer.data_pipeline import parse_pair

    assert parse_pair(text) == pair
    assert len(answer_spans(text)) >= (2 if pair else 0)
