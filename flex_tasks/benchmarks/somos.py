"""SOMOS: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

from flex_tasks.benchmarks import ANSWER_FLOAT, Benchmark
from flex_tasks.benchmarks._audio import SYSTEM, UTTERANCE, audio_task, section
from flex_tasks.benchmarks._demo_text import mos_example
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.reports import mos_report
from flex_tasks.data import existing, mos_list, number, system_csv, within


def load(spec, source) -> list[dict]:
    root = Path(source)
    clean = root / "training_files" / "split1" / "clean"
    lst = clean / "test_mos_list.txt"
    sys_gt = system_csv(clean / "test_system.csv", spec.env)
    items = []
    for n, (wav, score) in enumerate(mos_list(lst, spec.env, header=True)):
        sid = Path(wav).stem.split("_")[-1]
        items.append({"data_id": wav, "gold": round(number(score, f"{lst} row {n}", "mean"), 1), "set": "",
                      "media": [existing(within(root, root / "audios", wav, str(lst), n, spec.env), str(lst), n, spec.env)],
                      "system": sid, "system_gt": sys_gt.get(sid, float("nan"))})
    return items


def write_fixtures(root: Path):
    """audios/ and training_files/split1/clean/ with test_mos_list.txt (header) and test_system.csv."""
    clean = root / "training_files" / "split1" / "clean"
    systems = {"001": 0, "007": 3, "012": 5}
    lst, sys_lines = ["utteranceId,mean"], ["systemId,mean"]
    for sid, deg in systems.items():
        sys_lines.append(f"{sid},{fx.DEGRADATIONS[deg][2]:.3f}")
        for u in range(2):
            snr, clip, label = fx.DEGRADATIONS[(deg + u) % len(fx.DEGRADATIONS)]
            wav = f"booksent_2012_{u:04d}_{sid}.wav"
            fx.wav(root / "audios" / wav, fx.degrade(fx.voice(1000 + deg * 3 + u), snr, clip, 1050 + deg + u))
            lst.append(f"{wav},{label + 0.06:.2f}")
    fx.write_text(clean / "test_mos_list.txt", "\n".join(lst) + "\n")
    fx.write_text(clean / "test_system.csv", "\n".join(sys_lines) + "\n")


def tasks(P):
    return [audio_task(P, "somos", parser="answer_float", default=3.0, headline=UTTERANCE + SYSTEM, env="FLEX_SOMOS_PATH",
                       report_kwargs={"system_level": True})]


BENCHMARK = Benchmark("somos", tasks=tasks, parsers={"answer_float": ANSWER_FLOAT}, api={"score": ("flex_somos",)},
                      leaderboard=section(("somos_utt", "flex_somos", "lcc", "srcc"), ("somos_sys", "flex_somos", "sys_lcc", "sys_srcc")),
                      load=load, report=mos_report, write_fixtures=write_fixtures, demo_example=mos_example)
