"""Behaviour is unchanged by the benchmark registry (issue 22 item 1): every flex task renders,
parses and scores the bundled fixtures exactly as before.

tests/data/task_golden.json is golden because the code BEFORE the refactor wrote it (main at
41b7205, `python tests/data/make_task_golden.py`, committed before any benchmark fact moved).
It holds, for all 14 tasks, the TaskSpec, the generated YAML, every doc (items x runs, order
swaps), the rendered chat messages (media as size + digest), the simple-mode text and target,
the records and the benchmark report for fixed seeded model outputs, and the tables the CLI,
API, judge-file, compare and leaderboard code read. A deliberate behaviour change regenerates
it with the script and says so in its commit. Regenerated once since: NISQA's per-set LCC / SRCC /
MSE became metrics of the task (lcc_FOR ...), moved out of its report's breakdown with the same
values; nothing else changed (2026-12-03).
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_task_renders_parses_and_scores_as_before_the_registry():
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    try:
        import make_task_golden as g
    finally:
        sys.path.pop(0)
    old = dict(os.environ)
    try:
        os.environ.update(FLEX_JUDGE_DATA="fixtures")
        for k in ("FLEX_JUDGE_RUNS", "FLEX_JUDGE_BOOTSTRAP_ITERS"):
            os.environ.pop(k, None)
        now = g.build()
    finally:
        os.environ.clear()
        os.environ.update(old)
    golden = g.GOLDEN.read_text()
    if now != golden:  # name the first differing line, not a 600 kB diff
        a, b = golden.splitlines(), now.splitlines()
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        ctx = "\n".join(f"golden {j}: {a[j] if j < len(a) else '<end>'}\nnow    {j}: {b[j] if j < len(b) else '<end>'}"
                        for j in range(max(0, i - 2), i + 3))
        raise AssertionError(f"task behaviour differs from {g.GOLDEN} at line {i}:\n{ctx}")
