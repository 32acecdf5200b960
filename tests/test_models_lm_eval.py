"""lm-eval 0.4.13 integration: registration, the flex_judgelm task's pure hooks, and one real CLI run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flex_tasks import text_judge as tj


def test_flex_registered_with_lm_eval():
    import flex_models.lm_eval_model as m
    from lm_eval.api.registry import get_model

    assert get_model("flex") is m.FlexJudgeLM


def test_mini_fixture_golds_cover_both_sides_and_a_tie():
    rows = tj.load_rows()
    assert len(rows) == 8
    golds = [tj.verdict_from_scores(r["score"]) for r in rows]
    assert {"1", "2", "tie"} <= set(golds)


@pytest.mark.parametrize("output, score, accuracy, failure", [
    ("<think>x</think><answer>9</answer><answer>2</answer>", [10, 2], 1.0, 0),
    ("<answer>2</answer><answer>9</answer>", [10, 2], 0.0, 0),
    ("<answer>5</answer><answer>5</answer>", [8, 8], 1.0, 0),  # ties count as a class
    ("<answer>9</answer>", [10, 2], 0.0, 1),  # one score only: parse failure, wrong
    ("I prefer the first.", [8, 8], 0.0, 1),
])
def test_process_results(output, score, accuracy, failure):
    doc = {"question_body": "q", "answer1_body": "a", "answer2_body": "b", "score": score}
    assert tj.process_results(doc, [output]) == {"accuracy": accuracy, "parse_failures": failure}


def test_prompt_is_the_protocol_chat_layout():
    doc = {"question_body": "Q?", "answer1_body": "A1", "answer2_body": "A2", "score": [1, 2]}
    expected = (f"<|im_start|>system\n{tj.SYSTEM}<|im_end|>\n<|im_start|>user\n[Question]\nQ?\n\n"
                "[Assistant 1's Answer]\nA1\n\n[Assistant 2's Answer]\nA2<|im_end|>\n<|im_start|>assistant\n")
    assert tj.doc_to_text(doc) == expected


def test_judgelm_path_env(tmp_path, monkeypatch):
    f = tmp_path / "j.jsonl"
    f.write_text(json.dumps({"question_body": "q", "answer1_body": "a", "answer2_body": "b", "score": [1, 3]}) + "\n")
    monkeypatch.setenv("FLEX_JUDGELM_PATH", str(f))
    monkeypatch.delenv("FLEX_JUDGE_DATA", raising=False)
    ds = tj.load_dataset()
    assert ds["test"].num_rows == 1 and ds["test"][0]["score"] == [1.0, 3.0]
    monkeypatch.setenv("FLEX_JUDGELM_PATH", str(tmp_path / "nope.jsonl"))
    with pytest.raises(FileNotFoundError, match="FLEX_JUDGELM_PATH"):
        tj.load_rows()


@pytest.mark.e2e
def test_lm_eval_cli_runs_flex_judgelm(tiny_vl, tmp_path):
    cmd = [sys.executable, "-m", "flex_models.lm_eval_cli", "--model", "flex",
           "--model_args", f"pretrained={tiny_vl},backend=hf,dtype=float32,max_new_tokens=8",
           "--tasks", "flex_judgelm", "--limit", "4", "--output_path", str(tmp_path), "--log_samples"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("FLEX_JUDGELM_PATH", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    results = sorted(Path(tmp_path).rglob("results_*.json"))
    assert results, proc.stderr[-3000:]
    res = json.loads(results[-1].read_text())["results"]["flex_judgelm"]
    samples = [json.loads(x) for f in Path(tmp_path).rglob("samples_flex_judgelm_*.jsonl")
               for x in f.read_text().splitlines() if x.strip()]
    assert len(samples) == 4
    # a random tiny model writes no <answer> tags: every item is a parse failure and wrong
    assert res["parse_failures,none"] == 4.0 and res["accuracy,none"] == 0.0
    assert all(s["resps"][0][0] for s in samples)
