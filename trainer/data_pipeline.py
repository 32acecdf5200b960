"""Teacher traces -> train.jsonl (protocols.json `training_teacher_pairwise`).

    python -m trainer.data_pipeline generate --teacher MODEL --input judgelm.jsonl --out traces.jsonl
    python -m trainer.data_pipeline filter --input traces.jsonl --out train.jsonl --max-rows 1000

generate: every JudgeLM-style row {question_body, answer1_body, answer2_body, score: [s1, s2]}
          (gold pair also read from 'gold' or 'score1'/'score2') is rendered with the protocol's
          system prompt / user template + '<think>\\n' and sampled once per seed (13, 79) with
          temperature 0.1, top_p 0.95, max_tokens 4096 through vLLM. Outputs are appended to
          --out as they finish, one line per (row, seed), each with the generation settings it was
          made with. A rerun first cuts a partial last line (a crash mid-write), then skips every
          (row, seed) already there; it refuses an --out made with other settings or another input.
filter:   keeps a trace only if its two <answer>N</answer> integers equal the gold pair, keeps
          the longest kept trace per prompt, caps the count, and reports counts per reason.
          Lines that are not JSON trace objects are reported as file:line (an error, or
          --bad-lines skip).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from flex_models import jsonl
from flex_models.errors import FlexJudgeError
from flex_models.jsonl import Appender, cut_partial_last_line
from flex_tasks.parsing import answer_spans

INTEGER = re.compile(r"-?\d+")


class PipelineError(FlexJudgeError, ValueError):
    """Bad input or output file of the data pipeline; the message names file:line."""


def teacher_protocol() -> dict:
    from flex_tasks.protocol import protocols

    return protocols()["training_teacher_pairwise"]


def build_prompt(question: str, answer1: str, answer2: str, proto: dict | None = None) -> str:
    """Chat-templated system + user, ending in 'assistant\\n<think>\\n' (the train `prompt`)."""
    proto = proto or teacher_protocol()
    from flex_models.render import render

    user = proto["user"].format(question=question, answer1=answer1, answer2=answer2)
    messages = [{"role": "system", "content": proto["system"]}, {"role": "user", "content": user}]
    return render(messages, "vl", proto["assistant_prefix"]).prompt  # text only: the same for both families


def gold_pair(row: dict) -> list[int] | None:
    for key in ("score", "gold", "scores"):
        v = row.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return [int(round(float(x))) for x in v]
    if "score1" in row and "score2" in row:
        return [int(round(float(row["score1"]))), int(round(float(row["score2"])))]
    return None


def parse_pair(text: str) -> list[int] | None:
    """The first two integer ``<answer>`` spans (the project's one splitter, flex_tasks.parsing)."""
    found = [int(x) for x in (span.strip() for span in answer_spans(text)) if INTEGER.fullmatch(x)]
    return found[:2] if len(found) >= 2 else None


# ---------------------------------------------------------------- generate
INPUT_FIELDS = ("question_body", "answer1_body", "answer2_body")


def read_objects(path: str, need: tuple[str, ...], bad_lines: str = "error") -> list[tuple[int, dict]]:
    """(line, row) of a jsonl whose rows must be objects with string fields `need`; bad lines
    are reported as file:line: why (an error, or with bad_lines='skip' a report on stderr)."""
    good, bad = [], []
    for ln in jsonl.read(path, whole_file=True):
        line, row = ln.line, ln.value
        if not ln.ok:  # not UTF-8, not JSON
            bad.append((line, ln.error))
        elif not isinstance(row, dict):
            bad.append((line, "not a JSON object"))
        else:
            missing = [k for k in need if not isinstance(row.get(k), str)]
            if missing:
                bad.append((line, f"missing or non-string field '{missing[0]}'"))
            else:
                good.append((line, row))
    if bad:
        report = "\n".join(f"  {path}:{line}: {why}" for line, why in bad[:20])
        more = f"\n  ... {len(bad) - 20} more" if len(bad) > 20 else ""
        if bad_lines != "skip":
            raise PipelineError(f"{len(bad)} bad line(s) in {path}:\n{report}{more}")
        print(f"[data] skipping {len(bad)} bad line(s) in {path}:\n{report}{more}", file=sys.stderr)
    return good


def generation_settings(args, proto: dict) -> dict:
    """What determines a trace besides its row and seed; part of the resume key."""
    samp = proto["sampling"]
    template = json.dumps([proto["system"], proto["user"], proto["assistant_prefix"]])
    return {"teacher": args.teacher, "temperature": samp["temperature"], "top_p": samp["top_p"],
            "max_tokens": args.max_tokens or samp["max_tokens"],
            "template_sha256": hashlib.sha256(template.encode()).hexdigest()[:16]}


def finished_pairs(out: Path, settings: dict, prompts: dict[int, str]) -> set[tuple[int, int]]:
    """(row, seed) pairs already in `out`; refuses lines made with other settings or another input."""
    done = set()
    for line, r in read_objects(str(out), ("prompt", "text")):
        at = f"{out}:{line}"
        if not isinstance(r.get("row"), int) or not isinstance(r.get("seed"), int):
            raise PipelineError(f"{at}: no integer 'row' and 'seed' (not a trace written by generate)")
        old = r.get("settings")
        if old != settings:
            if not isinstance(old, dict):
                raise PipelineError(f"{at}: no generation settings recorded (an older trace file); write to a new --out")
            diff = ", ".join(f"{k} {old.get(k)!r} there, {settings.get(k)!r} now"
                             for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k))
            raise PipelineError(f"{at}: generated with other settings ({diff}); traces of different settings are "
                                "not mixed: write to a new --out")
        if r["row"] in prompts and r["prompt"] != prompts[r["row"]]:
            raise PipelineError(f"{at}: row {r['row']}'s prompt differs from --input row {r['row']} (the input "
                                "changed since this file was written); write to a new --out")
        done.add((r["row"], r["seed"]))
    return done


