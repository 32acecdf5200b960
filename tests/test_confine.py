"""One confinement rule for every media path from data (issue 26 item 2, flex_models.confine):
the resolved path (symlinks followed) must lie inside the allowed root. Covered here: hub-style
parquet image columns ``{bytes: null, path: ...}`` (VL-RewardBench, MJ-Bench), a symlink inside a
corpus root pointing out, and a `flex-judge judge` file naming /etc/... media. Each is refused at
pre-flight with the file and the row named."""
import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flex_models.confine import OutsideRoot, confine
from flex_tasks.data import FIXTURES_DIR, DataError, load_items
from flex_tasks.protocol import TASKS

REPO = Path(__file__).resolve().parents[1]
IMG = REPO / "examples" / "data" / "red_square.png"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ["FLEX_JUDGE_DATA"] + [s.env for s in TASKS.values()]:
        monkeypatch.delenv(var, raising=False)


def test_confine_resolves_symlinks_dots_and_absolute_paths(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    out.mkdir()
    (out / "secret.png").write_bytes(b"x")
    (root / "sub" / "ok.png").write_bytes(b"x")
    os.symlink(out / "secret.png", root / "sub" / "link.png")
    os.symlink(out, root / "dirlink")
    assert confine("sub/ok.png", root) == (root / "sub" / "ok.png").resolve()
    assert confine(str(root / "sub" / "ok.png"), root) == (root / "sub" / "ok.png").resolve()  # absolute, inside
    assert confine("ok.png", root, base=root / "sub") == (root / "sub" / "ok.png").resolve()
    assert confine("sub/missing.png", root).name == "missing.png"  # a missing file is the loader's to report
    for bad in ("sub/link.png", "dirlink/secret.png", "../out/secret.png", "sub/../../out/secret.png",
                str(out / "secret.png"), "/etc/passwd", "sub/ok.png\x00"):
        with pytest.raises(OutsideRoot, match="lies outside the allowed root"):
            confine(bad, root)
    with pytest.raises(OutsideRoot, match=r"resolves to .*out/secret.png"):
        confine("sub/link.png", root)


def _hub_copy_with_path(tmp_path, monkeypatch, bench: str, setting: str, pattern: str, col: str, path_of):
    import datasets

    root = tmp_path / "data" / bench
    shutil.copytree(FIXTURES_DIR / bench, root)
    monkeypatch.setenv(setting, str(root))
    pq = next((root / "data").glob(pattern))
    ds = datasets.load_dataset("parquet", data_files=str(pq), split="train").cast_column(col, datasets.Image(decode=False))
    rows = ds.to_list()
    rows[1][col] = {"bytes": None, "path": path_of(root)}
    datasets.Dataset.from_list(rows, features=ds.features).to_parquet(str(pq))
    return root


HUB_CASES = [("vl_rewardbench", "FLEX_VL_REWARDBENCH_PATH", "test-*.parquet", "image", "flex_vl_rewardbench"),
             ("mj_bench", "FLEX_MJ_BENCH_PATH", "alignment-*.parquet", "image0", "flex_mj_bench_alignment")]


@pytest.mark.parametrize("bench, setting, pattern, col, task", HUB_CASES, ids=[c[0] for c in HUB_CASES])
def test_hub_image_column_path_outside_the_root_is_refused_at_preflight(tmp_path, monkeypatch, bench, setting,
                                                                        pattern, col, task):
    outside = tmp_path / "outside.png"
    shutil.copy(IMG, outside)  # exists and is a valid image: only its location is wrong
    _hub_copy_with_path(tmp_path, monkeypatch, bench, setting, pattern, col, lambda root: str(outside))
    with pytest.raises(DataError, match=rf"{task} \(.*{bench}\) row 1 column {col}: image path '{outside}' lies "
                                        rf"outside the data root .*{bench} \(setting {setting}\)"):
        load_items(TASKS[task])


@pytest.mark.parametrize("bench, setting, pattern, col, task", HUB_CASES, ids=[c[0] for c in HUB_CASES])
def test_hub_image_column_path_inside_the_root_is_read_from_the_root(tmp_path, monkeypatch, bench, setting,
                                                                      pattern, col, task):
    from flex_tasks import media

    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").mkdir()
    shutil.copy(IMG, tmp_path / "img" / "inside.png")  # datasets' parquet writer stats the path from the cwd
    root = _hub_copy_with_path(tmp_path, monkeypatch, bench, setting, pattern, col, lambda root: "img/inside.png")
    shutil.move(tmp_path / "img", root / "img")  # now only under the data root: read from there, not the cwd
    source, items = load_items(TASKS[task])
    doc = next(dict(it, flex_item=it["item"], flex_run=0, flex_swap=False) for it in items if it["row"] == 1)
    from PIL import Image

    imgs = media.resolve(TASKS[task], doc)
    size = TASKS[task].image_size
    assert imgs[0].size == ((size, size) if size else Image.open(IMG).size)
    os.symlink(tmp_path, root / "img" / "up")  # the decode-time check is the same rule
    with pytest.raises(DataError, match="lies outside the allowed root"):
        media.confined_cell({"bytes": None, "path": "img/up/outside.png"}, source, "here")


def test_symlink_inside_a_corpus_root_pointing_out_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "data" / "nisqa"
    shutil.copytree(FIXTURES_DIR / "nisqa", root)
    monkeypatch.setenv("FLEX_NISQA_PATH", str(root))
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.zeros(1600, dtype=np.float32), 16000)
    csv_path = root / "NISQA_TEST_FOR" / "NISQA_TEST_FOR_file.csv"
    rel = next(csv.DictReader(csv_path.open()))["filepath_deg"]
    wav = root / "NISQA_TEST_FOR" / rel
    wav.unlink()
    os.symlink(outside, wav)  # the path as written is inside the root; the file it leads to is not
    with pytest.raises(DataError, match=rf"NISQA_TEST_FOR_file.csv row 0: media path '{rel}' lies outside the data "
                                        rf"root .*, through a symlink to {outside} \(setting FLEX_NISQA_PATH\)"):
        load_items(TASKS["flex_nisqa"])
    wav.unlink()
    os.symlink(root / "NISQA_TEST_FOR" / "deg" / "c00001_for.wav", wav)  # a symlink that stays inside: fine
    assert len(load_items(TASKS["flex_nisqa"])[1]) > 0


def test_judge_file_media_outside_its_folder_is_a_bad_row(tmp_path):
    import json

    from flex_judge.judging.file import read_items

    (tmp_path / "img").mkdir()
    shutil.copy(IMG, tmp_path / "img" / "ok.png")
    os.symlink("/etc/hostname", tmp_path / "img" / "link.png")
    rows = [{"id": "ok", "question": "q", "response": "r", "images": ["img/ok.png"]},
            {"id": "etc", "question": "q", "response": "r", "images": ["/etc/passwd"]},
            {"id": "up", "question": "q", "response": "r", "images": "../../etc/passwd"},
            {"id": "link", "question": "q", "response": "r", "images": ["img/link.png"]}]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, bad = read_items(path, "auto")
    assert [it.id for it in items] == ["ok"]
    assert [(b["line"], b["id"]) for b in bad] == [(2, "etc"), (3, "up"), (4, "link")]
    assert all("image path" in b["error"] and "lies outside the allowed root" in b["error"]
               and "--media-root" in b["error"] for b in bad)
    # --media-root widens the root on purpose
    items, bad = read_items(path, "auto", media_root=Path("/"))
    assert {"ok", "etc", "link"} <= {it.id for it in items}
