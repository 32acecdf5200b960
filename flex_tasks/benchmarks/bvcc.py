"""BVCC: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from pathlib import Path

import re

from flex_tasks.benchmarks import Benchmark, Parser
from flex_tasks.benchmarks._audio import SYSTEM, UTTERANCE, audio_task, section
from flex_tasks.parsing import Parsed, answer_floats
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


_SCORE_PHRASE = re.compile(r"(?:score|rating)(?:\s+is|\s*[:=]\s*)?\s*(\d+\.?\d*)", re.IGNORECASE)
_BARE_MOS = re.compile(r"\b[1-5](?:\.\d*)?\b")


def bvcc_mos(text: str) -> Parsed:
    """BVCC: ``<answer>X</answer>``; else 'score/rating is|:|= X'; else the first bare
    number 1-5; else 0.0. Only the first rule counts as parsed."""
    text = text or ""
    xs = answer_floats(text)
    if xs:
        return Parsed(xs[0], True)
    m = _SCORE_PHRASE.search(text)
    if m:
        return Parsed(float(m.group(1)), False, "score_phrase")
    m = _BARE_MOS.search(text)
    if m:
        return Parsed(float(m.group(0)), False, "bare_number")
    return Parsed(0.0, False, "fallback")


def tasks(P):
    return [audio_task(P, "bvcc", parser="bvcc_mos", default=None, headline=UTTERANCE + SYSTEM, env="FLEX_BVCC_PATH",
                       report_kwargs={"system_level": True})]


BENCHMARK = Benchmark("bvcc", tasks=tasks, parsers={"bvcc_mos": Parser(bvcc_mos, "score", 1, numbers=answer_floats)},
                      api={"score": ("flex_bvcc",)},
                      leaderboard=section(("bvcc_utt", "flex_bvcc", "lcc", "srcc"), ("bvcc_sys", "flex_bvcc", "sys_lcc", "sys_srcc")),
                      load=load, report=mos_report, write_fixtures=write_fixtures, demo_example=mos_example)
