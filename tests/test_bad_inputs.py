"""Bad input gets a clear error naming the file / row / doc / setting, never a silent wrong
number (issue 10 item 5). One table per area; each row is one input that was tried by hand
and went wrong before.

Section "media": media paths in data rows, corrupt images, the Python API's media arguments,
odd audio (many channels, longer than the model hears).
"""
import csv
import shutil

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
    from flex_judge.api import Judge

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
