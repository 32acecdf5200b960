"""MLLM-as-a-Judge: score (one answer), pair (two answers) and batch (a ranking of N answers,
one '[Assistant i's Answer]' block each); one image per item."""
from flex_tasks.benchmarks import Benchmark
from flex_tasks.parsing import PARSERS
from flex_tasks.protocol import FAMILY_PLACEHOLDERS


def batch_template(n_answers: int) -> str:
    """The batch layout: one '[Assistant i's Answer]' block per answer, joined by blank lines
    (the reference script strips the whole string at the end)."""
    blocks = "".join(f"[Assistant {i + 1}'s Answer]\n{{a{i + 1}}}\n\n" for i in range(n_answers))
    return FAMILY_PLACEHOLDERS["vl"]["image"] + "\n\n[Question]\n{instruction}\n\n" + blocks


def fields(spec, doc) -> dict:
    if spec.variant == "pair":
        return {"instruction": doc["instruction"], "answer1": doc["answer1"], "answer2": doc["answer2"]}
    if spec.variant == "batch":
        return {"instruction": doc["instruction"], **{f"a{i + 1}": a for i, a in enumerate(doc["answers"])}}
    return {"instruction": doc["instruction"], "answer": doc["answer"]}


def user_parts(spec, doc) -> list:
    from flex_tasks.prompts import template_parts

    if spec.variant != "batch":
        return template_parts(spec.user, fields(spec, doc))
    parts = template_parts(batch_template(len(doc["answers"])), fields(spec, doc))
    if parts and parts[-1][0] == "text":  # .strip() of the whole user string
        stripped = parts[-1][1].rstrip()
        parts = parts[:-1] + ([("text", stripped)] if stripped else [])
    return parts


def parse(spec, doc, text: str):
    if spec.variant == "batch":
        return PARSERS["mllm_batch"](text, n_answers=len(doc["answers"]))
    return PARSERS[spec.parser](text)


BENCHMARK = Benchmark("mllm_as_a_judge", fields=fields, user_parts=user_parts, parse=parse)
