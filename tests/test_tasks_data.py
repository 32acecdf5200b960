"""Contract 3: data settings, local copies through the same code path, clear errors."""
import shutil

import pytest

from flex_tasks.data import FIXTURES_DIR, DataError, load_items
from flex_tasks.protocol import TASKS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ["FLEX_JUDGE_DATA", "FLEX_JUDGE_RUNS"] + [s.env for s in TASKS.values()]:
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("task", ["flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim", "flex_mllm_judge_pair"])
def test_corpora_without_hub_name_their_setting(task):
    with pytest.raises(DataError, match=TASKS[task].env):
        load_items(TASKS[task])


def test_hub_offline_error_names_setting(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="FLEX_VL_REWARDBENCH_PATH"):
        load_items(TASKS["flex_vl_rewardbench"])


def test_nonexistent_path_named(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEX_BVCC_PATH", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="FLEX_BVCC_PATH"):
        load_items(TASKS["flex_bvcc"])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_env_path_equals_fixtures(monkeypatch, task):
    spec = TASKS[task]
    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    _, a = load_items(spec)
    monkeypatch.delenv("FLEX_JUDGE_DATA")
    sub = {"mllm_as_a_judge": "mllm_judge"}.get(spec.bench, spec.bench)
    monkeypatch.setenv(spec.env, str(FIXTURES_DIR / sub))
    _, b = load_items(spec)
    assert repr(a) == repr(b)  # (NaN system_gt compares unequal with ==)


def test_save_to_disk_copy_loads_like_parquet(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    _, via_parquet = load_items(TASKS["flex_mj_bench_safety"])
    monkeypatch.delenv("FLEX_JUDGE_DATA")
    files = {s: str(p) for s in ("alignment", "safety", "quality") for p in (FIXTURES_DIR / "mj_bench" / "data").glob(f"{s}-*.parquet")}
    datasets.load_dataset("parquet", data_files=files).save_to_disk(str(tmp_path / "mj"))
    monkeypatch.setenv("FLEX_MJ_BENCH_PATH", str(tmp_path / "mj"))
    _, via_disk = load_items(TASKS["flex_mj_bench_safety"])
    strip = lambda items: [{k: v for k, v in it.items() if k != "source"} for it in items]
    assert strip(via_disk) == strip(via_parquet)


def test_missing_split_in_copy(monkeypatch, tmp_path):
    shutil.copytree(FIXTURES_DIR / "mj_bench", tmp_path / "mj")
    (next((tmp_path / "mj" / "data").glob("quality-*.parquet"))).unlink()
    monkeypatch.setenv("FLEX_MJ_BENCH_PATH", str(tmp_path / "mj"))
    with pytest.raises(DataError, match="quality"):
        load_items(TASKS["flex_mj_bench_quality"])


def test_malformed_rows_are_named(monkeypatch, tmp_path):
    root = tmp_path / "vox"
    shutil.copytree(FIXTURES_DIR / "voxsim", root)
    lst = root / "voxsim_test_list.txt"
    lst.write_text(lst.read_text() + "only,three,fields\n")
    monkeypatch.setenv("FLEX_VOXSIM_PATH", str(root))
    with pytest.raises(DataError, match=r"voxsim_test_list.txt line 5"):
        load_items(TASKS["flex_voxsim"])

    root = tmp_path / "mllm"
    shutil.copytree(FIXTURES_DIR / "mllm_judge", root)
    score = root / "Dataset" / "Benchmark" / "score.jsonl"
    score.write_text(score.read_text() + '{"id": 9, "image_path": "COCO/img_0.png", "original_dataset": "COCO", '
                     '"instruction": "q", "answer": "a", "human": "five"}\n')
    monkeypatch.setenv("FLEX_MLLM_JUDGE_PATH", str(root))
    with pytest.raises(DataError, match=r"score.jsonl row 5.*five"):
        load_items(TASKS["flex_mllm_judge_score"])


def test_missing_media_file_named(monkeypatch, tmp_path):
    root = tmp_path / "somos"
    shutil.copytree(FIXTURES_DIR / "somos", root)
    victim = sorted((root / "audios").glob("*.wav"))[0]
    victim.unlink()
    monkeypatch.setenv("FLEX_SOMOS_PATH", str(root))
    with pytest.raises(DataError, match=victim.name):
        load_items(TASKS["flex_somos"])


def test_upstream_field_variants(monkeypatch):
    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    _, score = load_items(TASKS["flex_mllm_judge_score"])
    assert all(isinstance(it["gold"], int) for it in score)  # a string human score is converted
    _, batch = load_items(TASKS["flex_mllm_judge_batch"])
    assert [it["gold"] for it in batch] == ["ABC", "CAB", "BCA"]  # human_answer and human both read
    _, mj = load_items(TASKS["flex_mj_bench_alignment"])
    assert [it["gold"] for it in mj] == [0, 1, 0, 2]  # label_0 == 0.5 marks a tie
    _, nisqa = load_items(TASKS["flex_nisqa"])
    assert {it["set"] for it in nisqa} == {"FOR", "LIVETALK", "P501"}
    assert all(round(it["gold"], 1) == it["gold"] for it in nisqa)


def test_fixtures_small_and_generated():
    size = sum(p.stat().st_size for p in FIXTURES_DIR.rglob("*") if p.is_file())
    assert size < 3 * 2**20


def test_make_fixtures_deterministic(tmp_path):
    from flex_tasks.make_fixtures import make_fixtures

    a, b = make_fixtures(tmp_path / "a"), make_fixtures(tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    # text files of the committed fixtures match a fresh generation
    for f in files:
        if f.suffix in (".jsonl", ".csv", ".txt"):
            assert (FIXTURES_DIR / f).read_text() == (a / f).read_text(), f


def test_repeated_data_ids_stay_separate_items(monkeypatch, tmp_path):
    """MJ-Bench's alignment annotations repeat ids (pap_0 ...): every row is its own item
    (key = row position), the repeats are warned about and counted in the report."""
    import datasets

    from flex_tasks import lmms

    src = next((FIXTURES_DIR / "mj_bench" / "data").glob("alignment-*.parquet"))
    base = datasets.load_dataset("parquet", data_files=str(src), split="train")
    table = datasets.concatenate_datasets([base] * 3)  # 12 rows
    ids = ["pap_0", "pap_0", "pap_1", "pap_2", "pap_2", "pap_2"] + [f"x_{i}" for i in range(len(table) - 6)]
    table = table.remove_columns([c for c in ("id",) if c in table.column_names]).add_column("id", ids)
    (tmp_path / "mj" / "data").mkdir(parents=True)
    table.to_parquet(str(tmp_path / "mj" / "data" / "alignment-00000-of-00001.parquet"))
    monkeypatch.setenv("FLEX_MJ_BENCH_PATH", str(tmp_path / "mj"))
    spec = TASKS["flex_mj_bench_alignment"]
    with pytest.warns(UserWarning, match=r"3 of 12 rows repeat a data id.*'pap_0'"):
        _, items = load_items(spec)
    assert [it["item"] for it in items] == list(range(12))
    assert [it["data_id"] for it in items] == ids
    docs = lmms.expand(spec, items)
    records = [lmms.make_record(spec, d, "<answer>5</answer><answer>3</answer>") for d in docs]
    report = lmms.report_for(records)
    assert report["n_items"] == 12 and report["n_runs"] == spec.n_runs()
    assert report["breakdown"]["duplicate_data_ids"] == {"count": 3, "examples": ["pap_0", "pap_2"]}
