"""Teacher traces -> train.jsonl (protocols.json `training_teacher_pairwise`).

    python -m trainer.data_pipeline generate --teacher MODEL --input judgelm.jsonl --out traces.jsonl
    python -m trainer.data_pipeline filter --input traces.jsonl --out train.jsonl --max-rows 1000

generate: every JudgeLM-style row {question_body, answer1_body, answer2_body, score: [s1, s2]}
          (gold pair also read from 'gold' or 'score1'/'score2') is rendered with the protocol's
          system prompt / user template + '<think>\\n' and sampled once per seed (13, 79) with
          temperature 0.1, top_p 0.95, max_tokens 4096 through vLLM. Outputs are appended to
          --out as they finish, one line per (row, seed); a rerun skips what is there (resumable).
filter:   keeps a trace only if its two <answer>N</answer> integers equal the gold pair, keeps
          the longest kept trace per prompt, caps the count, and reports counts per reason.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

PROTOCOLS = Path(__file__).resolve().parents[1] / "flex_tasks" / "protocols.json"
ANSWER = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


def teacher_protocol() -> dict:
    return json.loads(PROTOCOLS.read_text())["training_teacher_pairwise"]


def build_prompt(question: str, answer1: str, answer2: str, proto: dict | None = None) -> str:
    """Chat-templated system + user, ending in 'assistant\\n<think>\\n' (the train `prompt`)."""
    proto = proto or teacher_protocol()
    user = proto["user"].format(question=question, answer1=answer1, answer2=answer2)
    return (f"<|im_start|>system\n{proto['system']}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            f"<|im_start|>assistant\n{proto['assistant_prefix']}")


def gold_pair(row: dict) -> list[int] | None:
    for key in ("score", "gold", "scores"):
        v = row.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return [int(round(float(x))) for x in v]
    if "score1" in row and "score2" in row:
        return [int(round(float(row["score1"]))), int(round(float(row["score2"])))]
    return None


def parse_pair(text: str) -> list[int] | None:
    found = ANSWER.findall(text)
    return [int(x) for x in found[:2]] if len(found) >= 2 else None


# ---------------------------------------------------------------- generate
def generate(args) -> int:
    proto = teacher_protocol()
    samp = proto["sampling"]
    rows = [json.loads(l) for l in open(args.input, encoding="utf-8") if l.strip()]
    if args.limit:
        rows = rows[:args.limit]
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in open(out, encoding="utf-8"):
            try:
                r = json.loads(line)
                done.add((r["row"], r["seed"]))
            except (json.JSONDecodeError, KeyError):
                pass  # a line cut off by a crash is regenerated
    seeds = args.seeds or samp["seeds"]
    todo = [(i, s) for i in range(len(rows)) for s in seeds if (i, s) not in done]
    print(f"[generate] {len(rows)} rows x {len(seeds)} seeds; {len(done)} done, {len(todo)} to go", file=sys.stderr)
    if not todo:
        return 0
    from flex_models.extras import require

    vllm = require("vllm", "`flex-judge data generate` (teacher traces)")
    LLM, SamplingParams = vllm.LLM, vllm.SamplingParams

    llm = LLM(model=args.teacher, **json.loads(args.engine_args))
    prompts = {i: build_prompt(rows[i]["question_body"], rows[i]["answer1_body"], rows[i]["answer2_body"], proto)
               for i, _ in todo}
    with open(out, "a", encoding="utf-8") as f:
        for start in range(0, len(todo), args.chunk):
            part = todo[start:start + args.chunk]
            params = [SamplingParams(temperature=samp["temperature"], top_p=samp["top_p"],
                                     max_tokens=args.max_tokens or samp["max_tokens"], seed=s) for _, s in part]
            outs = llm.generate([prompts[i] for i, _ in part], params, use_tqdm=False)
            for (i, s), o in zip(part, outs):
                f.write(json.dumps({"row": i, "seed": s, "prompt": prompts[i], "text": o.outputs[0].text,
                                    "n_tokens": len(o.outputs[0].token_ids), "gold": gold_pair(rows[i])}) + "\n")
            f.flush()
            print(f"[generate] {min(start + args.chunk, len(todo))}/{len(todo)}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- filter
def filter_traces(traces: list[dict], max_rows: int) -> tuple[list[dict], Counter]:
    """-> (train rows, counts per reason). Pure."""
    why, best = Counter(), {}
    for t in traces:
        why["traces"] += 1
        gold, pred = t.get("gold"), parse_pair(t.get("text", ""))
        if gold is None:
            why["dropped: no gold score pair"] += 1
        elif pred is None:
            why["dropped: fewer than two <answer>N</answer>"] += 1
        elif pred != list(gold):
            why["dropped: scores differ from gold"] += 1
        elif "</think>" not in t["text"]:
            why["dropped: no </think>"] += 1
        else:
            n = t.get("n_tokens", len(t["text"]))
            key = t["prompt"]
            if key in best:
                why["dropped: shorter trace of the same prompt"] += 1
                if n <= best[key][0]:
                    continue
            best[key] = (n, t)
    kept = [t for _, t in best.values()]
    kept.sort(key=lambda t: (t.get("row", 0), t.get("seed", 0)))
    if len(kept) > max_rows:
        why["dropped: over --max-rows cap"] += len(kept) - max_rows
        kept = kept[:max_rows]
    why["kept"] = len(kept)
    return [{"prompt": t["prompt"], "text": t["text"]} for t in kept], why


def filter_cmd(args) -> int:
    traces = [json.loads(l) for l in open(args.input, encoding="utf-8") if l.strip()]
    rows, why = filter_traces(traces, args.max_rows)
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    report = dict(why)
    print(json.dumps(report, indent=1))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.data_pipeline", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="sample teacher traces with vLLM (resumable)")
    g.add_argument("--teacher", required=True, help="teacher model (paper: JudgeLRM-7B)")
    g.add_argument("--input", required=True, help="JudgeLM-style jsonl")
    g.add_argument("--out", required=True, help="traces jsonl (appended)")
    g.add_argument("--seeds", type=int, nargs="*", help="default: the protocol's [13, 79]")
    g.add_argument("--limit", type=int, default=0, help="first N rows only")
    g.add_argument("--max-tokens", type=int, default=0, help="default: the protocol's 4096")
    g.add_argument("--chunk", type=int, default=256, help="requests per vLLM call (output is flushed per chunk)")
    g.add_argument("--engine-args", default="{}", help='JSON kwargs for vllm.LLM, e.g. \'{"tensor_parallel_size": 2}\'')
    f = sub.add_parser("filter", help="keep traces that agree with the gold scores -> train.jsonl")
    f.add_argument("--input", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--max-rows", type=int, default=1000)
    f.add_argument("--report", help="also write the counts per reason as JSON here")
    args = p.parse_args(argv)
    return generate(args) if args.cmd == "generate" else filter_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
