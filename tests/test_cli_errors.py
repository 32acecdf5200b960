"""Plausible mistakes fail at once, before any model loads, with the setting at fault and a
suggestion: a misspelled task name, a misspelled FLEX_JUDGE_DATA value."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _eval(*args, **env):
    full = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **env)
    return subprocess.run([sys.executable, "-m", "flex_judge.cli", "eval", "--model_args", "pretrained=nowhere", *args],
                          cwd=REPO, env=full, capture_output=True, text=True, timeout=300)


def test_misspelled_task_gets_a_suggestion_before_anything_loads():
    proc = _eval("--tasks", "flex_vl_rewardbnch", FLEX_JUDGE_DATA="fixtures")
    assert proc.returncode == 2
    assert "unknown flex task(s): 'flex_vl_rewardbnch' (did you mean 'flex_vl_rewardbench'?)" in proc.stderr
    assert "lmms_eval" not in proc.stderr  # stopped before lmms-eval was imported


def test_misspelled_data_setting_is_refused_not_ignored():
    proc = _eval("--tasks", "flex_vl_rewardbench", FLEX_JUDGE_DATA="fixture")
    assert proc.returncode == 2
    assert "FLEX_JUDGE_DATA='fixture': the only value is 'fixtures'" in proc.stderr
    assert "FLEX_VL_REWARDBENCH_PATH" in proc.stderr
