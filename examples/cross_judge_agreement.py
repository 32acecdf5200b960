"""Cross-judge agreement: Flex-Judge vs another judge on the same lmms-eval task (repo-only example).

    # the same task and evaluated model, scored by two judges (docs/judge.md):
    API_TYPE=flex   lmms-eval --model M --tasks llava_in_the_wild --log_samples --output_path runs/flex \
                    --launcher_args name=flex,model=jongwooko/Flex-VL-7B
    API_TYPE=openai lmms-eval --model M --tasks llava_in_the_wild --log_samples --output_path runs/gpt4o
    python examples/cross_judge_agreement.py runs/flex/*/*_samples_llava_in_the_wild.jsonl \
        runs/gpt4o/*/*_samples_llava_in_the_wild.jsonl --field gpt_eval_llava_all.scores --names flex,gpt-4o

Also takes two `flex-judge judge` outputs (records keyed by "id", --field verdict, the default).
Per item the judge's value is read at --field (dots go into nested objects):
  a number               -> compared as a score;
  a pair [s1, s2]        -> s2 - s1 (e.g. llava_in_the_wild: the model's answer vs the reference)
                            and the verdict sign(s2 - s1);
  a string (A/B/tie, a ranking) -> compared as a label.
Items where a judge failed (value missing, or [-1, -1], lmms-eval's failed-judge marker) are
counted per judge and left out. Output: a Markdown report (Pearson / Spearman of scores,
verdict agreement and Cohen's kappa, the largest disagreements).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Optional


def read(path: Path, field: str) -> dict[str, Any]:
    """item key -> raw value at ``field`` (None when absent)."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        key = rec.get("doc_id", rec.get("id"))
        if key is None:
            raise ValueError(f"{path}:{n}: neither 'doc_id' (lmms-eval samples) nor 'id' (flex-judge judge output)")
        v: Any = rec
        for part in field.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        out[str(key)] = v
    return out


def normalise(v) -> tuple[Optional[float], Optional[str]]:
    """(score, label) of one judge value; (None, None) = the judge failed on this item."""
    if isinstance(v, bool) or v is None:
        return None, None
    if isinstance(v, (int, float)):
        return (float(v), None) if math.isfinite(v) else (None, None)
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        if list(v) == [-1, -1]:
            return None, None
        d = float(v[1]) - float(v[0])
        return d, "second" if d > 0 else "first" if d < 0 else "tie"
    if isinstance(v, str):
        return None, v
    return None, None


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two label lists (scikit-learn's; NaN when undefined: no items, or both
    judges give one and the same label throughout)."""
    import warnings

    from sklearn.metrics import cohen_kappa_score

    if not a:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the undefined case is the NaN above, not a warning
        return float(cohen_kappa_score(a, b))


def compare(a: dict, b: dict) -> dict:
    from scipy import stats

    keys = sorted(set(a) & set(b), key=lambda k: (len(k), k))
    na = {k: normalise(a[k]) for k in keys}
    nb = {k: normalise(b[k]) for k in keys}
    both = [k for k in keys if na[k] != (None, None) and nb[k] != (None, None)]
    rep = {"common_items": len(keys), "compared": len(both),
           "failed_a": sum(na[k] == (None, None) for k in keys), "failed_b": sum(nb[k] == (None, None) for k in keys)}
    scored = [k for k in both if na[k][0] is not None and nb[k][0] is not None]
    if len(scored) > 1:
        x, y = [na[k][0] for k in scored], [nb[k][0] for k in scored]
        rep["pearson"] = float(stats.pearsonr(x, y)[0]) if len(set(x)) > 1 and len(set(y)) > 1 else float("nan")
        rep["spearman"] = float(stats.spearmanr(x, y)[0]) if len(set(x)) > 1 and len(set(y)) > 1 else float("nan")
        rep["mean_abs_diff"] = sum(abs(p - q) for p, q in zip(x, y)) / len(x)
    labelled = [k for k in both if na[k][1] is not None and nb[k][1] is not None]
    if labelled:
        la, lb = [na[k][1] for k in labelled], [nb[k][1] for k in labelled]
        rep["verdict_agreement"] = sum(p == q for p, q in zip(la, lb)) / len(la)
        rep["cohen_kappa"] = cohen_kappa(la, lb)
    gap = sorted(scored, key=lambda k: -abs(na[k][0] - nb[k][0]))
    rep["largest_disagreements"] = [{"item": k, "a": a[k], "b": b[k]} for k in gap[:5] if na[k][0] != nb[k][0]]
    if not scored:
        rep["label_disagreements"] = [{"item": k, "a": a[k], "b": b[k]} for k in labelled if na[k][1] != nb[k][1]][:5]
    return rep


def markdown(rep: dict, names: tuple[str, str], field: str) -> str:
    a, b = names
    counts = (f"Field `{field}`; {rep['common_items']} common items, {rep['compared']} compared "
              f"({a} failed on {rep['failed_a']}, {b} on {rep['failed_b']}).")
    lines = [f"# Cross-judge agreement: {a} vs {b}", "", counts, "", "| statistic | value |", "|---|---|"]
    for key in ("pearson", "spearman", "mean_abs_diff", "verdict_agreement", "cohen_kappa"):
        if key in rep:
            lines.append(f"| {key} | {rep[key]:.4f} |")
    dis = rep.get("largest_disagreements") or rep.get("label_disagreements") or []
    if dis:
        lines += ["", f"Largest disagreements ({a} / {b}):", ""]
        lines += [f"- item {d['item']}: {json.dumps(d['a'])} / {json.dumps(d['b'])}" for d in dis]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="judge A: lmms-eval samples JSONL or flex-judge judge output")
    p.add_argument("b", type=Path, help="judge B: the same kind of file, same task / items")
    p.add_argument("--field", default="verdict", help="dotted path to each item's judge value")
    p.add_argument("--names", default="A,B", help="two display names, comma-separated")
    p.add_argument("--out", type=Path, help="write the Markdown report here (and a .json beside it)")
    args = p.parse_args(argv)
    names = tuple(args.names.split(",", 1)) if "," in args.names else ("A", "B")
    rep = compare(read(args.a, args.field), read(args.b, args.field))
    text = markdown(rep, names, args.field)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rep, indent=2, default=str) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
