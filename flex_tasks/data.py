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
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

from flex_tasks.protocol import DATA_ENV, TaskSpec

FIXTURES_DIR = Path(__file__).with_name("fixtures")
HUB = "hub"
FIXTURE_SUBDIR = {"vl_rewardbench": "vl_rewardbench", "mj_bench": "mj_bench", "genai_bench": "genai_bench",
                  "mllm_as_a_judge": "mllm_judge", "nisqa": "nisqa", "bvcc": "bvcc", "somos": "somos",
                  "voxsim": "voxsim"}


class DataError(ValueError):
    """Missing or malformed benchmark data; the message names the setting / file / row."""


def resolve_source(spec: TaskSpec) -> str:
    """Where ``spec``'s data comes from: a local directory, or ``"hub"``."""
    if os.environ.get(DATA_ENV, "").strip().lower() == "fixtures":
        root = FIXTURES_DIR / FIXTURE_SUBDIR[spec.bench]
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
def _require_columns(ds, cols, where: str):
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


def _text_rows(ds, cols):
    """Iterate the non-image columns only (fast: no image decoding)."""
    return ds.select_columns(cols).to_list()


def _vl_rewardbench(spec, source):
    ds = source_dataset(spec, source)
    where = f"{spec.task} ({source})"
    _require_columns(ds, ["id", "query", "response", "image", "human_ranking"], where)
    items = []
    for i, r in enumerate(_text_rows(ds, ["id", "query", "response", "human_ranking"])):
        resp, rank = r["response"], r["human_ranking"]
        if not isinstance(resp, list) or len(resp) != 2 or not isinstance(rank, list) or len(rank) != 2 or rank[0] == rank[1]:
            raise DataError(f"{where} row {i} (id={r['id']}): expected response[2] and a strict human_ranking[2], "
                            f"got response={resp!r:.80} human_ranking={rank!r}")
        items.append({"data_id": str(r["id"]), "query": r["query"], "answer0": resp[0], "answer1": resp[1],
                      "gold": 0 if rank[0] < rank[1] else 1, "category": vlrb_category(str(r["id"])),
                      "media": ["row:image"], "row": i})
    return items


_VLRB_GROUPS = {"mathverse": "reasoning", "mmmu": "reasoning", "hallucination": "hallucination",
                "rlhf": "hallucination", "rlaif": "hallucination", "povid": "hallucination",
                "wildvision": "general", "vlfeedback": "general"}


def vlrb_category(item_id: str) -> str:
    """VL-RewardBench category from the id prefix (text before the first '-' / '_')."""
    prefix = item_id.split("-")[0].split("_")[0].lower()
    return _VLRB_GROUPS.get(prefix, "general")


def _mj_bench(spec, source):
    ds = source_dataset(spec, source)
    where = f"{spec.task} ({source})"
    _require_columns(ds, ["caption", "image0", "image1", "label"], where)
    cols = ["caption", "label"] + [c for c in ("id", "label_0") if c in ds.column_names]
    items = []
    for i, r in enumerate(_text_rows(ds, cols)):
        tie = r.get("label_0") is not None and float(r["label_0"]) == 0.5
        if not tie and r["label"] not in (0, 1):
            raise DataError(f"{where} row {i}: label must be 0 or 1 (or label_0 == 0.5 for a tie), got {r['label']!r}")
        items.append({"data_id": str(r.get("id", i)), "caption": r["caption"], "gold": 2 if tie else int(r["label"]),
                      "media": ["row:image0", "row:image1"], "row": i})
    return items


GENAI_VOTES = ("leftvote", "rightvote", "tievote", "bothbad_vote")


def _genai_bench(spec, source):
    config = spec.variant
    # a local folder may hold only videos/ and leave the metadata to the hub
    meta = source
    if source != HUB and config == "video_generation":
        try:
            load_hub_copy(Path(source), config, spec.hub[2])
        except DataError:
            meta = HUB
    ds = source_dataset(spec, meta)
    where = f"{spec.task} ({meta})"
    media_cols = {"image_generation": ["left_image", "right_image"],
                  "image_edition": ["source_image", "left_output_image", "right_output_image"],
                  "video_generation": ["left_video", "right_video"]}[config]
    text_cols = ["source_prompt", "target_prompt", "instruct_prompt"] if config == "image_edition" else ["prompt"]
    _require_columns(ds, text_cols + media_cols + ["vote_type"], where)
    read = text_cols + ["vote_type"] + (media_cols if config == "video_generation" else [])
    items = []
    for i, r in enumerate(_text_rows(ds, read)):
        if r["vote_type"] not in GENAI_VOTES:
            raise DataError(f"{where} row {i}: vote_type {r['vote_type']!r} not in {GENAI_VOTES}")
        item = {"data_id": f"{config}-{i}", **{c: r[c] for c in text_cols}, "gold": r["vote_type"], "row": i}
        if config == "video_generation":
            if source == HUB:
                raise DataError(f"{spec.task}: videos are not in the hub parquet; set {spec.env} to a folder "
                                f"with videos/<file name of left_video/right_video>")
            item["media"] = [_existing(Path(source) / "videos" / Path(str(r[c])).name, where, i, spec.env) for c in media_cols]
        else:
            item["media"] = [f"row:{c}" for c in media_cols]
        items.append(item)
    for it in items:
        it["source"] = meta
    return items


