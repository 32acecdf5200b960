"""Resumable judging: an append-only journal of finished judgments.

Each finished request is written (one JSON line, flushed) as soon as the engine returns it, keyed
by everything that determines its answer: the checkpoint fingerprint, the engine settings that
change outputs, the rendered prompt, the content hashes of its media, the media hints (video fps,
pixels) and the request's sampling settings including its seed. A rerun of the same command finds
every finished request under the same key and never sends it to the engine again; a changed prompt,
image, setting or checkpoint gives another key, so nothing stale is reused.

A process killed mid-write leaves at most a partial last line; it is cut off when the journal is
opened again. Requests without a seed (model_args seed only seeds the engine) are journaled too,
but a rerun reproduces an uninterrupted run exactly only for seeded or greedy requests.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

log = logging.getLogger("flex_models")

JOURNAL_FILE = "judgments.jsonl"
_BIG = 64 * 2**20  # files above this are fingerprinted by size + head + tail, not read whole
_EDGE = 4 * 2**20


def file_digest(path: Path, h=None) -> str:
    h = h or hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}:".encode())
    with open(path, "rb") as f:
        if size <= _BIG:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
        else:
            h.update(f.read(_EDGE))
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
    return h.hexdigest()


def checkpoint_fingerprint(checkpoint_dir: str | Path) -> str:
    """sha256 over the checkpoint's config, tokenizer/processor files and weights (weight files
    over 64 MiB by name, size, first and last 4 MiB)."""
    root = Path(checkpoint_dir)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()


def media_digest(url) -> str:
    """Content hash of one media reference as tasks pass it: a path, bytes, a PIL image, an
    audio dict {array, sampling_rate}, or a numpy array."""
    h = hashlib.sha256()
    if isinstance(url, (str, Path)):
        p = Path(url)
        if p.is_file():
            return "file:" + file_digest(p)
        h.update(str(url).encode())  # not a local file: the loader will report it
        return "ref:" + h.hexdigest()
    if isinstance(url, (bytes, bytearray)):
        h.update(bytes(url))
        return "bytes:" + h.hexdigest()
    if isinstance(url, dict):
        for k in sorted(url):
            h.update(k.encode())
            h.update(media_digest(url[k]).encode())
        return "dict:" + h.hexdigest()
    if hasattr(url, "tobytes") and hasattr(url, "mode") and hasattr(url, "size"):  # PIL image
        h.update(f"{url.mode}:{url.size}".encode())
        h.update(url.tobytes())
        return "pil:" + h.hexdigest()
    if hasattr(url, "tobytes") and hasattr(url, "dtype"):  # numpy array
        h.update(f"{url.dtype}:{getattr(url, 'shape', '')}".encode())
        h.update(url.tobytes())
        return "array:" + h.hexdigest()
    h.update(repr(url).encode())
    return "repr:" + h.hexdigest()


def request_key(engine: dict, prompt: str, media: dict, hints: dict, spec) -> str:
    payload = {
        "engine": engine,
        "prompt": prompt,
        "media": {k: [media_digest(u) for u in v] for k, v in sorted(media.items())},
        "hints": hints,
        "sampling": asdict(spec),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cut_partial_last_line(path: Path) -> int:
    """Truncate an append-only JSONL file after its last newline (a process killed mid-write
    leaves half a line); returns the number of bytes cut. The one implementation used by the
    resume journal, `flex-judge judge` and `flex-judge data generate`."""
    path = Path(path)
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


def journal_file(rank: int) -> str:
    """The file rank `rank` appends to: one writer per file, so the ranks of a multi-process run
    never interleave their lines (rank 0, and every one-process run, keep the original name)."""
    return JOURNAL_FILE if rank == 0 else f"judgments.rank{rank}.jsonl"


class Journal:
    """``key -> {"texts", "prompt_tokens", "output_tokens"}`` over every ``judgments*.jsonl`` of a folder.

    Each rank appends to its own file (:func:`journal_file`) and reads all of them, so a resume with
    another number of ranks, or after one rank was killed, reuses every judgment any rank finished.
    Only this rank's own file is repaired (its partial last line cut); another rank's file may be
    in the middle of a write, so its unfinished last line is skipped, never touched."""

    def __init__(self, folder: str | Path, rank: int = 0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / journal_file(rank)
        self.entries: dict[str, dict] = {}
        self.bad_lines = 0
        if self.path.exists():
            cut = cut_partial_last_line(self.path)
            if cut:
                log.warning("flex: journal %s: cut a partial last line (%d bytes)", self.path, cut)
        for f in sorted(self.folder.glob("judgments*.jsonl")):
            self._load(f)
        self._fh = open(self.path, "a", encoding="utf-8")

    def _load(self, path: Path):
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # another rank is writing its last line
            data = data[:data.rfind(b"\n") + 1]
        for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                self.entries[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                self.bad_lines += 1
                log.warning("flex: journal %s:%d is not a journal record; ignored (that request will be re-run)",
                            path, n)

    def __len__(self):
        return len(self.entries)

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, texts: list[str], prompt_tokens: int | None, output_tokens: int) -> None:
        rec = {"key": key, "texts": list(texts), "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()  # in the OS once written: survives SIGKILL of this process
        self.entries[key] = rec

    def close(self):
        try:
            self._fh.close()
        except OSError:
            pass

    def __del__(self):
        self.close()


def resolve_journal_dir(arg: str | None) -> Path | None:
    """model_args ``journal`` (a folder, or ``off``) > env FLEX_JUDGE_JOURNAL > no journal."""
    raw = arg if arg not in (None, "") else os.environ.get("FLEX_JUDGE_JOURNAL", "")
    if not raw or str(raw).strip().lower() in ("off", "none", "false", "0"):
        return None
    return Path(str(raw)).expanduser()
