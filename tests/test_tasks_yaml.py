"""The YAMLs are generated from the protocol table; lmms-eval indexes every task and group."""
import subprocess
import sys
from pathlib import Path

import yaml

from flex_tasks.protocol import GROUPS, TASKS

REPO = Path(__file__).resolve().parents[1]


def test_yamls_are_up_to_date(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yaml_tasks.generate", "--check"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # and a fresh generation equals the committed files byte for byte
    subprocess.run([sys.executable, "-m", "yaml_tasks.generate", "--out", str(tmp_path)], cwd=REPO, check=True, capture_output=True)
    committed = REPO / "yaml_tasks" / "flex"
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert (committed / p.relative_to(tmp_path)).read_text() == p.read_text()


def _load(path):
    class L(yaml.SafeLoader):
        pass

    L.add_constructor("!function", lambda loader, node: ("fn", loader.construct_scalar(node)))
    return yaml.load(path.read_text(), Loader=L)


def test_task_yaml_settings_follow_protocol():
    d = REPO / "yaml_tasks" / "flex"
    base = _load(d / "_flex_base.yaml")
    assert base["reasoning_tags"] == "none" and base["process_docs"] == ("fn", "flex_tasks.lmms.process_docs")
    for name, spec in TASKS.items():
        y = _load(d / f"{name}.yaml")
        g = y["generation_kwargs"]
        assert (g["temperature"], g["top_p"], g["max_new_tokens"]) == (spec.temperature, spec.top_p, spec.max_tokens)
        assert [m["metric"] for m in y["metric_list"]] == [m for m, _ in spec.metric_names()]
    score = _load(d / "flex_mllm_judge_score.yaml")["generation_kwargs"]
    assert score["until"] == ["</answer>", "<|im_end|>"] and score["include_stop_str_in_output"] is True
    assert _load(d / "flex_somos.yaml")["generation_kwargs"]["temperature"] == 0.5


def test_lmms_eval_indexes_all_tasks_and_groups():
    from lmms_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(REPO / "yaml_tasks"), include_defaults=False)
    names = set(tm.all_tasks)
    assert set(TASKS) <= names and set(GROUPS) <= names


def test_every_task_sets_its_stop_strings_explicitly():
    """lmms-eval adds until=["\\n\\n"] when a task gives none: that would truncate the reasoning."""
    for name, spec in TASKS.items():
        text = (REPO / "yaml_tasks" / "flex" / f"{name}.yaml").read_text()
        doc = yaml.load(text.replace("!function", ""), Loader=yaml.BaseLoader)
        assert "until" in doc["generation_kwargs"], name
        assert list(spec.stop) == spec.generation_kwargs()["until"]
        assert "\n\n" not in spec.generation_kwargs()["until"]
