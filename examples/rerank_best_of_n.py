"""Best-of-N reranking of a model's outputs with `flex-judge judge` (repo-only example).

    python examples/rerank_best_of_n.py --model jongwooko/Flex-VL-7B \
        --input examples/data/candidates.jsonl --out runs/rerank [--mode score|batch] [-- <more flex-judge judge flags>]

Input: one JSON object per line: {"id", "question", "images": [paths relative to the input],
"candidates": [text, ...]} (a model's N sampled answers). Three steps, each inspectable:
  1. items.jsonl   one `flex-judge judge` row per candidate (--mode score: MLLM-as-a-Judge 1-5
                   score, mean of the protocol's 3 samples) or per question (--mode batch: all
                   candidates ranked at once, mean scores over samples);
  2. judged.jsonl  `flex-judge judge items.jsonl --out judged.jsonl` (resumable: rerun to finish);
  3. best_of_n.jsonl  per question the best candidate, every candidate's score, and how many
                   judgements parsed. A question none of whose candidates got a parsed score has
                   no best (counted, never guessed).
"""
from __future__ import annotations

import argparse
import json
import os
import string
import subprocess
import sys
from pathlib import Path


def read_candidates(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row.get("candidates"), list) or len(row["candidates"]) < 2 or "question" not in row:
                raise ValueError(f"{path}:{n}: need 'question' and at least two 'candidates'")
            row.setdefault("id", f"line-{n}")
            row["images"] = [str((path.parent / p).resolve()) for p in row.get("images", [])]
            rows.append(row)
    return rows


def to_items(rows: list[dict], mode: str) -> list[dict]:
    """`flex-judge judge` rows (absolute media paths, so the items file may live anywhere)."""
    if mode == "batch":
        return [{"id": r["id"], "mode": "batch", "question": r["question"], "responses": r["candidates"],
                 "images": r["images"]} for r in rows]
    return [{"id": f"{r['id']}#{i}", "mode": "score", "question": r["question"], "response": c, "images": r["images"]}
            for r in rows for i, c in enumerate(r["candidates"])]


def pick(rows: list[dict], judged: list[dict], mode: str) -> list[dict]:
    """Best candidate per question from the judged records (higher score / earlier rank = better;
    ties go to the earlier candidate)."""
    by_id = {r["id"]: r for r in judged}
    out = []
    for r in rows:
        n = len(r["candidates"])
        if mode == "batch":
            ranking = (by_id.get(r["id"]) or {}).get("verdict")
            scores = [float(n - ranking.index(c)) for c in string.ascii_uppercase[:n]] if ranking else [None] * n
        else:
            scores = [(by_id.get(f"{r['id']}#{i}") or {}).get("verdict") for i in range(n)]
        valid = [(s, -i) for i, s in enumerate(scores) if s is not None]
        best = -max(valid)[1] if valid else None
        out.append({"id": r["id"], "question": r["question"], "scores": scores, "n_scored": len(valid),
                    "best_index": best, "best": r["candidates"][best] if best is not None else None})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Flex-Judge checkpoint (hub id or folder)")
    p.add_argument("--input", type=Path, default=Path(__file__).with_name("data") / "candidates.jsonl")
    p.add_argument("--out", type=Path, default=Path("runs/rerank"))
    p.add_argument("--mode", choices=("score", "batch"), default="score")
    a = p.parse_args(argv)
    rows = read_candidates(a.input)
    a.out.mkdir(parents=True, exist_ok=True)
    items, judged = a.out / "items.jsonl", a.out / "judged.jsonl"
    write_jsonl(items, to_items(rows, a.mode))
    cmd = [sys.executable, "-m", "flex_judge.cli", "judge", str(items), "--model", a.model, "--out", str(judged),
           "--media-root", str(a.input.parent.resolve()), *extra]  # the items name the input's images
    rc = subprocess.call(cmd, env=os.environ.copy())
    if rc != 0:
        return rc
    best = pick(rows, [json.loads(x) for x in judged.read_text().splitlines()], a.mode)
    write_jsonl(a.out / "best_of_n.jsonl", best)
    print(f"{len(best)} questions, {sum(b['best'] is not None for b in best)} with a best candidate "
          f"-> {a.out / 'best_of_n.jsonl'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
