"""The bundled demo training sets (deterministic, synthetic, text only, written by this project).

    python -m trainer.make_demo_data                 # both files below
    python -m trainer.make_demo_data --set formats   # only trainer/data/demo_formats.jsonl

demo_formats.jsonl (`make_format_rows`): what `flex-judge demo` trains its tiny judges on. One
block of rows per flex task, each under that task's own protocol system prompt and user template
(flex_tasks.protocol / flex_tasks.prompts), so every answer format the tasks parse is covered
(each benchmark module's `demo_example`, flex_tasks.benchmarks):
pairwise scores 1-10, a single score 1-5, batch rankings of 3-4 scores, GenAI-Bench votes
`[[A>B]]` / `[[B>A]]` / `[[A=B=Good]]` / `[[A=B=Bad]]`, MOS floats and speaker similarity
floats. The data stays text only, as in the paper: each image / video / audio part of the
template is replaced by a short text description of the media, e.g. "(image: 3 red apples)".
Messages are rendered by the project's renderer (flex_models.render) with the '<think>\\n'
assistant prefix of the training recipe. `text` = a short reasoning that follows from the
descriptions, '</think>', then the task's answer tags.

demo_train.jsonl (`make_rows`): 48 rows of the recipe's teacher format only (JudgeLM system
prompt, two scores); the trainer's tests and benchmarks/train_gpu_demo.py use it.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from trainer.data_pipeline import build_prompt

DATA = Path(__file__).resolve().parent / "data"
OUT = DATA / "demo_train.jsonl"
FORMATS_OUT = DATA / "demo_formats.jsonl"
ASSISTANT_PREFIX = "<think>\n"
FACTS = [("What is the capital of France?", "Paris", "Lyon"), ("What is the capital of Japan?", "Tokyo", "Osaka"),
         ("What is the capital of Italy?", "Rome", "Milan"), ("What is the capital of Canada?", "Ottawa", "Toronto"),
         ("Which planet is closest to the Sun?", "Mercury", "Venus"), ("What gas do plants take in?", "Carbon dioxide", "Oxygen"),
         ("How many legs does a spider have?", "Eight", "Six"), ("What is the boiling point of water at sea level in Celsius?", "100 degrees", "90 degrees"),
         ("Who wrote Hamlet?", "William Shakespeare", "Charles Dickens"), ("What is the largest ocean?", "The Pacific Ocean", "The Indian Ocean")]


# ---------------------------------------------------------------- teacher format (trainer tests)
def _arith(rng: random.Random):
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    op = rng.choice(["+", "*", "-"])
    right = {"+": a + b, "*": a * b, "-": a - b}[op]
    wrong = right + rng.choice([-3, -2, -1, 1, 2, 5])
    return f"What is {a} {op} {b}?", f"{a} {op} {b} = {right}.", f"{a} {op} {b} = {wrong}.", str(right)


def make_rows(n: int = 48, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2 == 0:
            q, good, bad, key = _arith(rng)
        else:
            q, g, b = FACTS[(i // 2) % len(FACTS)]
            good, bad, key = f"The answer is {g}.", f"The answer is {b}.", g
        hi, lo = rng.choice([8, 9, 10]), rng.choice([1, 2, 3])
        first_good = rng.random() < 0.5
        a1, a2 = (good, bad) if first_good else (bad, good)
        s1, s2 = (hi, lo) if first_good else (lo, hi)
        win, lose = ("1", "2") if first_good else ("2", "1")
        text = (f"The correct answer is {key}. Assistant {win} gives {key}, which is correct. "
                f"Assistant {lose} gives a wrong answer. So Assistant {win} is better.\n"
                f"</think><answer>{s1}</answer><answer>{s2}</answer>")
        rows.append({"prompt": build_prompt(q, a1, a2), "text": text})
    return rows


# ---------------------------------------------------------------- every flex task's format
def format_row(spec, rng: random.Random) -> dict:
    """One text-only training row for the flex task `spec` (a flex_tasks.protocol.TaskSpec)."""
    from flex_models.render import render
    from flex_tasks import benchmarks
    from flex_tasks.prompts import user_parts

    doc, media, why, answer = benchmarks.of(spec).demo_example(rng, spec)
    parts, it = [], iter(media)
    for kind, text in user_parts(spec, doc):
        parts.append({"type": "text", "text": text if kind == "text" else f"({next(it)})"})
    if next(it, None) is not None:
        raise ValueError(f"{spec.task}: more media descriptions than placeholders in the template")
    messages = [{"role": "system", "content": [{"type": "text", "text": spec.system}]},
                {"role": "user", "content": parts}]
    prompt = render(messages, "vl", assistant_prefix=ASSISTANT_PREFIX).prompt
    return {"task": spec.task, "prompt": prompt, "text": f"{why}\n</think>{answer}"}


def make_format_rows(per_task: int = 12, seed: int = 0) -> list[dict]:
    """`per_task` rows for every flex task, interleaved task by task; the same seed gives the same rows."""
    from flex_tasks import benchmarks

    rng = random.Random(seed)
    blocks = [[format_row(spec, rng) for _ in range(per_task)] for spec in benchmarks.demo_tasks()]
    return [block[i] for i in range(per_task) for block in blocks]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"wrote {len(rows)} rows to {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.make_demo_data", description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("all", "formats", "teacher"), default="all")
    p.add_argument("--per-task", type=int, default=12, help="rows per flex task in demo_formats.jsonl")
    p.add_argument("--n", type=int, default=48, help="rows in demo_train.jsonl (teacher format)")
    args = p.parse_args(argv)
    if args.set in ("all", "formats"):
        _write(FORMATS_OUT, make_format_rows(args.per_task))
    if args.set in ("all", "teacher"):
        _write(OUT, make_rows(args.n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