def _at(row) -> str:
    """'row 3' for a row index, the label itself for e.g. 'line 4'."""
    return row if isinstance(row, str) else f"row {row}"


def _within(root, base: Path, rel: str, where: str, row, setting: str) -> Path:
    """``base / rel`` for a media path written in a data row, refused when it is absolute or
    climbs out of the data root (``../..``): data files must not point the judge at other
    files on the machine. Checked on the path as written (symlinks inside the root are fine)."""
    rel = str(rel)
    root_n = os.path.normpath(os.path.abspath(root))
    path = os.path.normpath(os.path.join(os.path.abspath(base), rel))
    if os.path.isabs(rel) or os.path.commonpath([root_n, path]) != root_n:
        raise DataError(f"{where} {_at(row)}: media path {rel!r} lies outside the data root {root_n} "
                        f"(setting {setting}); paths in data files must be relative and stay inside it")
    return Path(path)


def _existing(path: Path, where: str, row, setting: str) -> str:
    if not path.exists():
        raise DataError(f"{where} {_at(row)}: file not found: {path} (setting {setting})")
    return str(path)


# ------------------------------------------------------------------ MLLM-as-a-Judge (upstream folder)
def _mllm_dirs(root: Path, env: str) -> tuple[Path, Path]:
    for bench in (root / "Dataset" / "Benchmark", root / "Benchmark", root):
        if (bench / "pair.jsonl").exists() or (bench / "score.jsonl").exists() or (bench / "batch.jsonl").exists():
            return bench, bench.parent
    raise DataError(f"{env}={root}: expected Dataset/Benchmark/{{pair,score,batch}}.jsonl (or Benchmark/...) under it")


def _mllm_image(source: Path, data_dir: Path, rel: str, where: str, row: int, env: str) -> str:
    root = Path(os.path.commonpath([os.path.abspath(source), os.path.abspath(data_dir)]))
    inside = []
    for base in (data_dir / "image", data_dir / "images", data_dir, data_dir.parent):
        try:
            inside.append(_within(root, base, rel, where, row, env))
        except DataError as e:
            refused = e
    if not inside:
        raise refused
    for cand in inside:
        if cand.exists():
            return str(cand)
    raise DataError(f"{where} row {row}: image {rel!r} not found under {data_dir}/image, {data_dir}/images or {data_dir} (setting {env})")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(f"file not found: {path}")
    rows = []
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path} line {n}: invalid JSON ({e})") from None
    return rows


def _mllm_judge(spec, source):
    bench_dir, data_dir = _mllm_dirs(Path(source), spec.env)
    path = bench_dir / f"{spec.variant}.jsonl"
    items = []
    for i, r in enumerate(read_jsonl(path)):
        where = f"{path} row {i}"
        try:
            base = {"data_id": str(r.get('id', r.get('score_id', r.get('pair_id', i)))),
                    "dataset": str(r["original_dataset"]), "instruction": r["instruction"],
                    "media": [_mllm_image(Path(source), data_dir, r["image_path"], str(path), i, spec.env)]}
            if spec.variant == "pair":
                gold = str(r["human"]).strip().upper()
                if gold not in ("A", "B", "C"):
                    raise DataError(f"{where}: human must be A, B or C, got {r['human']!r}")
                base.update(answer1=r["answer1"]["answer"], answer2=r["answer2"]["answer"], gold=gold)
            elif spec.variant == "score":
                try:
                    base.update(answer=r["answer"], gold=int(float(str(r["human"]).strip())))
                except ValueError:
                    raise DataError(f"{where}: human score {r['human']!r} is not a number") from None
            else:
                human = r.get("human_answer", r.get("human"))
                if human is None:
                    raise DataError(f"{where}: no ranking in 'human_answer' or 'human'")
                ranking = "".join(ch for ch in str(human).upper() if ch.isalpha())
                base.update(answers=[a["answer"] for a in r["answers"]], gold=ranking)
        except KeyError as e:
            raise DataError(f"{where}: missing field {e}") from None
        items.append(base)
    if not items:
        raise DataError(f"{path}: no rows")
    return items


# ------------------------------------------------------------------ audio corpora
NISQA_SETS = ("FOR", "LIVETALK", "P501")


