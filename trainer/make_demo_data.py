"""Write the bundled demo set trainer/data/demo_train.jsonl (deterministic, written by this project).

    python -m trainer.make_demo_data [--out trainer/data/demo_train.jsonl] [--n 48]

Each row is in the exact train format: `prompt` = the teacher protocol's system prompt + user
template, chat-templated, ending in 'assistant\\n<think>\\n'; `text` = a short reasoning trace,
'</think>', then the two scores as <answer>N</answer><answer>M</answer>. Questions are simple
arithmetic and facts, so which answer is right is unambiguous and the scores follow from it.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from trainer.data_pipeline import build_prompt

OUT = Path(__file__).resolve().parent / "data" / "demo_train.jsonl"
FACTS = [("What is the capital of France?", "Paris", "Lyon"), ("What is the capital of Japan?", "Tokyo", "Osaka"),
         ("What is the capital of Italy?", "Rome", "Milan"), ("What is the capital of Canada?", "Ottawa", "Toronto"),
         ("Which planet is closest to the Sun?", "Mercury", "Venus"), ("What gas do plants take in?", "Carbon dioxide", "Oxygen"),
         ("How many legs does a spider have?", "Eight", "Six"), ("What is the boiling point of water at sea level in Celsius?", "100 degrees", "90 degrees"),
         ("Who wrote Hamlet?", "William Shakespeare", "Charles Dickens"), ("What is the largest ocean?", "The Pacific Ocean", "The Indian Ocean")]


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.make_demo_data")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--n", type=int, default=48)
    args = p.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in make_rows(args.n))
    print(f"wrote {args.n} rows to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
