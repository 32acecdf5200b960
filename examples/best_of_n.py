"""Best-of-N selection and DPO preference pairs with a Flex-Judge checkpoint.

    python examples/best_of_n.py --model jongwooko/Flex-VL-7B \
        --input examples/data/candidates.jsonl --out runs/best_of_n [--mode score|rank] [--backend vllm|hf]

Input: one JSON object per line: {"id", "question", "images": [paths, relative to the input
file], "candidates": [text, ...]}. Every candidate is judged in one engine batch:
  --mode score  each candidate gets an MLLM-as-a-Judge score (1-5); best = highest parsed score;
  --mode rank   all candidates of a row are ranked at once (MLLM-as-a-Judge batch protocol).
Output (--out): best_of_n.jsonl (the chosen candidate, all scores, parse status, the judge's
reasoning) and dpo_pairs.jsonl ({"prompt", "images", "chosen", "rejected"} = best vs worst, or
best vs every worse candidate with --all-pairs). Rows whose judgements did not parse (or tie)
give no pair: they are counted, never guessed.
"""
from __future__ import annotations

import argparse
import json
import string
import sys
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = [k for k in ("question", "candidates") if k not in row]
        if missing or len(row.get("candidates") or []) < 2:
            raise ValueError(f"{path}:{n}: need 'question' and at least two 'candidates' (missing {missing})")
        row.setdefault("id", str(n))
        row["images"] = [str((path.parent / p).resolve()) for p in row.get("images", [])]
        rows.append(row)
    return rows


def scores_from_ranking(ranking: str | None, n: int) -> list[float | None]:
    """'BCA' over 3 candidates -> [1, 3, 2] (higher = better); None when the ranking is not
    a full permutation of the candidates."""
    letters = string.ascii_uppercase[:n]
    if not ranking or sorted(ranking) != sorted(letters):
        return [None] * n
    return [float(n - ranking.index(c)) for c in letters]


def select(row: dict, scores: list[float | None], all_pairs: bool = False) -> tuple[dict, list[dict]]:
    """(best-of-N record, DPO pairs) for one row from per-candidate scores (None = unparsed)."""
    valid = [(s, i) for i, s in enumerate(scores) if s is not None]
    best = max(valid, key=lambda t: (t[0], -t[1]))[1] if valid else None
    rec = {"id": row["id"], "question": row["question"], "scores": scores, "best_index": best,
           "best": row["candidates"][best] if best is not None else None, "n_parsed": len(valid)}
    pairs = []
    if best is not None:
        worse = sorted((t for t in valid if t[0] < scores[best]), key=lambda t: t[0])
        for s, i in worse if all_pairs else worse[:1]:
            pairs.append({"id": row["id"], "prompt": row["question"], "images": row["images"],
                          "chosen": row["candidates"][best], "rejected": row["candidates"][i],
                          "chosen_score": scores[best], "rejected_score": s})
    return rec, pairs


def judge_rows(judge, rows: list[dict], mode: str) -> list[tuple[list, list]]:
    """Per row: (scores per candidate, verdicts), all rows in one engine batch."""
    if mode == "score":
        reqs = [judge.score_request(r["question"], c, r["images"]) for r in rows for c in r["candidates"]]
    else:
        reqs = [judge.rank_request(r["question"], r["candidates"], r["images"]) for r in rows]
    verdicts = judge.run(reqs)
    out, pos = [], 0
    for r in rows:
        if mode == "score":
            vs = verdicts[pos: pos + len(r["candidates"])]
            pos += len(r["candidates"])
            out.append(([v.score for v in vs], vs))
        else:
            v = verdicts[pos]
            pos += 1
            out.append((scores_from_ranking(v.ranking, len(r["candidates"])), [v]))
    return out


def run(judge, rows: list[dict], out: Path, mode: str = "score", all_pairs: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    n_pairs = n_best = 0
    with open(out / "best_of_n.jsonl", "w") as fb, open(out / "dpo_pairs.jsonl", "w") as fp:
        for row, (scores, verdicts) in zip(rows, judge_rows(judge, rows, mode)):
            rec, pairs = select(row, scores, all_pairs)
            rec["judgements"] = [{"ok": v.ok, "how": v.how, "value": v.value, "reasoning": v.reasoning, "text": v.text}
                                 for v in verdicts]
            n_best += rec["best_index"] is not None
            fb.write(json.dumps(rec, ensure_ascii=False) + "\n")
            for p in pairs:
                fp.write(json.dumps(p, ensure_ascii=False) + "\n")
            n_pairs += len(pairs)
    return {"rows": len(rows), "with_best": n_best, "pairs": n_pairs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Flex-Judge checkpoint (hub id or folder)")
    p.add_argument("--input", default=str(Path(__file__).with_name("data") / "candidates.jsonl"))
    p.add_argument("--out", default="runs/best_of_n")
    p.add_argument("--mode", choices=("score", "rank"), default="score")
    p.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    p.add_argument("--max-new-tokens", type=int, default=None, help="cap the judge's output (default: protocol's)")
    p.add_argument("--all-pairs", action="store_true", help="pair the best with every worse candidate")
    a = p.parse_args(argv)
    from flex_judge.judging.api import Judge

    rows = read_rows(Path(a.input))
    gen = {"max_new_tokens": a.max_new_tokens} if a.max_new_tokens else None
    judge = Judge.from_pretrained(a.model, backend=a.backend, gen_kwargs=gen)
    stats = run(judge, rows, Path(a.out), a.mode, a.all_pairs)
    print(f"{stats['rows']} rows, {stats['with_best']} with a best candidate, {stats['pairs']} DPO pairs -> {a.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
