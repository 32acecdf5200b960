"""NISQA: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import DataError, csv_rows, existing, number, within


SETS = ("FOR", "LIVETALK", "P501")


def load(spec, source) -> list[dict]:
    root, items = Path(source), []
    for s in SETS:
        d = root / f"NISQA_TEST_{s}"
        path = d / f"NISQA_TEST_{s}_file.csv"
        for i, r in enumerate(csv_rows(path, spec.env)):
            where = f"{path} row {i}"
            if "filepath_deg" not in r or "mos" not in r:
                raise DataError(f"{where}: needs columns filepath_deg and mos; found {list(r)}")
            items.append({"data_id": f"{s}/{r['filepath_deg']}", "set": s, "gold": round(number(r["mos"], where, "mos"), 1),
                          "media": [existing(within(root, d, r["filepath_deg"], str(path), i, spec.env), str(path), i, spec.env)],
                          "system": "", "system_gt": float("nan")})
    return items


BENCHMARK = Benchmark("nisqa", load=load)
