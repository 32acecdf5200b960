"""BVCC: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

from flex_tasks.benchmarks import Benchmark
from flex_tasks.benchmarks._demo_text import mos_example
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.reports import mos_report
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


def write_fixtures(root: Path):
    """main/DATA/ with wav/, sets/test_mos_list.txt (no header) and mydata_system.csv."""
    data = root / "main" / "DATA"
    systems = {"sys0a1b2": 0, "sys3c4d5": 2, "sys6e7f8": 4}
    lst, sys_lines = [], ["system_ID,mean"]
    for sid, deg in systems.items():
        sys_lines.append(f"{sid},{fx.DEGRADATIONS[deg][2]:.3f}")
        for u in range(2):
            snr, clip, label = fx.DEGRADATIONS[(deg + u) % len(fx.DEGRADATIONS)]
            wav = f"{sid}-utt{u:05x}{deg}.wav"
            fx.wav(data / "wav" / wav, fx.degrade(fx.voice(900 + deg * 3 + u), snr, clip, 950 + deg + u))
            lst.append(f"{wav},{label + 0.125:.3f}")
    fx.write_text(data / "sets" / "test_mos_list.txt", "\n".join(lst) + "\n")
    fx.write_text(data / "mydata_system.csv", "\n".join(sys_lines) + "\n")


BENCHMARK = Benchmark("bvcc", load=load, report=mos_report, write_fixtures=write_fixtures, demo_example=mos_example)
