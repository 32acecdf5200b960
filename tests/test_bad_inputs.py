"""Bad input gets a clear error naming the file / row / doc / line / setting, never a silent wrong
number (issue 10 item 5). Table-driven, one section per area; each row is one input that was tried
by hand and went wrong before (every row failed on the code before the fix).

Sections: MEDIA (media paths in data rows, corrupt images, the Python API's media arguments, odd
audio: many channels, longer than the model hears) and TRAINER (trainer/: checkpoints, output
folder, config, data; and the data pipeline).
"""
import csv
import json
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from flex_tasks.data import FIXTURES_DIR, DataError, load_items
from flex_tasks.protocol import TASKS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ["FLEX_JUDGE_DATA", "FLEX_JUDGE_RUNS"] + [s.env for s in TASKS.values()]:
        monkeypatch.delenv(var, raising=False)


# ============================================================================ media
def _copy(tmp_path, monkeypatch, sub: str, setting: str):
    root = tmp_path / "data" / sub
    shutil.copytree(FIXTURES_DIR / sub, root)
    monkeypatch.setenv(setting, str(root))
    return root


def _outside_wav(tmp_path):
    path = tmp_path / "outside.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    return path


def _nisqa_row0(tmp_path, monkeypatch, value_of):
    root = _copy(tmp_path, monkeypatch, "nisqa", "FLEX_NISQA_PATH")
    path = root / "NISQA_TEST_FOR" / "NISQA_TEST_FOR_file.csv"
    rows = list(csv.DictReader(path.open()))
    rows[0]["filepath_deg"] = value_of(tmp_path)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return lambda: load_items(TASKS["flex_nisqa"])


def case_nisqa_relative_escape(tmp_path, monkeypatch):
    _outside_wav(tmp_path)  # exists: only the location is wrong
    return _nisqa_row0(tmp_path, monkeypatch, lambda t: "../../../outside.wav")


def case_nisqa_absolute_path(tmp_path, monkeypatch):
    return _nisqa_row0(tmp_path, monkeypatch, lambda t: str(_outside_wav(t)))


def case_voxsim_absolute_path(tmp_path, monkeypatch):
    root = _copy(tmp_path, monkeypatch, "voxsim", "FLEX_VOXSIM_PATH")
    lst = root / "voxsim_test_list.txt"
    lines = lst.read_text().splitlines()
    lines[1] = ",".join([str(_outside_wav(tmp_path))] + lines[1].split(",")[1:])
    lst.write_text("\n".join(lines) + "\n")
    return lambda: load_items(TASKS["flex_voxsim"])


def case_mllm_image_escape(tmp_path, monkeypatch):
    root = _copy(tmp_path, monkeypatch, "mllm_judge", "FLEX_MLLM_JUDGE_PATH")
    (tmp_path / "secret.png").write_bytes(b"x")
    score = root / "Dataset" / "Benchmark" / "score.jsonl"
    lines = score.read_text().splitlines()
    lines[0] = lines[0].replace('"COCO/img_0.png"', '"../../../../secret.png"')
    score.write_text("\n".join(lines) + "\n")
    return lambda: load_items(TASKS["flex_mllm_judge_score"])


def _first_doc_media(task: str):
    from flex_tasks import lmms, media

    spec = TASKS[task]
    doc = lmms.expand(spec, load_items(spec)[1])[0]
    return lambda: media.resolve(spec, doc)


def case_corrupt_image_file(tmp_path, monkeypatch):
    root = _copy(tmp_path, monkeypatch, "mllm_judge", "FLEX_MLLM_JUDGE_PATH")
    (root / "Dataset" / "image" / "COCO" / "img_0.png").write_bytes(b"\x89PNG but not really")
    return _first_doc_media("flex_mllm_judge_score")


