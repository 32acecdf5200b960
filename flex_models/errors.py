"""The root of every error flex-judge raises on purpose.

Each error class of the project derives from `FlexJudgeError` (and keeps its old builtin base,
ValueError / ImportError / RuntimeError, so callers catching those still work). The CLI turns a
FlexJudgeError into one line naming the setting at fault and exits with the class's `exit_code`:
2 for what the user gave (arguments, data, checkpoints, missing extras), 1 for a failure while
running. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class FlexJudgeError(Exception):
    """Base of all deliberate flex-judge errors; `exit_code` is what the CLI returns for it."""

    exit_code = 2


class FlexRuntimeError(FlexJudgeError):
    """A failure while running (a server that answers with an error, a broken run), not bad input."""

    exit_code = 1
