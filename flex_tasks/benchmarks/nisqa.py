"""NISQA: one audio clip (VoxSim: two) and the protocol's fixed question; the answer is a score
parsed by the protocol's parser (with its fallback value, counted as a parse failure)."""
from dataclasses import replace
from pathlib import Path

from flex_tasks.benchmarks import ANSWER_FLOAT, Benchmark
from flex_tasks.benchmarks._audio import UTTERANCE, audio_task, section
from flex_tasks.benchmarks._demo_text import mos_example
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.reports import mos_report
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


def write_fixtures(root: Path):
    """NISQA_TEST_<set>/ with its file csv and deg/ clips; P501 at 48 kHz exercises resampling."""
    for s, name in enumerate(SETS):
        d = root / f"NISQA_TEST_{name}"
        lines = ["db,con,file,con_description,filename_deg,filename_ref,source,lang,votes,mos,noi,col,dis,loud,filepath_deg,filepath_ref"]
        for n in range(3):
            snr, clip, mos_label = fx.DEGRADATIONS[(n * 2 + s) % len(fx.DEGRADATIONS)]
            sr = 48000 if name == "P501" else fx.SR
            x = fx.degrade(fx.voice(700 + 10 * s + n, sr=sr), snr, clip, 800 + 10 * s + n)
            fn = f"c{n:05d}_{name.lower()}.wav"
            fx.wav(d / "deg" / fn, x, sr)
            mos = mos_label + 0.03 * n
            lines.append(f"NISQA_TEST_{name},{n},{n},snr={snr} clip={clip},{fn},,synthetic,en,5,{mos:.4f},0,0,0,0,deg/{fn},")
        fx.write_text(d / f"NISQA_TEST_{name}_file.csv", "\n".join(lines) + "\n")


# each set's values are metrics of the task (rows of lmms-eval's own results; the paper reports pooled)
PER_SET = tuple((f"{m}_{s}", hib) for s in SETS for m, hib in UTTERANCE)


def tasks(P):
    spec = audio_task(P, "nisqa", parser="answer_float", default=3.0, headline=UTTERANCE, env="FLEX_NISQA_PATH",
                      report_kwargs={"per_set": SETS})
    return [replace(spec, extra_metrics=PER_SET)]


def report(spec, records, **kw) -> dict:
    """mos_report, with each set's LCC / SRCC / MSE as metrics of the task (``lcc_FOR`` ...), so a
    plain lmms-eval run has them too (not only flex_details' breakdown)."""
    out = mos_report(spec, records, **kw)
    for s, block in out["breakdown"].pop("per_set").items():
        out.update({f"{m}_{s}": v for m, v in block.items()})
    return out


BENCHMARK = Benchmark("nisqa", tasks=tasks, parsers={"answer_float": ANSWER_FLOAT},
                      api={"score": ("flex_nisqa",)}, leaderboard=section(("nisqa_utt", "flex_nisqa", "lcc", "srcc")),
                      load=load, report=report, write_fixtures=write_fixtures, demo_example=mos_example)