def case_corrupt_image_parquet_bytes(tmp_path, monkeypatch):
    import datasets

    root = _copy(tmp_path, monkeypatch, "mj_bench", "FLEX_MJ_BENCH_PATH")
    path = next((root / "data").glob("alignment-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    ds = ds.cast_column("image0", datasets.Image(decode=False))
    rows = ds.to_list()
    rows[0]["image0"] = {"bytes": b"not an image at all", "path": None}
    datasets.Dataset.from_list(rows, features=ds.features).to_parquet(str(path))
    return _first_doc_media("flex_mj_bench_alignment")


def _api():
    from flex_judge.judging.api import Judge

    return Judge(model=None)  # building requests needs no model


def case_api_missing_image(tmp_path, monkeypatch):
    return lambda: _api().compare_request("q", "a", "b", [str(tmp_path / "no_such.png")])


def case_api_missing_audio(tmp_path, monkeypatch):
    return lambda: _api().score_request(media=[str(tmp_path / "no_such.wav")], protocol="nisqa")


def case_api_string_for_images(tmp_path, monkeypatch):
    return lambda: _api().compare_request("q", "a", "b", "cat.png")


def case_api_string_for_responses(tmp_path, monkeypatch):
    return lambda: _api().rank_request("q", "ABC")


OUTSIDE = r"lies outside the data root"
MEDIA_ERROR_CASES = [
    # (case, exception, message the user sees)
    (case_nisqa_relative_escape, DataError, rf"NISQA_TEST_FOR_file.csv row 0: media path '../../../outside.wav' {OUTSIDE}"),
    (case_nisqa_absolute_path, DataError, rf"NISQA_TEST_FOR_file.csv row 0: media path '/.*outside.wav' {OUTSIDE}.*FLEX_NISQA_PATH"),
    (case_voxsim_absolute_path, DataError, rf"voxsim_test_list.txt line 2: media path '/.*outside.wav' {OUTSIDE}"),
    (case_mllm_image_escape, DataError, rf"score.jsonl row 0: media path '../../../../secret.png' {OUTSIDE}"),
    (case_corrupt_image_file, ValueError,
     r"cannot load image file '.*COCO/img_0.png' \(task flex_mllm_judge_score item 0 run 0\): UnidentifiedImageError"),
    (case_corrupt_image_parquet_bytes, ValueError,
     r"cannot load image .*\(task flex_mj_bench_alignment item 0 run 0: row 0 column image0 of .*mj_bench\): "
     r"UnidentifiedImageError"),
    (case_api_missing_image, ValueError, r"flex_vl_rewardbench media 0: image file not found: '.*no_such.png'"),
    (case_api_missing_audio, ValueError, r"flex_nisqa media 0: audio file not found: '.*no_such.wav'"),
    (case_api_string_for_images, ValueError, r"images must be a list \(e.g. \['cat.png'\]\), got str"),
    (case_api_string_for_responses, ValueError, r"responses must be a list .*got str 'ABC'"),
]


@pytest.mark.parametrize("case, exc, message", MEDIA_ERROR_CASES, ids=[c[0].__name__[5:] for c in MEDIA_ERROR_CASES])
def test_media_bad_input_is_named(case, exc, message, tmp_path, monkeypatch):
    call = case(tmp_path, monkeypatch)
    with pytest.raises(exc, match=message):
        call()


def test_media_many_channels_are_averaged_over_channels(tmp_path):
    """A 12-channel 2 s file is 2 s of mono audio (the channel axis was guessed as frames: 12 samples)."""
    from flex_models.media import load_audio, to_mono_16k

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(32000, 12)).astype(np.float32)
    sf.write(tmp_path / "twelve.wav", x, 16000, subtype="FLOAT")
    y = load_audio(str(tmp_path / "twelve.wav"))
    assert y.shape == (32000,)
    np.testing.assert_allclose(y, x.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(to_mono_16k(x.T, 16000), x.mean(axis=1), atol=1e-6)  # (channels, frames) too


def test_media_audio_longer_than_the_model_hears_warns_with_the_file(tmp_path):
    from flex_models.media import MAX_AUDIO_SECONDS, load_audio

    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(int(8000 * (MAX_AUDIO_SECONDS + 1)), dtype=np.float32), 8000)
    with pytest.warns(UserWarning, match=r"audio file '.*long.wav' \(doc 7\) lasts 31.0 s; the model hears only its first 30 s"):
        load_audio(str(path), "doc 7")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(8000, dtype=np.float32), 8000)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(str(short), "doc 8")


