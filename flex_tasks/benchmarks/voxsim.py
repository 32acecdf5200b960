"""VOXSIM: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import DataError, existing, number, within


def load(spec, source) -> list[dict]:
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
        items.append({"data_id": f"{parts[0]}|{parts[1]}", "gold": number(parts[4], f"{lst} line {n}", "similarity"),
                      "set": "", "system": "", "system_gt": float("nan"),
                      "media": [existing(within(root, root / "wav", p, str(lst), f"line {n}", spec.env), str(lst), f"line {n}", spec.env)
                                for p in parts[:2]]})
    return items


BENCHMARK = Benchmark("voxsim", load=load)
