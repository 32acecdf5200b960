"""BVCC: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import existing, mos_list, number, system_csv, within


def load(spec, source) -> list[dict]:
    root = Path(source)
    data = root / "main" / "DATA" if (root / "main" / "DATA").exists() else root / "DATA" if (root / "DATA").exists() else root
    lst = data / "sets" / "test_mos_list.txt"
    sys_gt = system_csv(data / "mydata_system.csv", spec.env)
    items = []
    for n, (wav, score) in enumerate(mos_list(lst, spec.env, header=False)):
        sid = Path(wav).stem.split("-")[0]
        items.append({"data_id": wav, "gold": round(number(score, f"{lst} row {n}", "score"), 1), "set": "",
                      "media": [existing(within(root, data / "wav", wav, str(lst), n, spec.env), str(lst), n, spec.env)],
                      "system": sid, "system_gt": sys_gt.get(sid, float("nan"))})
    return items


BENCHMARK = Benchmark("bvcc", load=load)