def _csv_rows(path: Path, env: str) -> list[dict]:
    if not path.exists():
        raise DataError(f"{env}: file not found: {path}")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _float(v, where: str, name: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {name} {v!r} is not a number") from None
    if math.isnan(x):
        raise DataError(f"{where}: {name} is NaN")
    return x


def _nisqa(spec, source):
    root, items = Path(source), []
    for s in NISQA_SETS:
        d = root / f"NISQA_TEST_{s}"
        path = d / f"NISQA_TEST_{s}_file.csv"
        for i, r in enumerate(_csv_rows(path, spec.env)):
            where = f"{path} row {i}"
            if "filepath_deg" not in r or "mos" not in r:
                raise DataError(f"{where}: needs columns filepath_deg and mos; found {list(r)}")
            items.append({"data_id": f"{s}/{r['filepath_deg']}", "set": s, "gold": round(_float(r["mos"], where, "mos"), 1),
                          "media": [_existing(_within(root, d, r["filepath_deg"], str(path), i, spec.env), str(path), i, spec.env)],
                          "system": "", "system_gt": float("nan")})
    return items


def _mos_list(path: Path, env: str, header: bool) -> list[tuple[str, str]]:
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


def _system_csv(path: Path, env: str) -> dict[str, float]:
    if not path.exists():
        raise DataError(f"{env}: file not found: {path}")
    out = {}
    for n, line in enumerate(path.read_text().splitlines()[1:], 2):
        if "," in line:
            sid, mean = line.strip().split(",")[:2]
            out[sid] = _float(mean, f"{path} line {n}", "system MOS")
    return out


def _bvcc(spec, source):
    root = Path(source)
    data = root / "main" / "DATA" if (root / "main" / "DATA").exists() else root / "DATA" if (root / "DATA").exists() else root
    lst = data / "sets" / "test_mos_list.txt"
    sys_gt = _system_csv(data / "mydata_system.csv", spec.env)
    items = []
    for n, (wav, score) in enumerate(_mos_list(lst, spec.env, header=False)):
        sid = Path(wav).stem.split("-")[0]
        items.append({"data_id": wav, "gold": round(_float(score, f"{lst} row {n}", "score"), 1), "set": "",
                      "media": [_existing(_within(root, data / "wav", wav, str(lst), n, spec.env), str(lst), n, spec.env)],
                      "system": sid, "system_gt": sys_gt.get(sid, float("nan"))})
    return items


def _somos(spec, source):
    root = Path(source)
    clean = root / "training_files" / "split1" / "clean"
    lst = clean / "test_mos_list.txt"
    sys_gt = _system_csv(clean / "test_system.csv", spec.env)
    items = []
    for n, (wav, score) in enumerate(_mos_list(lst, spec.env, header=True)):
        sid = Path(wav).stem.split("_")[-1]
        items.append({"data_id": wav, "gold": round(_float(score, f"{lst} row {n}", "mean"), 1), "set": "",
                      "media": [_existing(_within(root, root / "audios", wav, str(lst), n, spec.env), str(lst), n, spec.env)],
                      "system": sid, "system_gt": sys_gt.get(sid, float("nan"))})
    return items


def _voxsim(spec, source):
    root = Path(source)
    lst = root / "voxsim_test_list.txt"
    if not lst.exists():
        raise DataError(f"{spec.env}: file not found: {lst}")
    items = []
    for n, line in enumerate(lst.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(",")
        if len(parts) < 5:
            raise DataError(f"{lst} line {n}: expected 'wav1,wav2,same_speaker,<unused>,similarity', got {line!r}")
        items.append({"data_id": f"{parts[0]}|{parts[1]}", "gold": _float(parts[4], f"{lst} line {n}", "similarity"),
                      "set": "", "system": "", "system_gt": float("nan"),
                      "media": [_existing(_within(root, root / "wav", p, str(lst), f"line {n}", spec.env), str(lst), f"line {n}", spec.env)
                                for p in parts[:2]]})
    return items


LOADERS = {"vl_rewardbench": _vl_rewardbench, "mj_bench": _mj_bench, "genai_bench": _genai_bench,
           "mllm_as_a_judge": _mllm_judge, "nisqa": _nisqa, "bvcc": _bvcc, "somos": _somos, "voxsim": _voxsim}


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
    items = LOADERS[spec.bench](spec, source)
    if not items:
        raise DataError(f"{spec.task}: no items found in {source} (setting {spec.env})")
    for i, it in enumerate(items):
        it["item"] = i
        it.setdefault("source", source)
        it.setdefault("row", -1)
    dups = duplicate_ids(it["data_id"] for it in items)
    if dups["count"]:
        import warnings

        warnings.warn(f"{spec.task} ({source}): {dups['count']} of {len(items)} rows repeat a data id "
                      f"(e.g. {', '.join(map(repr, dups['examples']))}); every row is judged as its own item "
                      f"(keyed by row position) and the count is reported as duplicate_data_ids", stacklevel=2)
    return source, items
