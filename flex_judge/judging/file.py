"""`flex-judge judge`: judge your own JSONL file with a Flex-Judge checkpoint, no code.

    flex-judge judge items.jsonl --model jongwooko/Flex-VL-7B --out judged.jsonl [--samples 3] [--both-orders]
    flex-judge judge serve jongwooko/Flex-VL-7B --port 8000      (the judge server: flex_judge.serving, docs/serving.md)

One JSON object per line (media paths relative to the file's folder; `mode` is inferred):
  pair   {"id", "question", "response_a", "response_b", "images": [...], "gold": "A"|"B"|"tie"}
  score  {"id", "question", "response", "images"|"videos"|"audios": [...], "gold": 4}
  batch  {"id", "question", "responses": [...], "gold": "BCA"}
Prompts, sampling and parsing are the paper's protocol for the mode (flex_judge.judging.items), or
a --template file. Every finished item is appended to --out as it is produced, so a rerun skips
finished items (a partial last line is cut). Rows that cannot be judged are reported with their
line and skipped. The summary (agreement with `gold`, parse failures, position consistency,
judgments/s) goes to <out>.summary.json and, as one JSON line, to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flex_judge.judging.api import COMPARE_TASKS, SCORE_TASKS
from flex_judge.judging.items import (
    DEFAULT_PROTOCOL,
    MODES,
    RowError,
    Settings,
    Template,
    item_requests,
    parse_gold,
    protocol_for,
    record,
    row_media,
    row_mode,
    row_responses,
    summarize,
)
from flex_models.args import parse_kv
from flex_models.journal import cut_partial_last_line


@dataclass
class Item:
    line: int
    id: str
    mode: str
    row: dict
    media: list
    gold: object
    n_responses: int


def read_items(path: Path, default_mode: str) -> tuple[list[Item], list[dict]]:
    """(items, bad rows [{"line", "id", "error"}]); every line is accounted for."""
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    items, bad, seen = [], [], {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            bad.append({"line": n, "id": None, "error": f"invalid JSON ({e})"})
            continue
        if not isinstance(row, dict):
            bad.append({"line": n, "id": None, "error": f"expected a JSON object, got {type(row).__name__}"})
            continue
        row_id = str(row.get("id", f"line-{n}"))
        try:
            if row_id in seen:
                raise RowError(f"duplicate id {row_id!r} (first on line {seen[row_id]})")
            seen[row_id] = n
            mode = row_mode(row, default_mode)
            responses = row_responses(row, mode)
            items.append(Item(n, row_id, mode, row, row_media(row, path.parent),
                              parse_gold(mode, row.get("gold"), len(responses)), len(responses)))
        except RowError as e:
            bad.append({"line": n, "id": row_id, "error": str(e)})
    return items, bad


def load_done(out: Path, settings: Settings) -> dict[str, dict]:
    """Finished records of an earlier run (id -> record). A partial last line (an interrupted
    write) is cut off; records written with other settings are an error, not a silent mix."""
    if not out.exists():
        return {}
    if cut_partial_last_line(out):
        print(f"flex-judge judge: cut a partial last line from {out}", file=sys.stderr)
    data = out.read_bytes()
    done, want = {}, settings.fingerprint()
    for n, raw in enumerate(data.decode().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{out} line {n}: not a judge record ({e}); move the file or pick another --out") from None
        if rec.get("settings") != want:
            diff = sorted(k for k in want if (rec.get("settings") or {}).get(k) != want[k])
            raise ValueError(f"{out} line {n} was judged with other settings ({', '.join(diff)}: "
                             f"{ {k: (rec.get('settings') or {}).get(k) for k in diff} }); rerun with the same "
                             f"settings to resume, or pick another --out")
        done[rec["id"]] = rec
    return done


def _judge_chunk(judge, settings: Settings, chunk: list[Item], bad: list[dict]):
    """[(item, record)] for one engine batch. Per-item failures (media, rendering) are isolated
    by rerunning the items one by one, so one bad row never costs the others."""
    plan = []
    for it in chunk:
        try:
            plan.append((it, item_requests(judge, settings, it.mode, it.row, it.media)))
        except RowError as e:
            bad.append({"line": it.line, "id": it.id, "error": str(e)})
    reqs = [r for _, rs in plan for _, r in rs]
    try:
        verdicts = judge.run(reqs) if reqs else []
    except Exception as e:  # noqa: BLE001 - find the row(s) that caused it
        if len(plan) == 1:
            bad.append({"line": plan[0][0].line, "id": plan[0][0].id, "error": f"{type(e).__name__}: {e}"})
            return []
        out = []
        for it, _ in plan:
            out += _judge_chunk(judge, settings, [it], bad)
        return out
    out, pos = [], 0
    for it, rs in plan:
        vs = verdicts[pos: pos + len(rs)]
        pos += len(rs)
        samples = [(rev, v) for (rev, _), v in zip(rs, vs)]
        out.append((it, record(it.mode, it.id, it.line, it.gold, samples, settings, it.n_responses)))
    return out


def judge_file(judge, path: Path, out: Path, settings: Settings, mode: str = "auto", batch_size: int = 32,
               progress: bool = True) -> dict:
    """Judge every row of ``path`` not yet in ``out``; returns the summary (also written next to ``out``)."""
    from tqdm import tqdm

    path, out = Path(path), Path(out)
    if path.resolve() == out.resolve():
        raise ValueError(f"--out {out} is the input file")
    items, bad = read_items(path, mode)
    done = load_done(out, settings)
    todo = [it for it in items if it.id not in done]
    for b in bad:
        print(f"flex-judge judge: {path} line {b['line']}: {b['error']} (skipped)", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_bad0, judgments, engine_s, t0 = len(bad), 0, 0.0, time.perf_counter()
    records = list(done.values())
    with open(out, "a") as f, tqdm(total=len(todo), desc="flex-judge judge", unit="item", disable=not progress) as bar:
        for i in range(0, len(todo), batch_size):
            chunk = todo[i: i + batch_size]
            t1 = time.perf_counter()
            results = _judge_chunk(judge, settings, chunk, bad)
            engine_s += time.perf_counter() - t1
            for _, rec in results:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                judgments += rec["n_samples"]
                records.append(rec)
            f.flush()
            bar.update(len(chunk))
    for b in bad[n_bad0:]:
        print(f"flex-judge judge: {path} line {b['line']}: {b['error']} (skipped)", file=sys.stderr)
    wall = time.perf_counter() - t0
    summary = {"input": str(path), "output": str(out), "rows": len(items) + n_bad0, "judged_now": len(records) - len(done),
               "resumed": len(done), "skipped_bad_rows": len(bad), "bad_rows": sorted(bad, key=lambda b: b["line"]),
               "modes": summarize(sorted(records, key=lambda r: r["line"])),
               "speed": {"judgments": judgments, "wall_s": round(wall, 3), "engine_s": round(engine_s, 3),
                         "judgments_per_s": round(judgments / engine_s, 3) if engine_s else None},
               "settings": settings.fingerprint()}
    summary_path(out).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def summary_path(out: Path) -> Path:
    return out.with_name(out.stem + ".summary.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flex-judge judge", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("input", type=Path, help="JSONL file of items to judge")
    p.add_argument("--out", type=Path, help="output JSONL (default: <input>.judged.jsonl); reruns resume it")
    g = p.add_argument_group("protocol")
    g.add_argument("--mode", choices=("auto", *MODES), default="auto", help="item mode (auto: from each row's fields)")
    for mode, allowed in (("pair", COMPARE_TASKS), ("score", SCORE_TASKS)):  # the benchmark registry's
        default = DEFAULT_PROTOCOL[mode].removeprefix("flex_")
        others = [t.removeprefix("flex_") for t in allowed if t != DEFAULT_PROTOCOL[mode]]
        g.add_argument(f"--{mode}-protocol", default=default, help=" | ".join([f"{default} (default)", *others]))
    g.add_argument("--template", type=Path, help="JSON/YAML {system, user[, mode]} replacing the protocol prompt")
    g.add_argument("--samples", type=int, help="samples per item (default: the protocol's runs, 3); "
                                               "pair: sign majority, score: mean, batch: mean scores")
    g.add_argument("--both-orders", action="store_true", help="also judge with the responses reversed (position-bias check)")
    e = p.add_argument_group("engine")
    e.add_argument("--model", help="Flex-Judge checkpoint (hub id or folder); or --server")
    e.add_argument("--server", help="judge on a running `flex-judge judge serve` at this URL instead of loading a model")
    e.add_argument("--api-key", help="the server's key (default: env FLEX_JUDGE_API_KEY)")
    e.add_argument("--concurrency", type=int, default=64, help="--server: requests in flight at once")
    e.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto")
    e.add_argument("--model-args", help="more `flex` model_args, e.g. dtype=bfloat16,max_model_len=8192")
    e.add_argument("--max-new-tokens", type=int, help="cap the judge's output (default: the protocol's 4096)")
    e.add_argument("--batch-size", type=int, default=64, help="items per engine call (and per output flush)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # `flex-judge judge serve CKPT ...`: the OpenAI-compatible judge server
        from flex_judge.serving.cli import main as serve

        return serve(argv[1:])
    a = build_parser().parse_args(argv)
    if a.samples is not None and a.samples < 1:
        raise SystemExit("flex-judge judge: --samples must be >= 1")
    if a.batch_size < 1:
        raise SystemExit("flex-judge judge: --batch-size must be >= 1")
    if bool(a.model) == bool(a.server):
        print("flex-judge judge: give one of --model CKPT (judge in this process) or --server URL", file=sys.stderr)
        return 2
    try:
        settings = Settings(samples=a.samples, both_orders=a.both_orders,
                            protocols={"pair": protocol_for("pair", a.pair_protocol),
                                       "score": protocol_for("score", a.score_protocol),
                                       "batch": protocol_for("batch", DEFAULT_PROTOCOL["batch"])},
                            template=Template.load(a.template) if a.template else None)
        model_args = parse_kv(a.model_args, "--model-args")
        read_items(a.input, a.mode)  # fail on a missing input before any weights load
        load_done(a.out or a.input.with_suffix(".judged.jsonl"), settings)
    except (ValueError, FileNotFoundError) as e:
        print(f"flex-judge judge: {e}", file=sys.stderr)
        return 2
    if a.max_new_tokens:
        model_args["max_new_tokens"] = a.max_new_tokens
    from flex_judge.judging.api import Judge

    if a.server:
        from flex_judge.serving.client import RemoteModel

        judge = Judge(RemoteModel(a.server, a.api_key, concurrency=a.concurrency, max_new_tokens=a.max_new_tokens))
    else:
        # vLLM's engine process is spawned, never forked: a fork after anything in this process touched
        # CUDA fails ("Cannot re-initialize CUDA in forked subprocess"; H200, 2026-11-29)
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        judge = Judge.from_pretrained(a.model, backend=a.backend, **model_args)
    out = a.out or a.input.with_suffix(".judged.jsonl")
    s = judge_file(judge, a.input, out, settings, a.mode, a.batch_size, progress=not a.no_progress)
    sp = s["speed"]
    print(f"flex-judge judge: {s['judged_now']} items judged now ({sp['judgments']} judgments in {sp['engine_s']} s: "
          f"{sp['judgments_per_s']} judgments/s), {s['resumed']} resumed, {s['skipped_bad_rows']} bad rows skipped "
          f"-> {out}, {summary_path(out)}", file=sys.stderr)
    print(json.dumps({k: s[k] for k in ("modes", "skipped_bad_rows", "speed")}))  # one line, last on stdout
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
