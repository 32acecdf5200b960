"""One error root: every exception class the project defines derives from FlexJudgeError, so
the CLI can turn any deliberate error into one line with its class's exit code."""
import ast
import importlib
from pathlib import Path

from flex_models.errors import FlexJudgeError

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flex_models", "flex_tasks", "flex_judge", "trainer")


def exception_classes():
    """(module, class name) of every top-level class whose name ends in Error/Exception or that
    names an exception base, found by reading the source (no list kept by hand)."""
    out = []
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            if "fixtures" in f.parts:
                continue
            tree = ast.parse(f.read_text())
            for node in tree.body:
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = [ast.unparse(b) for b in node.bases]
                if node.name.endswith(("Error", "Exception", "Extra", "Root")) or any(
                        b.endswith(("Error", "Exception")) for b in bases):
                    mod = ".".join(f.relative_to(REPO).with_suffix("").parts)
                    out.append((mod, node.name))
    return out


def test_every_error_class_derives_from_the_root():
    found = exception_classes()
    assert len(found) >= 15  # the scan sees the project's classes (it is not vacuous)
    bad = [f"{m}.{c}" for m, c in found
           if not issubclass(getattr(importlib.import_module(m), c), FlexJudgeError)]
    assert bad == []


def test_exit_codes_follow_the_class():
    from flex_judge.serving.client import RemoteError
    from flex_models.args import FlexArgError

    assert FlexArgError.exit_code == 2 and RemoteError.exit_code == 1
    assert issubclass(FlexArgError, ValueError)  # the builtin base is kept for callers catching it
