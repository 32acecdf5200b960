"""`flex_judgelm`: JudgeLM-style pairwise text judging for lm-eval (protocols.json text_judges.judgelm).

Data: env FLEX_JUDGELM_PATH = a jsonl with question_body, answer1_body, answer2_body and score
([s1, s2], the GPT-4 pair), or a folder holding judgelm_val_5k.jsonl + judgelm_val_5k_gpt4.jsonl
(joined on question_id). Unset, or FLEX_JUDGE_DATA=fixtures: the bundled 8-row mini set
(yaml_tasks/lm_eval/judgelm_mini.jsonl). Gold verdict from the score pair: "1", "2" or "tie".
Prediction: the first two <answer>N</answer> integers compared the same way; unparsable -> None
(counted wrong and as a parse failure).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from flex_models.render import render
from flex_tasks.parsing import pairwise_scores
from flex_tasks.data import read_jsonl

_SPEC = json.loads((Path(__file__).with_name("protocols.json")).read_text())["text_judges"]
SYSTEM = _SPEC["judgelm"]["system"]
USER = _SPEC["judgelm"]["user"]
SAMPLING = _SPEC["sampling"]
MINI = Path(__file__).resolve().parents[1] / "yaml_tasks" / "lm_eval" / "judgelm_mini.jsonl"
ENV = "FLEX_JUDGELM_PATH"


def load_rows(source: str | None = None) -> list[dict]:
    src = source or os.environ.get(ENV)
    if not src or os.environ.get("FLEX_JUDGE_DATA") == "fixtures":
        return read_jsonl(MINI)
    p = Path(src).expanduser()
    if p.is_dir():
        answers = {r["question_id"]: r for r in read_jsonl(p / "judgelm_val_5k.jsonl")}
        rows = []
        for g in read_jsonl(p / "judgelm_val_5k_gpt4.jsonl"):
            row = dict(answers[g["question_id"]])
            row["score"] = g["score"]
            rows.append(row)
        return rows
    if not p.is_file():
        raise FileNotFoundError(f"{ENV}={src!r}: no such file or folder")
    return read_jsonl(p)


def load_dataset(**_):
    """lm-eval `custom_dataset` hook -> DatasetDict with one `test` split."""
    import datasets

    keep = ("question_body", "answer1_body", "answer2_body", "score")
    rows = load_rows()
    for i, r in enumerate(rows):
        missing = [k for k in keep if k not in r]
        if missing:
            raise ValueError(f"flex_judgelm row {i}: missing fields {missing}")
    data = {k: [r[k] for r in rows] for k in keep}
    data["score"] = [[float(s) for s in r["score"]] for r in rows]
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(data)})


def verdict_from_scores(pair) -> str | None:
    if pair is None:
        return None
    a, b = float(pair[0]), float(pair[1])
    return "1" if a > b else "2" if a < b else "tie"


def messages(doc) -> list[dict]:
    user = (USER.replace("{question}", doc["question_body"]).replace("{answer1}", doc["answer1_body"])
            .replace("{answer2}", doc["answer2_body"]))
    return [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "user", "content": [{"type": "text", "text": user}]}]


def doc_to_text(doc) -> str:
    """The full chat prompt (text-only prompts are the same for Qwen2.5-VL and Omni)."""
    return render(messages(doc), "vl").prompt


def doc_to_target(doc) -> str:
    return verdict_from_scores(doc["score"])


def process_results(doc, results) -> dict:
    parsed = pairwise_scores(results[0])
    pred = verdict_from_scores(parsed.value) if parsed.ok else None
    gold = verdict_from_scores(doc["score"])
    return {"accuracy": float(pred == gold), "parse_failures": int(not parsed.ok)}


def total(items) -> float:
    """Aggregation: a count over items (lm-eval 0.4.13 has no built-in `sum`)."""
    return float(sum(items))
