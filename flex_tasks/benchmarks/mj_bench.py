"""MJ-Bench: a caption and two generated images; odd runs show the images swapped, and the
preference is mapped back to the original order by the parser."""
from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import DataError, require_columns, source_dataset, text_rows
from flex_tasks.parsing import PARSERS


def fields(spec, doc) -> dict:
    return {"caption": doc["caption"]}


def media_order(spec, doc, refs: list) -> list:
    return refs[::-1] if doc["flex_swap"] else refs


def parse(spec, doc, text: str):
    return PARSERS["mj_pref"](text, swapped=bool(doc["flex_swap"]))


def load(spec, source) -> list[dict]:
    ds = source_dataset(spec, source)
    where = f"{spec.task} ({source})"
    require_columns(ds, ["caption", "image0", "image1", "label"], where)
    cols = ["caption", "label"] + [c for c in ("id", "label_0") if c in ds.column_names]
    items = []
    for i, r in enumerate(text_rows(ds, cols)):
        tie = r.get("label_0") is not None and float(r["label_0"]) == 0.5
        if not tie and r["label"] not in (0, 1):
            raise DataError(f"{where} row {i}: label must be 0 or 1 (or label_0 == 0.5 for a tie), got {r['label']!r}")
        items.append({"data_id": str(r.get("id", i)), "caption": r["caption"], "gold": 2 if tie else int(r["label"]),
                      "media": ["row:image0", "row:image1"], "row": i})
    return items


BENCHMARK = Benchmark("mj_bench", load=load, fields=fields, media_order=media_order, parse=parse)
