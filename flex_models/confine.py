"""The one confinement rule for a media path that comes from data, and not from the user's own
command line. It covers task corpora, hub-style ``{bytes, path}`` image columns, `flex-judge judge`
files and judge-server requests.

A path is allowed only when its *resolved* form (``Path.resolve()``: symlinks followed, ``..``
and ``.`` removed) lies inside the resolved allowed root. A relative path is taken relative to
``base`` (default: the root). An absolute path is checked as it is. A NUL byte is refused. The
rule lives here, the lowest layer, so flex_tasks (data pre-flight, media decoding), flex_judge's
judge file and its server all call the same function.
"""
from __future__ import annotations

import os
from pathlib import Path

from flex_models.errors import FlexJudgeError


class OutsideRoot(FlexJudgeError, ValueError):
    """A media path from data resolves outside its allowed root. ``path`` is the path as written,
    ``resolved`` where it leads (None when it could not be resolved), ``root`` the resolved root."""

    def __init__(self, path, root: Path, resolved: Path | None = None):
        self.path, self.root, self.resolved = str(path), root, resolved
        via = f" (it resolves to {resolved})" if resolved is not None and str(resolved) != self.path else ""
        super().__init__(f"media path {self.path!r} lies outside the allowed root {root}{via}")


def confine(path: str | os.PathLike, root: str | os.PathLike, base: str | os.PathLike | None = None) -> Path:
    """The resolved path of ``path`` (relative to ``base``, default ``root``), or raise
    :class:`OutsideRoot` when it is not inside the resolved ``root``. The file need not exist:
    a missing file is for the caller's loader to report."""
    root_r = Path(root).resolve()
    raw = os.fspath(path)
    if "\x00" in raw:
        raise OutsideRoot(raw.replace("\x00", "\\x00"), root_r)
    start = Path(base).absolute() if base is not None else root_r
    try:
        resolved = (start / raw).resolve()  # an absolute path replaces start
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unreadable component
        raise OutsideRoot(raw, root_r) from None
    if not resolved.is_relative_to(root_r):
        raise OutsideRoot(raw, root_r, resolved)
    return resolved
