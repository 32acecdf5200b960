"""The one append-only JSONL module: the resumable logs (the `flex` model's journal, the judged
output of `flex-judge judge`, the trainer's traces) append and read through it, and the JSONL
files people write (judge-file inputs, the tasks' local data, the trainer's train.jsonl and the
data pipeline's inputs) are read with ``read(whole_file=True)``.

- :class:`Appender` appends records as whole lines. ``write(*records)`` makes one ``write`` call,
  then a flush (after a flush, the lines survive a SIGKILL of this process). With ``fsync=True``
  it also calls ``os.fsync`` after each write, so the lines also survive a power cut. Opening one
  repairs the file first (:func:`cut_partial_last_line`) unless ``repair=False``.
- :func:`read` yields every line as a :class:`Line`: the value, or an error that names the line
  (bad UTF-8, invalid JSON, a line over ``max_line_bytes``). One bad line never costs the file.
  A last line without its newline is a write in progress or cut by a kill. It is reported as
  ``partial`` and never parsed as a record.
- :func:`cut_partial_last_line` truncates a file after its last newline.

Written here rather than taken from a library: the stdlib has no tolerant line reader, and
``jsonlines`` (not installed) stops at the first bad line and knows nothing of cut last lines.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional


@dataclass
class Line:
    line: int  # 1-based line number in the file
    value: Any = None  # the parsed JSON value (None when ``error`` is set)
    error: Optional[str] = None  # why the line is not a value: "not UTF-8 ...", "invalid JSON ...", ...
    partial: bool = False  # the last line, without its newline (a write in progress or killed)
    n_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def cut_partial_last_line(path: str | Path) -> int:
    """Truncate an append-only JSONL file after its last newline (a process killed mid-write
    leaves half a line); returns the number of bytes cut (0 for a missing or intact file)."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        keep, pos = 0, size
        while pos > 0:  # scan back in blocks for the last newline
            step = min(1 << 16, pos)
            f.seek(pos - step)
            nl = f.read(step).rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                break
            pos -= step
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def _bad_utf8(raw: bytes, e: UnicodeDecodeError) -> str:
    return f"not UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line)"


def read(path: str | Path, *, max_line_bytes: Optional[int] = None, skip_blank: bool = True,
         whole_file: bool = False) -> Iterator[Line]:
    """Every line of ``path`` as a :class:`Line`, in order; never raises for a line's content.
    A line longer than ``max_line_bytes`` gets an error and is neither decoded nor parsed.
    Lines are read one at a time, so memory use stays at one line. ``whole_file=True`` is for
    files a person wrote (inputs, data): their last line may lack its newline and is parsed; for
    the append-only logs (default) such a line is a write in progress, reported as ``partial``."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            partial = not raw.endswith(b"\n") and not whole_file
            body = raw.rstrip(b"\r\n")
            if skip_blank and not body.strip():
                continue
            size = len(body)
            if partial:
                yield Line(n, error="partial last line (no newline: a write in progress or cut by a kill)",
                           partial=True, n_bytes=size)
                continue
            if max_line_bytes is not None and size > max_line_bytes:
                yield Line(n, error=f"line is {size} bytes, over the limit of {max_line_bytes}", n_bytes=size)
                continue
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Line(n, error=_bad_utf8(body, e), n_bytes=size)
                continue
            try:
                yield Line(n, value=json.loads(text), n_bytes=size)
            except json.JSONDecodeError as e:
                yield Line(n, error=f"invalid JSON ({e})", n_bytes=size)


def finite(x: Any) -> Any:
    """``x`` with every NaN / infinity (in dicts and lists too) replaced by None."""
    if isinstance(x, float):
        return x if x == x and x not in (float("inf"), float("-inf")) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def dumps(record: Any) -> str:
    """One record as one line: no newline inside, non-ASCII kept, NaN and infinities written as
    null (bare NaN is not JSON)."""
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(finite(record), ensure_ascii=False, allow_nan=False)


class Appender:
    """Append records to ``path`` as whole lines (see the module doc for the flush/fsync policy)."""

    def __init__(self, path: str | Path, *, fsync: bool = False, repair: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cut = cut_partial_last_line(self.path) if repair else 0
        self.fsync = fsync
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, *records: Any) -> None:
        if not records:
            return
        self._fh.write("".join(dumps(r) + "\n" for r in records))
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass

    def __enter__(self) -> "Appender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
