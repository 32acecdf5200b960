"""Data settings and loaders (contract 3).

Each benchmark has one setting, ``FLEX_<BENCH>_PATH``: a local copy (a hub dataset saved
with ``save_to_disk`` or its parquet files, or the upstream folder layout). Unset: the hub id
for hub benchmarks, an error naming the variable for the corpora. ``FLEX_JUDGE_DATA=fixtures``
points every benchmark at the bundled mini fixtures.

Loaders return lightweight *items* (text, gold label, media references); media are read
lazily by :mod:`flex_tasks.media`. An item's key (``item``) is its position in the loaded
data, never a data id: upstream files repeat ids (MJ-Bench's alignment annotations repeat
``pap_0`` ...), and keying by them silently merged rows. The data's own id is kept as
``data_id``; repeated ids are counted, warned about and reported (``duplicate_data_ids``).
A media reference is ``"row:<column>"`` (an image column of row ``row`` of the source
dataset) or an absolute file path.
"""
from __future__ import annotations

import csv
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

from flex_models.errors import FlexJudgeError
from flex_tasks import benchmarks
from flex_tasks.protocol import DATA_ENV, TaskSpec

FIXTURES_DIR = Path(__file__).with_name("fixtures")
HUB = "hub"


class DataError(FlexJudgeError, ValueError):
    """Missing or malformed benchmark data; the message names the setting / file / row."""


def resolve_source(spec: TaskSpec) -> str:
    """Where ``spec``'s data comes from: a local directory, or ``"hub"``."""
    mode = os.environ.get(DATA_ENV, "").strip().lower()
    if mode not in ("", "fixtures"):  # e.g. FLEX_JUDGE_DATA=fixture: refused, never silently ignored
        raise DataError(f"{DATA_ENV}={mode!r}: the only value is 'fixtures' (the bundled mini copies); "
                        f"unset it to read each benchmark's own setting ({spec.env})")
    if mode == "fixtures":
        root = FIXTURES_DIR / benchmarks.of(spec).fixtures
        if not root.exists():
            raise DataError(f"{DATA_ENV}=fixtures but {root} is missing; run `python -m flex_tasks.make_fixtures`")
        return str(root)
    raw = os.environ.get(spec.env, "").strip()
    if raw:
        root = Path(raw).expanduser()
        if not root.exists():
            raise DataError(f"{spec.env}={raw!r}: no such file or directory")
        return str(root.resolve())
    if spec.hub is None:
        raise DataError(f"{spec.task}: no data. Set {spec.env} to your local copy of the corpus "
                        f"(layout: see flex_tasks/protocols.json['{spec.bench}']['data']) or {DATA_ENV}=fixtures")
    return HUB