REPO = Path(__file__).resolve().parents[1]


# ############################################################################################
# TRAINER SECTION (trainer/*): tables TRAIN_CASES and DATA_CASES, + the vLLM partial-line case
# ############################################################################################

def _assert_outcome(case, rc: int, capsys, fmt: dict) -> None:
    """The exit code and every expected message fragment (fields of ``fmt`` regex-escaped)."""
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc == case.rc, text[-3000:]
    for pattern in case.expect:
        pattern = pattern.format(**{k: re.escape(str(v)) for k, v in fmt.items()})
        assert re.search(pattern, text), (pattern, text[-3000:])


class Ctx:
    """The paths of one case."""


def _rc(fn, argv) -> int:
    try:
        return fn(argv)
    except SystemExit as e:  # argparse errors
        return e.code if isinstance(e.code, int) else 1


class _Planted:
    """Unpickling this creates the marker file: proof that a pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---- trainer: checkpoints (never unpickled), damaged checkpoints, output folder, config, data
TRAIN_YAML = [  # line numbers matter: cases replace lines and expect them in messages
    "model: {model}",          # 1
    "train_file: {data}",      # 2
    "output_dir: {run}",       # 3
    "max_length: 2048",        # 4
    "epochs: 1",               # 5
    "per_device_batch: 2",     # 6
    "grad_accum: 1",           # 7
    "max_steps: 5",            # 8
    "save_every: 2",           # 9
    "keep_checkpoints: 2",     # 10
    "learning_rate: 1.0e-3",   # 11
    "warmup_ratio: 0.0",       # 12
    "weight_decay: 0.0",       # 13
    "precision: fp32",         # 14
    "gradient_checkpointing: false",
    "progress_bar: false",
    "plot: false",
    "seed: 0",
]
# accelerate's save_state layout, which the trainer used to write and load; custom_checkpoint_0.pkl
# (the registered scheduler) was read with weights_only=False: a pickle planted there ran on --resume
SCHEDULER_PICKLE = "custom_checkpoint_0.pkl"
PICKLE_NAMES = ("pytorch_model.bin", "optimizer.bin", "random_states_0.pkl", SCHEDULER_PICKLE)


@dataclass
class TrainCase:
    name: str
    args: list = field(default_factory=list)
    rc: int = 2
    expect: list = field(default_factory=list)  # regexes, formatted with the context paths
    setup: Callable | None = None
    yaml_lines: dict = field(default_factory=dict)  # line number -> replacement text (bytes allowed)
    check: Callable | None = None


def plant(names):
    def setup(c):
        for name in names:
            (c.ck / "step-4" / name).write_bytes(pickle.dumps(_Planted(c.marker)))
    return setup


def crashed(setup=None):
    """The fixture's run as if killed after its last checkpoint, before the export (no model/):
    --resume of a finished run trains nothing (tests/test_trainer_cli.py)."""
    def crash(c):
        shutil.rmtree(c.run / "model")
        if setup:
            setup(c)
    return crash


def truncate_largest(c):
    big = max((f for f in (c.ck / "step-4").iterdir() if f.is_file()), key=lambda f: f.stat().st_size)
    big.write_bytes(big.read_bytes()[:big.stat().st_size // 2])


def legacy_format(c):
    """A checkpoint in the old accelerate layout (pickles + meta.json), each pickle planted."""
    step4 = c.ck / "step-4"
    for f in step4.iterdir():
        if f.name != "config.yaml":
            f.unlink()
    (step4 / "meta.json").write_text(json.dumps({"step": 4, "history": []}))
    plant(PICKLE_NAMES)(c)


def bad_data_line(c):
    lines = c.data.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:40] + b"\xff\xfe" + lines[2][40:]
    c.data.write_bytes(b"".join(lines))


def no_marker(c):
    assert not c.marker.exists(), "a pickle from the checkpoint was unpickled"


def losses_equal_reference(c):
    no_marker(c)
    log = [json.loads(x) for x in open(c.run / "train_log.jsonl")]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in c.reference], abs=1e-6)


def started_over(c):
    log = [json.loads(x) for x in open(c.run / "train_log.jsonl")]
    assert [r["step"] for r in log] == [1]
    assert not (c.ck / "step-4").exists() and (c.run / "model" / "flex_train_config.yaml").exists()


def untouched(c):
    assert (c.ck / "step-4").is_dir() and len(open(c.run / "train_log.jsonl").readlines()) == 5


TRAIN_CASES = [
    TrainCase("resume never runs a pickle planted in the checkpoint", ["--resume"], rc=0, setup=crashed(plant([SCHEDULER_PICKLE])),
              expect=[r"ignored files .*custom_checkpoint_0\.pkl.*step-4"], check=losses_equal_reference),
    TrainCase("resume refuses a pickle disguised as model.safetensors", ["--resume"],
              setup=crashed(plant(["model.safetensors"])),
              expect=[r"{ck}/step-4/model\.safetensors", r"{ck}/step-2 is intact", r"--resume_from step-2"],
              check=no_marker),
    TrainCase("resume refuses a checkpoint in the old pickle format", ["--resume"], setup=crashed(legacy_format),
              expect=[r"{ck}/step-4: written by an older flex-judge", "pickle", r"--resume_from step-2"], check=no_marker),
    TrainCase("corrupt last checkpoint names the file and the intact earlier one", ["--resume"],
              setup=crashed(truncate_largest), expect=[r"{ck}/step-4/\S+", r"{ck}/step-2 is intact", r"--resume_from step-2"]),
    TrainCase("resume_from the intact earlier checkpoint reproduces the run", ["--resume_from", "step-2"], rc=0,
              setup=crashed(truncate_largest), check=losses_equal_reference),
    TrainCase("rerun into a finished output folder without --resume refuses",
              expect=[r"{cfg}:3: config key 'output_dir'", "already holds a finished run", "--overwrite"], check=untouched),
    TrainCase("rerun into an unfinished output folder without --resume refuses",
              setup=lambda c: shutil.rmtree(c.run / "model"), expect=["unfinished run", "--resume", "--overwrite"],
              check=untouched),
    TrainCase("--overwrite starts over", ["--overwrite", "--max_steps", "1", "--save_every", "0"], rc=0,
              check=started_over),
    TrainCase("YAML syntax error names file and line", yaml_lines={11: "learning_rate: 1e-3: 2"},
              expect=[r"{cfg}:11:\d+: invalid YAML: mapping values are not allowed"]),
    TrainCase("YAML wrong type names file and line", yaml_lines={5: "epochs: 1.5"},
              expect=[r"{cfg}:5: config key 'epochs' wants int"]),
    TrainCase("YAML unknown key names file and line", yaml_lines={12: "warmup_rato: 0.0"},
              expect=[r"{cfg}:12: unknown config key 'warmup_rato'.*warmup_ratio"]),
    TrainCase("YAML bad choice names file and line", yaml_lines={14: "precision: fp8"},
              expect=[r"{cfg}:14: config key 'precision': 'fp8' is not one of"]),
    TrainCase("non-UTF-8 YAML names file and line", yaml_lines={13: b"weight_decay: 0.0 # \xe9t\xe9"},
              expect=[r"{cfg}:13: not UTF-8 text \(byte 0xe9"]),
    TrainCase("missing model folder names the YAML line", ["--overwrite"], check=untouched, yaml_lines={1: "model: {tmp}/no-such-model"},
              expect=[r"{cfg}:1: config key 'model': {tmp}/no-such-model does not exist"]),
    TrainCase("model that is neither a folder nor on the hub names the YAML line", ["--overwrite"], yaml_lines={1: "model: nobody/no-model"},
              expect=[r"{cfg}:1: config key 'model': cannot load 'nobody/no-model'"]),
    TrainCase("non-UTF-8 data row names file and line", ["--overwrite"], setup=bad_data_line,
              yaml_lines={2: "train_file: {local}"}, expect=[r"{local}:3: not UTF-8 \(byte 0xff at byte 41 of the line\)"],
              check=untouched),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_vl):
    """One finished 5-step run with checkpoints step-2 and step-4 (keep_checkpoints 2)."""
    from trainer import train as T
    from trainer.make_demo_data import make_rows

    root = tmp_path_factory.mktemp("trained")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(8)))
    cfg = root / "c.yaml"
    cfg.write_text("\n".join(TRAIN_YAML).format(model=tiny_vl, data=data, run=root / "run") + "\n")
    assert T.main(["--config", str(cfg)]) == 0
    assert sorted(p.name for p in (root / "run" / "checkpoints").glob("step-*")) == ["step-2", "step-4"]
    reference = [json.loads(x) for x in open(root / "run" / "train_log.jsonl")]
    return {"root": root, "data": data, "model": tiny_vl, "reference": reference}


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c.name for c in TRAIN_CASES])
def test_trainer_bad_input(case, trained, tmp_path, capsys):
    from trainer import train as T

    c = Ctx()
    c.tmp, c.run, c.cfg, c.data = tmp_path, tmp_path / "run", tmp_path / "c.yaml", tmp_path / "local.jsonl"
    c.ck, c.marker, c.reference = c.run / "checkpoints", tmp_path / "PLANTED-PICKLE-RAN", trained["reference"]
    shutil.copytree(trained["root"] / "run", c.run)
    shutil.copy(trained["data"], c.data)
    fmt = dict(model=trained["model"], data=trained["data"], local=c.data, run=c.run, tmp=tmp_path, ck=c.ck, cfg=c.cfg)
    lines = [line.format(**fmt).encode() for line in TRAIN_YAML]
    for n, text in case.yaml_lines.items():
        lines[n - 1] = text if isinstance(text, bytes) else text.format(**fmt).encode()
    c.cfg.write_bytes(b"\n".join(lines) + b"\n")
    if case.setup:
        case.setup(c)
    rc = _rc(T.main, ["--config", str(c.cfg), *case.args])
    _assert_outcome(case, rc, capsys, fmt)
    if case.check:
        case.check(c)


# ---- trainer data pipeline: `flex-judge data generate` (resumable) and `data filter`
def judgelm_rows(n):
    return [{"question_body": f"Is {i} even?", "answer1_body": "yes", "answer2_body": "no",
             "score": [8 - i % 2, 3 + i % 2]} for i in range(n)]


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@dataclass
class DataCase:
    name: str
    args: list
    rc: int = 2
    expect: list = field(default_factory=list)
    files: dict = field(default_factory=dict)  # name -> bytes or callable(ctx) -> bytes
    check: Callable | None = None


def _trace(c, row, seed, **settings):
    from trainer.data_pipeline import build_prompt, generation_settings

    r = judgelm_rows(2)[row]
    args = type("A", (), {"teacher": str(c.teacher), "max_tokens": 4, **settings})
    return {"row": row, "seed": seed, "prompt": build_prompt(r["question_body"], r["answer1_body"], r["answer2_body"]),
            "text": "t", "n_tokens": 1, "gold": r["score"], "settings": generation_settings(args, _proto())}


def _proto():
    from trainer.data_pipeline import teacher_protocol

    return teacher_protocol()


def other_settings(c):
    return _jsonl([_trace(c, 0, 13, max_tokens=4096)])


def changed_input(c):
    t = _trace(c, 0, 13)
    t["prompt"] = t["prompt"].replace("Is 0 even?", "Is 0 odd?")
    return _jsonl([t])


GOOD = {"prompt": "p", "text": "r</think><answer>8</answer><answer>3</answer>", "gold": [8, 3], "row": 0, "seed": 13}
BAD_TRACES = _jsonl([GOOD]) + b"{not json\n" + b'{"prompt": "p\xff", "text": "x"}\n' + b"[1, 2]\n" + \
    json.dumps({"prompt": "p2"}).encode() + b"\n"
GEN = ["generate", "--teacher", "{teacher}", "--input", "{input}", "--out", "{out}", "--max-tokens", "4"]

DATA_CASES = [
    DataCase("generate refuses traces made with other settings", GEN + ["--seeds", "13"],
             files={"input": _jsonl(judgelm_rows(1)), "out": other_settings},
             expect=[r"{out}:1: generated with other settings \(max_tokens 4096 there, 4 now\)", "new --out"]),
    DataCase("generate refuses traces of a changed input", GEN + ["--seeds", "13"],
             files={"input": _jsonl(judgelm_rows(1)), "out": changed_input},
             expect=[r"{out}:1: row 0's prompt differs from --input row 0"]),
    DataCase("generate names a bad input line", GEN,
             files={"input": _jsonl(judgelm_rows(1)) + b"{oops\n" + _jsonl([{"question_body": "q"}])},
             expect=[r"{input}:2: invalid JSON", r"{input}:3: missing or non-string field 'answer1_body'"]),
    DataCase("filter reports bad lines as file:line", ["filter", "--input", "{input}", "--out", "{out}"],
             files={"input": BAD_TRACES},
             expect=[r"4 bad line\(s\)", r"{input}:2: invalid JSON", r"{input}:3: not UTF-8 \(byte 0xff",
                     r"{input}:4: not a JSON object", r"{input}:5: missing or non-string field 'text'"],
             check=lambda c: not c.out.exists()),
    DataCase("filter --bad-lines skip reports them and keeps the good ones",
             ["filter", "--input", "{input}", "--out", "{out}", "--bad-lines", "skip"], rc=0,
             files={"input": BAD_TRACES}, expect=[r"skipping 4 bad line\(s\)", r"{input}:3: not UTF-8"],
             check=lambda c: [json.loads(x) for x in open(c.out)] == [{"prompt": "p", "text": GOOD["text"]}]),
]


@pytest.mark.parametrize("case", DATA_CASES, ids=[c.name for c in DATA_CASES])
def test_data_pipeline_bad_input(case, tiny_vl, tmp_path, capsys):
    from trainer.data_pipeline import main

    c = Ctx()
    c.teacher, c.input, c.out = tiny_vl, tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    for name, content in case.files.items():
        getattr(c, name).write_bytes(content(c) if callable(content) else content)
    fmt = dict(teacher=c.teacher, input=c.input, out=c.out)
    rc = _rc(main, [a.format(**fmt) for a in case.args])
    _assert_outcome(case, rc, capsys, fmt)
    if case.check:
        assert case.check(c) is not False


def test_generate_cuts_a_partial_last_line_before_appending(tiny_vl, tmp_path):
    """A crash mid-write leaves half a line; the rerun (real vLLM CPU engine on the tiny teacher)
    cuts it, keeps the finished lines byte for byte and generates only the cut pair."""
    c = Ctx()
    c.teacher = tiny_vl
    (tmp_path / "in.jsonl").write_bytes(_jsonl(judgelm_rows(1)))
    done = (json.dumps(_trace(c, 0, 13)) + "\n").encode()
    cut = json.dumps(_trace(c, 0, 79)).encode()[:57]  # the line of (row 0, seed 79), cut by a crash
    out = tmp_path / "traces.jsonl"
    out.write_bytes(done + cut)
    cmd = [sys.executable, "-m", "trainer.data_pipeline",
           *[a.format(teacher=tiny_vl, input=tmp_path / "in.jsonl", out=out) for a in GEN],
           "--engine-args", json.dumps({"dtype": "float32"})]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"cut a partial last line ({len(cut)} bytes)" in p.stderr and "1 done, 1 to go" in p.stderr
    data = out.read_bytes()
    assert data.startswith(done) and data.endswith(b"\n")
    lines = [json.loads(x) for x in data.decode().splitlines()]
    assert [(r["row"], r["seed"]) for r in lines] == [(0, 13), (0, 79)]
    assert lines[1]["settings"] == lines[0]["settings"] and lines[1]["n_tokens"] >= 1


# ############################################################################################
# END OF TRAINER SECTION
# ############################################################################################