def teacher_env(environ, cpu: bool) -> dict | None:
    """The environment the teacher's vLLM engine needs, or None when `environ` already is it: on CPU,
    vLLM's fast single-process defaults (flex_models' CPU_ENV) where `environ` does not set them.
    vLLM reads them from the process environment, so they reach it through a child process's env
    (this module writes no os.environ)."""
    if not cpu:
        return None
    from flex_models.backends.vllm_backend import CPU_ENV

    missing = {k: v for k, v in CPU_ENV.items() if k not in environ}
    return {**environ, **missing} if missing else None


def teacher_engine(teacher: str, engine_args: dict):
    """vllm.LLM for the teacher; on CPU with the flex model's fast single-process defaults."""
    from flex_models.backends.vllm_backend import CPU_KV_CACHE_BYTES, on_cpu

    kw = dict(engine_args)
    if on_cpu():
        kw.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        kw.setdefault("enable_chunked_prefill", False)  # seeded sampling on CPU needs whole-prompt prefill
        kw.setdefault("enforce_eager", True)  # no torch.compile warm-up on CPU
    from flex_models.extras import require

    return require("vllm", "`flex-judge data generate` (teacher traces)").LLM(model=teacher, **kw)


def generate(args, argv: list[str] | None = None) -> int:
    """`argv`: this command's arguments, to run it again in a child with the engine's env (teacher_env)."""
    proto = teacher_protocol()
    samp = proto["sampling"]
    lines = read_objects(args.input, INPUT_FIELDS)
    if args.limit:
        lines = lines[:args.limit]
    rows, golds = [r for _, r in lines], []
    for line, r in lines:
        try:
            golds.append(gold_pair(r))
        except (TypeError, ValueError) as e:
            raise PipelineError(f"{args.input}:{line}: unreadable gold scores ({e})") from None
    prompts = {i: build_prompt(r["question_body"], r["answer1_body"], r["answer2_body"], proto)
               for i, r in enumerate(rows)}
    settings = generation_settings(args, proto)
    try:
        engine_args = json.loads(args.engine_args)
    except json.JSONDecodeError as e:
        raise PipelineError(f"--engine-args: not JSON ({e})") from None
    out = Path(args.out)
    done = set()
    if out.exists():
        cut = cut_partial_last_line(out)
        if cut:
            print(f"[generate] cut a partial last line ({cut} bytes) from {out}: an interrupted write; "
                  "it is generated again", file=sys.stderr)
        done = finished_pairs(out, settings, prompts)
    seeds = args.seeds or samp["seeds"]
    todo = [(i, s) for i in range(len(rows)) for s in seeds if (i, s) not in done]
    print(f"[generate] {len(rows)} rows x {len(seeds)} seeds; {len(done)} done, {len(todo)} to go", file=sys.stderr)
    if not todo:
        return 0
    from flex_models.backends.vllm_backend import on_cpu

    env = teacher_env(os.environ, on_cpu()) if argv is not None else None
    if env is not None:
        added = ", ".join(f"{k}={env[k]}" for k in sorted(set(env) - set(os.environ)))
        print(f"[generate] running the teacher in a child process with {added}", file=sys.stderr, flush=True)
        return subprocess.call([sys.executable, "-m", "trainer.data_pipeline", *argv], env=env)
    from flex_models.extras import require

    SamplingParams = require("vllm", "`flex-judge data generate` (teacher traces)").SamplingParams

    llm = teacher_engine(args.teacher, engine_args)
    with Appender(out, repair=False) as f:  # the partial last line was cut above (and reported)
        for start in range(0, len(todo), args.chunk):
            part = todo[start:start + args.chunk]
            params = [SamplingParams(temperature=settings["temperature"], top_p=settings["top_p"],
                                     max_tokens=settings["max_tokens"], seed=s) for _, s in part]
            outs = llm.generate([prompts[i] for i, _ in part], params, use_tqdm=False)
            f.write(*({"row": i, "seed": s, "prompt": prompts[i], "text": o.outputs[0].text,
                       "n_tokens": len(o.outputs[0].token_ids), "gold": golds[i], "settings": settings}
                      for (i, s), o in zip(part, outs)))  # one write + flush per chunk
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
    traces = [r for _, r in read_objects(args.input, ("prompt", "text"), args.bad_lines)]
    rows, why = filter_traces(traces, args.max_rows)
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(jsonl.dumps(r) + "\n" for r in rows)
    report = dict(why)
    print(json.dumps(report, indent=1))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1))
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; a required option says so instead."""

    def _get_help_string(self, action):
        if action.required:
            return f"{action.help} (required)"
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    proto = teacher_protocol()
    samp = proto["sampling"]
    p = argparse.ArgumentParser(prog="flex-judge data", description=__doc__.split("\n")[0],
                                formatter_class=_HelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{generate,filter}")
    g = sub.add_parser("generate", help="sample teacher traces with vLLM (resumable)", formatter_class=_HelpFormatter,
                       description="Sample teacher traces with vLLM, appended to --out as they finish; a rerun "
                       f"skips finished (row, seed) pairs. Sampling: temperature {samp['temperature']}, top_p "
                       f"{samp['top_p']} (protocols.json training_teacher_pairwise).")
    g.add_argument("--teacher", required=True, help="teacher model (paper: JudgeLRM-7B)")
    g.add_argument("--input", required=True, help="JudgeLM-style jsonl")
    g.add_argument("--out", required=True, help="traces jsonl (appended)")
    g.add_argument("--seeds", type=int, nargs="*", default=list(samp["seeds"]),
                   help="one trace per row and seed (the protocol's seeds)")
    g.add_argument("--limit", type=int, default=0, help="first N rows only; 0 = all")
    g.add_argument("--max-tokens", type=int, default=samp["max_tokens"], help="output budget per trace (the protocol's)")
    g.add_argument("--chunk", type=int, default=256, help="requests per vLLM call (output is flushed per chunk)")
    g.add_argument("--engine-args", default="{}", help='JSON kwargs for vllm.LLM, e.g. \'{"tensor_parallel_size": 2}\'')
    f = sub.add_parser("filter", help="keep traces that agree with the gold scores -> train.jsonl",
                       formatter_class=_HelpFormatter,
                       description="Keep traces whose two <answer>N</answer> integers equal the gold pair, the "
                       "longest per prompt, at most --max-rows; print the counts per reason.")
    f.add_argument("--input", required=True, help="traces jsonl written by generate")
    f.add_argument("--out", required=True, help="train jsonl {prompt, text} (overwritten)")
    f.add_argument("--max-rows", type=int, default=1000, help="keep at most this many traces")
    f.add_argument("--report", help="also write the counts per reason as JSON here (default: not written)")
    f.add_argument("--bad-lines", choices=("error", "skip"), default="error",
                   help="lines that are not trace objects: stop with file:line (error) or skip and report them")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return generate(args, argv) if args.cmd == "generate" else filter_cmd(args)
    except (PipelineError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