# ------------------------------------------------------------------ hub datasets and copies
def require_columns(ds, cols, where: str):
    missing = [c for c in cols if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; found {ds.column_names}")


def load_hub_copy(root: Path, config: Optional[str], split: str):
    """A local copy of a hub dataset: ``save_to_disk`` output (DatasetDict or Dataset, at
    ``root`` or ``root/<config>``) or the hub's parquet files (``<split>-*.parquet`` or
    ``<split>/*.parquet`` anywhere under ``root[/<config>]``)."""
    import datasets

    base = root / config if config and (root / config).is_dir() else root
    if (base / "dataset_dict.json").exists():
        dd = datasets.load_from_disk(str(base))
        if split not in dd:
            raise DataError(f"{base}: split {split!r} not found; available: {list(dd)}")
        return dd[split]
    if (base / split / "state.json").exists():
        return datasets.load_from_disk(str(base / split))
    if (base / "state.json").exists():
        return datasets.load_from_disk(str(base))
    files = sorted(str(p) for p in base.rglob("*.parquet")
                   if p.name.startswith(f"{split}-") or p.name == f"{split}.parquet" or p.parent.name == split)
    if files:
        return datasets.load_dataset("parquet", data_files=files, split="train")
    raise DataError(f"{base}: no copy of split {split!r} found (looked for dataset_dict.json, "
                    f"{split}/state.json, state.json, {split}-*.parquet)")


def source_dataset(spec: TaskSpec, source: str):
    """The source dataset of a hub benchmark (cached; rows are read lazily by index)."""
    return _source_dataset(spec.task, source)


@lru_cache(maxsize=16)
def _source_dataset(task: str, source: str):
    from flex_tasks.protocol import get

    spec = get(task)
    hub_id, config, split = spec.hub
    if source != HUB:
        return load_hub_copy(Path(source), config, split)
    import datasets

    try:
        return datasets.load_dataset(hub_id, config, split=split) if config else datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # offline / gated / renamed
        raise DataError(f"{spec.task}: could not load {hub_id}"
                        f"{'/' + config if config else ''} split {split} from the hub ({type(e).__name__}: {e}). "
                        f"Set {spec.env} to a local copy (save_to_disk output or the parquet files).") from e


def text_rows(ds, cols):
    """Iterate the non-image columns only (fast: no image decoding)."""
    return ds.select_columns(cols).to_list()


def _at(row) -> str:
    """'row 3' for a row index, the label itself for e.g. 'line 4'."""
    return row if isinstance(row, str) else f"row {row}"


def within(root, base: Path, rel: str, where: str, row, setting: str) -> Path:
    """``base / rel`` for a media path written in a data row, refused when it resolves outside the
    data root (absolute, ``../..``, or a symlink inside the root pointing out): data files must
    not point the judge at other files on the machine. The rule is
    :func:`flex_models.confine.confine`, the one every media path from data goes through."""
    from flex_models.confine import OutsideRoot, confine

    rel = str(rel)
    path = os.path.normpath(os.path.join(os.path.abspath(base), rel))
    try:
        confine(rel, root, base)
    except OutsideRoot as e:
        via = f", through a symlink to {e.resolved}" if e.resolved is not None and str(e.resolved) != path else ""
        raise DataError(f"{where} {_at(row)}: media path {rel!r} lies outside the data root {e.root}{via} "
                        f"(setting {setting}); media paths in data files must stay inside it") from None
    return Path(path)


def check_row_media(spec: TaskSpec, source: str, items: list[dict]) -> None:
    """Pre-flight of hub-style image columns (``{'bytes': None, 'path': ...}`` rows read from
    ``path``): every such path must resolve inside the data root (the local copy's folder, or the
    datasets cache for a hub download). Read from the Arrow columns, no image is decoded."""
    cols = sorted({m[4:] for it in items for m in it.get("media", ()) if isinstance(m, str) and m.startswith("row:")})
    if not cols:
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    from flex_models.confine import OutsideRoot, confine

    ds = source_dataset(spec, source)
    root = Path(source) if source != HUB else Path(_datasets_cache())
    rows = {int(it["row"]) for it in items if it.get("row", -1) >= 0}
    for c in cols:
        if c not in ds.column_names:
            continue
        col = ds.data.column(c)
        if not pa.types.is_struct(col.type) or col.type.get_field_index("path") < 0:
            continue
        paths = pc.struct_field(col, "path").to_pylist()
        no_bytes = (pc.is_null(pc.struct_field(col, "bytes")).to_pylist()
                    if col.type.get_field_index("bytes") >= 0 else [True] * len(paths))
        for i, (p, nb) in enumerate(zip(paths, no_bytes)):
            if p and nb and i in rows:
                try:
                    confine(p, root)
                except OutsideRoot as e:
                    via = f", it resolves to {e.resolved}" if e.resolved is not None and str(e.resolved) != p else ""
                    raise DataError(f"{spec.task} ({source}) row {i} column {c}: image path {p!r} lies outside the "
                                    f"data root {e.root}{via} (setting {spec.env}); media paths in data files must "
                                    "stay inside it") from None


def _datasets_cache() -> str:
    import datasets

    return str(datasets.config.HF_DATASETS_CACHE)


def existing(path: Path, where: str, row, setting: str) -> str:
    if not path.exists():
        raise DataError(f"{where} {_at(row)}: file not found: {path} (setting {setting})")
    return str(path)


def read_jsonl(path: Path) -> list[dict]:
    """A data file's rows (flex_models.jsonl, the one JSONL reader); the first bad line (invalid
    JSON, not UTF-8) is an error naming the file and the line."""
    from flex_models import jsonl

    if not path.exists():
        raise DataError(f"file not found: {path}")
    rows = []
    for ln in jsonl.read(path, whole_file=True):
        if not ln.ok:
            raise DataError(f"{path} line {ln.line}: {ln.error}")
        rows.append(ln.value)
    return rows


# ------------------------------------------------------------------ file formats of the corpora
def csv_rows(path: Path, env: str) -> list[dict]:
    if not path.exists():
        raise DataError(f"{env}: file not found: {path}")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def number(v, where: str, name: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {name} {v!r} is not a number") from None
    if math.isnan(x):
        raise DataError(f"{where}: {name} is NaN")
    return x


def mos_list(path: Path, env: str, header: bool) -> list[tuple[str, str]]:
    if not path.exists():
        raise DataError(f"{env}: file not found: {path}")
    out = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines[1:] if header else lines, 2 if header else 1):
        if line.strip():
            if "," not in line:
                raise DataError(f"{path} line {n}: expected 'wav,score', got {line!r}")
            wav, score = line.split(",", 1)
            out.append((wav.strip(), score.strip()))
    return out


def system_csv(path: Path, env: str) -> dict[str, float]:
    if not path.exists():
        raise DataError(f"{env}: file not found: {path}")
    out = {}
    for n, line in enumerate(path.read_text().splitlines()[1:], 2):
        if "," in line:
            sid, mean = line.strip().split(",")[:2]
            out[sid] = number(mean, f"{path} line {n}", "system MOS")
    return out


def duplicate_ids(data_ids) -> dict:
    """``{"count": rows whose data id was seen before, "examples": [first few repeated ids]}``."""
    seen: set = set()
    repeated: dict = {}
    for d in data_ids:
        if d in seen:
            repeated[d] = repeated.get(d, 0) + 1
        seen.add(d)
    return {"count": sum(repeated.values()), "examples": list(repeated)[:5]}


def load_items(spec: TaskSpec) -> tuple[str, list[dict]]:
    """``(source, items)`` for one task; raises :class:`DataError` with the setting named.
    Each item's key ``item`` is its position (0, 1, ...); repeated data ids get a warning."""
    source = resolve_source(spec)
    items = benchmarks.of(spec).load(spec, source)
    if not items:
        raise DataError(f"{spec.task}: no items found in {source} (setting {spec.env})")
    for i, it in enumerate(items):
        it["item"] = i
        it.setdefault("source", source)
        it.setdefault("row", -1)
    check_row_media(spec, source, items)
    dups = duplicate_ids(it["data_id"] for it in items)
    if dups["count"]:
        import warnings

        warnings.warn(f"{spec.task} ({source}): {dups['count']} of {len(items)} rows repeat a data id "
                      f"(e.g. {', '.join(map(repr, dups['examples']))}); every row is judged as its own item "
                      f"(keyed by row position) and the count is reported as duplicate_data_ids", stacklevel=2)
    return source, items
