"""Protocol user templates -> interleaved chat content (contract 1).

A template is split at its media placeholders *before* fields are filled, so text from the
data can never be mistaken for a placeholder. Text parts are exactly the protocol string with
the placeholders cut out; empty text parts are dropped.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from flex_tasks.protocol import FAMILY_PLACEHOLDERS, PLACEHOLDERS, TaskSpec

_PH_RE = re.compile("(" + "|".join(re.escape(p) for p in PLACEHOLDERS) + ")")


def template_parts(template: str, fields: dict) -> list[tuple[str, str]]:
    """``[("text", filled text) | (media kind, placeholder)]`` in template order."""
    parts = []
    for piece in _PH_RE.split(template):
        if piece in PLACEHOLDERS:
            parts.append((PLACEHOLDERS[piece], piece))
        elif piece:
            parts.append(("text", piece.format(**fields)))
    return parts


def batch_template(n_answers: int) -> str:
    """MLLM-as-a-Judge batch layout: one '[Assistant i's Answer]' block per answer, joined
    by blank lines (the reference script strips the whole string at the end)."""
    blocks = "".join(f"[Assistant {i + 1}'s Answer]\n{{a{i + 1}}}\n\n" for i in range(n_answers))
    return FAMILY_PLACEHOLDERS["vl"]["image"] + "\n\n[Question]\n{instruction}\n\n" + blocks


def user_parts(spec: TaskSpec, doc: dict) -> list[tuple[str, str]]:
    if spec.task == "flex_mllm_judge_batch":
        answers = list(doc["answers"])
        parts = template_parts(batch_template(len(answers)), {
            "instruction": doc["instruction"], **{f"a{i + 1}": a for i, a in enumerate(answers)}})
        if parts and parts[-1][0] == "text":  # .strip() of the whole user string
            stripped = parts[-1][1].rstrip()
            parts = parts[:-1] + ([("text", stripped)] if stripped else [])
        return parts
    return template_parts(spec.user, prompt_fields(spec, doc))


def prompt_fields(spec: TaskSpec, doc: dict) -> dict:
    """Template fields for one doc (order swaps applied)."""
    b = spec.bench
    if b == "vl_rewardbench":
        a1, a2 = (doc["answer1"], doc["answer0"]) if doc["flex_swap"] else (doc["answer0"], doc["answer1"])
        return {"query": doc["query"], "answer1": a1, "answer2": a2}
    if b == "mj_bench":
        return {"caption": doc["caption"]}
    if b == "genai_bench":
        if spec.variant == "image_edition":
            return {k: doc[k] for k in ("source_prompt", "target_prompt", "instruct_prompt")}
        return {"prompt": doc["prompt"]}
    if b == "mllm_as_a_judge":
        if spec.variant == "pair":
            return {"instruction": doc["instruction"], "answer1": doc["answer1"], "answer2": doc["answer2"]}
        return {"instruction": doc["instruction"], "answer": doc["answer"]}
    return {}


def interleave(parts: Sequence[tuple[str, str]], media: Sequence[Any]) -> list[dict]:
    """Replace each media part, in order, with ``{"type": kind, "url": media[i]}``."""
    n_media = sum(1 for kind, _ in parts if kind != "text")
    if n_media != len(media):
        raise ValueError(f"template has {n_media} media placeholders but {len(media)} media were given")
    out, it = [], iter(media)
    for kind, text in parts:
        out.append({"type": "text", "text": text} if kind == "text" else {"type": kind, "url": next(it)})
    return out


def messages(spec: TaskSpec, doc: dict, media: Sequence[Any]) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": spec.system}]},
        {"role": "user", "content": interleave(user_parts(spec, doc), media)},
    ]
