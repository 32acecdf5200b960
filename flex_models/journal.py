"""Resumable judging: an append-only journal of finished judgments.

Each finished request is written (one JSON line, flushed) as soon as the engine returns it, keyed
by everything that determines its answer: the checkpoint fingerprint, the engine settings that
change outputs, the rendered prompt, the content hashes of its media, the media hints (video fps,
pixels) and the request's sampling settings including its seed. A rerun of the same command finds
every finished request under the same key and never sends it to the engine again; a changed prompt,
image, setting or checkpoint gives another key, so nothing stale is reused.

A process killed mid-write leaves at most a partial last line; it is cut off when the journal is
opened again. Every record carries a content hash and is validated on read: a record of the
wrong shape, or one whose texts were edited, is never reused (its request is judged again, with
a warning). Requests without a seed (model_args seed only seeds the engine) are journaled too,
but a rerun reproduces an uninterrupted run exactly only for seeded or greedy requests.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from flex_models.jsonl import Appender, cut_partial_last_line, read

__all__ = ["Journal", "checkpoint_fingerprint", "cut_partial_last_line", "media_digest", "request_key",
           "record_hash", "validate_record"]

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


def journal_file(rank: int) -> str:
    """The file rank `rank` appends to: one writer per file, so the ranks of a multi-process run
    never interleave their lines (rank 0, and every one-process run, keep the original name)."""
    return JOURNAL_FILE if rank == 0 else f"judgments.rank{rank}.jsonl"


def record_hash(key: str, texts, prompt_tokens, output_tokens) -> str:
    """The content hash a journal record carries (``sha``): over its key, texts and token counts."""
    payload = json.dumps([key, texts, prompt_tokens, output_tokens], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def validate_record(rec) -> str | None:
    """Why ``rec`` (one parsed journal line) cannot be reused, or None when it can: its shape
    (key str, texts a non-empty list of str, prompt_tokens int or null, output_tokens int) and
    its content hash."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    if not isinstance(rec.get("key"), str):
        return "no string 'key'"
    texts = rec.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return "'texts' missing or not a non-empty list of strings"
    pt, ot = rec.get("prompt_tokens"), rec.get("output_tokens")
    if not (pt is None or (isinstance(pt, int) and not isinstance(pt, bool))):
        return "'prompt_tokens' not an integer or null"
    if not isinstance(ot, int) or isinstance(ot, bool):
        return "'output_tokens' not an integer"
    if rec.get("sha") != record_hash(rec["key"], texts, pt, ot):
        return "content hash ('sha') missing or does not match (the record was edited or written by an older version)"
    return None


class Journal:
    """``key -> {"texts", "prompt_tokens", "output_tokens"}`` over every ``judgments*.jsonl`` of a folder.

    Each rank appends to its own file (:func:`journal_file`) and reads all of them, so a resume with
    another number of ranks, or after one rank was killed, reuses every judgment any rank finished.
    Only this rank's own file is repaired (its partial last line cut); another rank's file may be
    in the middle of a write, so its unfinished last line is skipped, never touched.

    Every record is validated on read (:func:`validate_record`): a line that is not JSON, has the
    wrong shape or whose content hash does not match is counted in ``bad_lines`` (with the reason
    in ``bad_reasons``), logged as a warning and never reused, so its request is judged again."""

    def __init__(self, folder: str | Path, rank: int = 0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / journal_file(rank)
        self.entries: dict[str, dict] = {}
        self.bad_lines = 0
        self.bad_reasons: dict[str, int] = {}
        cut = cut_partial_last_line(self.path)
        if cut:
            log.warning("flex: journal %s: cut a partial last line (%d bytes)", self.path, cut)
        for f in sorted(self.folder.glob("judgments*.jsonl")):
            self._load(f)
        self._out = Appender(self.path, repair=False)

    def _bad(self, path: Path, n: int, why: str) -> None:
        self.bad_lines += 1
        self.bad_reasons[why] = self.bad_reasons.get(why, 0) + 1
        log.warning("flex: journal %s:%d: %s; not reused (that request will be re-run)", path, n, why)

    def _load(self, path: Path):
        for ln in read(path):
            if ln.partial:  # another rank is writing its last line
                continue
            why = ln.error or validate_record(ln.value)
            if why:
                self._bad(path, ln.line, why)
                continue
            rec = ln.value
            self.entries[rec["key"]] = {k: rec[k] for k in ("key", "texts", "prompt_tokens", "output_tokens")}

    def __len__(self):
        return len(self.entries)

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, texts: list[str], prompt_tokens: int | None, output_tokens: int) -> None:
        texts = list(texts)
        rec = {"key": key, "texts": texts, "prompt_tokens": prompt_tokens, "output_tokens": output_tokens,
               "sha": record_hash(key, texts, prompt_tokens, output_tokens)}
        self._out.write(rec)  # flushed: in the OS once written, survives SIGKILL of this process
        self.entries[key] = {k: rec[k] for k in ("key", "texts", "prompt_tokens", "output_tokens")}

    def close(self):
        out = getattr(self, "_out", None)
        if out is not None:
            out.close()

    def __del__(self):
        self.close()


def resolve_journal_dir(arg: str | None) -> Path | None:
    """model_args ``journal`` (a folder, or ``off``) > env FLEX_JUDGE_JOURNAL > no journal."""
    raw = arg if arg not in (None, "") else os.environ.get("FLEX_JUDGE_JOURNAL", "")
    if not raw or str(raw).strip().lower() in ("off", "none", "false", "0"):
        return None
    return Path(str(raw)).expanduser()
