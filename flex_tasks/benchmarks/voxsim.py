"""VOXSIM: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

from flex_tasks.benchmarks import ANSWER_FLOAT, Benchmark
from flex_tasks.benchmarks._audio import UTTERANCE, audio_task, section
from flex_tasks.benchmarks import _demo_text as dt
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.reports import mos_report
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


def write_fixtures(root: Path):
    """wav/<speaker>/<utt>.wav and voxsim_test_list.txt; two "speakers" = two voice seeds, and
    same-speaker pairs get high similarity."""
    clips = {}
    for spk in range(2):
        for u in range(2):
            rel = f"id{spk:04d}/utt{u}.wav"
            fx.wav(root / "wav" / rel, fx.degrade(fx.voice(1100 + spk), 25.0 - 10 * u, None, 1150 + 2 * spk + u))
            clips[(spk, u)] = rel
    pairs = [((0, 0), (0, 1), 1, 4.6), ((1, 0), (1, 1), 1, 4.2), ((0, 0), (1, 0), 0, 1.8), ((0, 1), (1, 1), 0, 2.4)]
    lines = [f"{clips[a]},{clips[b]},{same},0,{sim}" for a, b, same, sim in pairs]
    fx.write_text(root / "voxsim_test_list.txt", "\n".join(lines) + "\n")


def demo_example(rng, spec):
    """Two clips, speaker similarity 1.0-5.0."""
    v1, t1 = rng.choice(dt.VOICES), rng.choice(dt.TONES)
    same = rng.random() < 0.5
    v2, t2 = (v1, rng.choice(dt.TONES)) if same else (rng.choice([v for v in dt.VOICES if v != v1]), rng.choice(dt.TONES))
    if same:
        why, score = "The same speaker.", dt.mos_value(rng, (3.8, 4.9))
    else:
        why, score = "Not the same speaker.", dt.mos_value(rng, (1.0, 2.4))
    return {}, [f"audio: {v1} with {t1}", f"audio: {v2} with {t2}"], why, dt.answers(score)


def tasks(P):
    return [audio_task(P, "voxsim", parser="answer_float", default=3.5, headline=UTTERANCE, env="FLEX_VOXSIM_PATH")]


BENCHMARK = Benchmark("voxsim", tasks=tasks, parsers={"answer_float": ANSWER_FLOAT},
                      leaderboard=section(("voxsim_utt", "flex_voxsim", "lcc", "srcc")),
                      load=load, report=mos_report, write_fixtures=write_fixtures, demo_example=demo_example)
