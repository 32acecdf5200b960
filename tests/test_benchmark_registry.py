"""The benchmark registry (issue 22 item 1): a benchmark is one module of flex_tasks/benchmarks/,
and nothing else names it.

- no benchmark or task name is written as a string anywhere in the source outside
  flex_tasks/benchmarks/, protocols.json and yaml_tasks/ (the CLI, API, judge-file, compare,
  leaderboard and parsing code ask the registry);
- every registered benchmark has every part: its module (tasks, parser, loader, report,
  fixtures writer, demo rows, leaderboard columns), its protocols.json entry, its generated YAML
  and stubs, its bundled fixtures (which load), its suite;
- a benchmark missing a part is caught (the checker is run on broken copies).
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from flex_tasks import benchmarks
from flex_tasks.protocol import GROUPS, TASKS, protocols

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = ("flex_tasks/benchmarks/", "yaml_tasks/", "tests/")
# The performance harness (benchmarks/: bench scripts and the device-side lmms-eval task) builds
# synthetic VL-RewardBench-shaped requests from that protocols.json entry by key on purpose, on
# machines where the package may not be importable; it is not product code.
HARNESS = ("benchmarks/",)


def registry_names() -> list[str]:
    """Every name a benchmark owns: task names and aliases (with and without flex_), its groups,
    its protocols.json key, its fixtures folder and its parse rules. Longest first (so the
    pattern names the whole)."""
    names = set(TASKS) | {t.removeprefix("flex_") for t in TASKS}
    names |= {g for b in benchmarks.registered() for g in b.groups}
    names |= {b.name for b in benchmarks.registered()} | {b.fixtures for b in benchmarks.registered()}
    aliases = set(benchmarks.aliases())
    names |= aliases | {a.removeprefix("flex_") for a in aliases}
    # a benchmark's own parse rules (the shared readers of flex_tasks.parsing are not its names)
    names |= {n for n, p in benchmarks.parsers().items() if p.fn.__module__ != "flex_tasks.parsing"}
    return sorted(names, key=len, reverse=True)


def literals(source: str, pattern: re.Pattern) -> list[tuple[int, str]]:
    """(line, name) of every string constant (docstrings aside: prose may cite a benchmark)
    holding a registry name as a whole word."""
    tree = ast.parse(source)
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            docs.add(id(body[0].value))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            m = pattern.search(node.value)
            if m:
                out.append((node.lineno, m.group(1)))
    return sorted(out)


def name_pattern() -> re.Pattern:
    return re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, registry_names())) + r")(?![A-Za-z0-9])")


def test_the_literal_scan_finds_names():
    pat = name_pattern()
    found = literals('"""A docstring may say flex_nisqa."""\nx = {"a": "flex_mllm_judge_pair"}\ny = f"{z}mj_bench"\n'
                     'w = "the mllm_score alias"\nok = "flex_tasks.benchmarks"\n', pat)
    assert found == [(2, "flex_mllm_judge_pair"), (3, "mj_bench"), (4, "mllm_score")]


def test_no_benchmark_name_outside_the_registry():
    pat = name_pattern()
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".", "build/", "dist/") + ALLOWED + HARNESS) or "/." in rel:
            continue
        for line, name in literals(path.read_text(), pat):
            bad.append(f"{rel}:{line}: {name!r}")
    assert not bad, "benchmark / task names written outside flex_tasks/benchmarks/ (ask the registry):\n" + "\n".join(bad)


# ---------------------------------------------------------------- every part
def problems(b: benchmarks.Benchmark) -> list[str]:
    """What a registered benchmark lacks; [] when it is whole."""
    from yaml_tasks.generate import OUT, STUBS, render, render_stubs

    out = []
    P = protocols()
    if b.name not in P:
        out.append(f"{b.name}: no protocols.json entry")
        return out
    for hook in ("tasks", "load", "report", "write_fixtures", "demo_example"):
        if getattr(b, hook) is getattr(benchmarks.Benchmark, "__dataclass_fields__")[hook].default:
            out.append(f"{b.name}: no {hook}")
    if "tasks" in " ".join(out):
        return out
    specs = b.tasks(P)
    if not specs:
        out.append(f"{b.name}: declares no task")
    suites = [s for s, members in benchmarks.SUITES.items() if b.name in members]
    if len(suites) != 1:
        out.append(f"{b.name}: in suites {suites}, expected exactly one")
    fixtures = ROOT / "flex_tasks" / "fixtures" / b.fixtures
    if not fixtures.is_dir():
        out.append(f"{b.name}: no fixtures folder {fixtures.relative_to(ROOT)}")
    yamls, stubs = render(), render_stubs()
    columns = {c.task for s in b.leaderboard for c in s.columns if c.task}
    for spec in specs:
        t = spec.task
        if spec.bench != b.name:
            out.append(f"{t}: bench {spec.bench!r}, expected {b.name!r}")
        if f"{t}.yaml" not in yamls or not (OUT / f"{t}.yaml").is_file() or (OUT / f"{t}.yaml").read_text() != yamls[f"{t}.yaml"]:
            out.append(f"{t}: yaml_tasks/flex/{t}.yaml missing or stale (python -m yaml_tasks.generate)")
        if f"{t}.jsonl" not in stubs or not (STUBS / f"{t}.jsonl").is_file():
            out.append(f"{t}: no stub flex_tasks/fixtures/stubs/{t}.jsonl (python -m yaml_tasks.generate)")
        p = b.parsers.get(spec.parser)
        if p is None:
            out.append(f"{t}: parser {spec.parser!r} is not declared by its module")
        else:
            if p.kind not in benchmarks.KINDS:
                out.append(f"{t}: parser kind {p.kind!r}")
            if p.kind == "verdict" and not p.winner:
                out.append(f"{t}: a verdict parser without winner labels")
            if p.headline not in benchmarks.HEADLINE_FORMS:
                out.append(f"{t}: headline form {p.headline!r} is not one compare's paired test knows")
            if p.kind != "verdict" or p.tags == 2:  # numbers are read: the protocol states their scale
                if spec.scale is None:
                    out.append(f"{t}: no scale (protocols.json {b.name}.scale)")
        if t not in columns:
            out.append(f"{t}: in no leaderboard column")
        if spec.group is not None and t not in b.groups.get(spec.group, ()):
            out.append(f"{t}: group {spec.group!r} is not one of the module's groups listing it")
    names = {s.task for s in specs}
    metrics = {s.task: {m for m, _ in s.metric_names()} for s in specs}
    for sec in b.leaderboard:
        for c in sec.columns:
            if c.task and (c.task not in names or c.metric not in metrics[c.task]):
                out.append(f"{b.name}: leaderboard column {c.name!r} reads {c.task}:{c.metric}, not one of its metrics")
    for verb, tasks in b.api.items():
        if verb not in benchmarks.API_VERBS or not set(tasks) <= names:
            out.append(f"{b.name}: api {verb!r} -> {tasks} (verbs {benchmarks.API_VERBS}, its own tasks)")
    for g, members in b.groups.items():
        if not set(members) <= names:
            out.append(f"{b.name}: group {g} lists tasks it does not declare")
    return out


def test_every_registered_benchmark_has_every_part():
    assert [p for b in benchmarks.registered() for p in problems(b)] == []
    assert sorted(n for s in benchmarks.SUITES.values() for n in s) == sorted(b.name for b in benchmarks.registered())


def test_every_bundled_fixture_loads(monkeypatch):
    from flex_tasks.data import load_items

    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    for spec in TASKS.values():
        _, items = load_items(spec)
        assert items, spec.task


@pytest.mark.parametrize("broken, expect", [
    (dict(name="no_such_bench"), "no protocols.json entry"),
    (dict(report=benchmarks.no_report), "no report"),
    (dict(fixtures="no_such_folder"), "no fixtures folder"),
    (dict(leaderboard=()), "in no leaderboard column"),
    (dict(parsers={}), "is not declared by its module"),
    (dict(parsers={"answer_float": dataclasses.replace(benchmarks.ANSWER_FLOAT, headline="nope")}), "headline form"),
])
def test_a_benchmark_missing_a_part_is_caught(broken, expect):
    b = dataclasses.replace(benchmarks.get("somos"), **broken)
    assert any(expect in p for p in problems(b)), problems(b)


def test_a_task_without_its_yaml_is_caught():
    base = benchmarks.get("voxsim")

    def tasks(P):
        return [dataclasses.replace(s, task="flex_voxsim_unlisted") for s in base.tasks(P)]

    found = problems(dataclasses.replace(base, tasks=tasks))
    assert any("flex_voxsim_unlisted.yaml missing" in p for p in found), found
    assert any("stubs/flex_voxsim_unlisted.jsonl" in p for p in found), found


def test_groups_and_suites_come_from_the_modules():
    for b in benchmarks.registered():
        for g, members in b.groups.items():
            assert GROUPS[g] == list(members)
    for suite, names in benchmarks.SUITES.items():
        want = []
        for n in names:
            b = benchmarks.get(n)
            want += list(b.groups) or [s.task for s in b.tasks(protocols())]
        assert GROUPS[suite] == want
    # flex_all is the paper's suites: a benchmark the paper does not report is never in it
    assert GROUPS[benchmarks.ALL_SUITE] == ["flex_vision", "flex_audio"] == benchmarks.paper_suites()
    assert "flex_multimodal_rewardbench" not in str([GROUPS[g] for g in GROUPS[benchmarks.ALL_SUITE]])
    assert GROUPS["flex_beyond_paper"] == ["flex_multimodal_rewardbench"]
