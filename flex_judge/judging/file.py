"""`flex-judge judge`: judge your own JSONL file with a Flex-Judge checkpoint, no code.

    flex-judge judge items.jsonl --model jongwooko/Flex-VL-7B --out judged.jsonl [--samples 3] [--both-orders]
    flex-judge judge serve jongwooko/Flex-VL-7B --port 8000      (the judge server: flex_judge.serving, docs/serving.md)

One JSON object per line (media paths relative to the file's folder; `mode` is inferred):
  pair   {"id", "question", "response_a", "response_b", "images": [...], "gold": "A"|"B"|"tie"}
  score  {"id", "question", "response", "images"|"videos"|"audios": [...], "gold": 4}
  batch  {"id", "question", "responses": [...], "gold": "BCA"}
Prompts, sampling and parsing are the paper's protocol for the mode (flex_judge.judging.items), or
a --template file. Every finished item is appended to --out as it is produced. A rerun reuses a
record only when the same model (checkpoint fingerprint, backend, model args, max new tokens), the
same settings and the same row content produced it; the rest is judged again (a partial last line
is cut). Rows that cannot be judged are reported with their line and skipped: bad JSON or UTF-8,
media outside the input's folder, and rows over the per-row limits (prompt vs context, pixels,
audio seconds, video frames, checked before tokenizing or decoding). The summary (agreement with
`gold`, parse failures, position consistency, judgments/s, what was reused) goes to
<out>.summary.json and, as exactly one JSON line, to stdout; logs go to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from flex_judge.judging.api import COMPARE_TASKS, SCORE_TASKS
from flex_judge.judging.items import (
    DEFAULT_PROTOCOL,
    MEDIA_KEYS,
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
from flex_models import jsonl
from flex_models.args import HelpFormatter, parse_kv
from flex_models.confine import OutsideRoot, confine

MAX_LINE_BYTES = 64 * 2**20  # a line longer than this is refused before it is decoded or parsed
# model_args that do not change what the judge answers (kept out of the resume fingerprint)
_NOT_OUTPUT_ARGS = frozenset({"journal", "gpu_memory_utilization", "kv_cache_memory_bytes"})
# prompts are counted a chunk at a time and the count stops past the context: BPE on one long "word"
# (20 MB of one letter is a single pre-token) grows faster than linearly, so chunks stay small
TOKEN_CHUNK_CHARS = 2**16


@dataclass
class Item:
    line: int
    id: str
    mode: str
    row: dict
    media: list
    gold: object
    n_responses: int
    digest: str = ""  # the row's content and its media files' content (the resume fingerprint's row part)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def row_digest(row: dict, media: list) -> str:
    from flex_models.journal import file_digest

    return _digest({"row": row, "media": [file_digest(Path(m)) for m in media]})


def _confine_media(row: dict, folder: Path, root: Path) -> None:
    """Every media path of the row must resolve inside ``root`` (flex_models.confine)."""
    for key in MEDIA_KEYS:
        v = row.get(key) or []
        for p in [v] if isinstance(v, str) else v if isinstance(v, list) else []:
            if isinstance(p, str):
                try:
                    confine(p, root, base=folder)
                except OutsideRoot as e:
                    raise RowError(f"{key[:-1]} path {p!r} lies outside the allowed root {e.root}"
                                   + (f" (it resolves to {e.resolved})" if e.resolved is not None else "")
                                   + "; media must stay inside the input file's folder, or pass --media-root") from None


def read_items(path: Path, default_mode: str, media_root: Optional[Path] = None,
               max_line_bytes: int = MAX_LINE_BYTES) -> tuple[list[Item], list[dict]]:
    """(items, bad rows [{"line", "id", "error"}]); every line is accounted for. A line that is not
    UTF-8, too long or not JSON costs that line only. Media paths must resolve inside ``media_root``
    (default: the file's folder)."""
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    root = Path(media_root) if media_root is not None else path.parent
    items, bad, seen = [], [], {}
    for ln in jsonl.read(path, max_line_bytes=max_line_bytes, whole_file=True):
        n, row = ln.line, ln.value
        if not ln.ok:
            bad.append({"line": n, "id": None, "error": ln.error})
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
            _confine_media(row, path.parent, root)
            media = row_media(row, path.parent)
            items.append(Item(n, row_id, mode, row, media, parse_gold(mode, row.get("gold"), len(responses)),
                              len(responses), row_digest(row, media)))
        except RowError as e:
            bad.append({"line": n, "id": row_id, "error": str(e)})
    return items, bad


# ------------------------------------------------------------------ resume
def mode_settings(settings: Settings, mode: str) -> dict:
    """The judging settings that shape a ``mode`` row's record: samples, orders (not for scores,
    which are asked in one order), the mode's protocol and the template when it applies to the mode."""
    t = settings.template
    return {"samples": settings.samples, "both_orders": settings.both_orders and mode != "score",
            "protocol": settings.protocols[mode], "template": t.digest() if t and t.mode in (None, mode) else None}


def run_fingerprint(settings: Settings, model: dict, mode: str) -> str:
    """What a reused ``mode`` record must have been produced with: the mode's judging settings
    (:func:`mode_settings`) and the model (checkpoint fingerprint, backend, model args,
    max_new_tokens; or the server)."""
    return _digest({"settings": mode_settings(settings, mode), "model": model})


def model_identity(pretrained: Optional[str], server: Optional[str], backend: str, model_args: dict,
                   max_new_tokens: Optional[int]) -> dict:
    """The model part of the resume fingerprint; reads the checkpoint's files (no weights load)."""
    if server:
        return {"server": server.rstrip("/"), "max_new_tokens": max_new_tokens}
    from flex_models.family import load_checkpoint
    from flex_models.journal import checkpoint_fingerprint

    ck = load_checkpoint(pretrained)
    return {"checkpoint": checkpoint_fingerprint(ck.local_dir), "backend": backend,
            "model_args": {k: str(v) for k, v in sorted(model_args.items()) if k not in _NOT_OUTPUT_ARGS},
            "max_new_tokens": max_new_tokens}


def read_done(out: Path) -> dict[str, tuple[int, dict]]:
    """The records of an earlier run: id -> (line, record), the last one of an id winning. A partial
    last line is ignored (and cut when the run appends); a line that is not a judge record is an
    error, so a wrong --out is never rewritten."""
    if not out.exists():
        return {}
    done = {}
    for ln in jsonl.read(out):
        if ln.partial:
            continue
        rec = ln.value
        if not ln.ok or not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or "samples" not in rec:
            why = ln.error or "not a judge record"
            raise ValueError(f"{out} line {ln.line}: {why}; move the file or pick another --out")
        done[rec["id"]] = (ln.line, rec)
    return done


def why_not_reused(rec: dict, item: Optional[Item], settings: Settings, model: dict) -> Optional[str]:
    """None when ``rec`` is what this run would produce for ``item``, else the reason."""
    if item is None:
        return "row removed"
    fp = rec.get("fingerprint")
    if not isinstance(fp, dict):
        return "no fingerprint (older output)"
    if rec.get("model") != model:
        return "model changed"
    if rec.get("mode") != item.mode or fp.get("run") != run_fingerprint(settings, model, item.mode):
        return "settings changed"
    if fp.get("row") != item.digest:
        return "row changed"
    return None


def plan_resume(out: Path, items: list[Item], settings: Settings, model: dict):
    """(reused records id -> record, reasons {why: count} for records not reused, [stale records])."""
    by_id = {it.id: it for it in items}
    reused, reasons, stale = {}, {}, []
    for rid, (_, rec) in read_done(out).items():
        why = why_not_reused(rec, by_id.get(rid), settings, model)
        if why is None:
            reused[rid] = rec
        else:
            reasons[why] = reasons.get(why, 0) + 1
            stale.append(rec)
    return reused, reasons, stale


def _rewrite(out: Path, keep: list[dict], stale: list[dict]) -> Path:
    """Keep only the reused records in ``out`` (atomically); the others go to <out stem>.replaced.jsonl."""
    replaced = out.with_name(out.stem + ".replaced.jsonl")
    with jsonl.Appender(replaced, fsync=True) as f:
        f.write(*stale)
    tmp = out.with_name(out.name + ".tmp")
    tmp.unlink(missing_ok=True)
    with jsonl.Appender(tmp, fsync=True) as f:
        f.write(*keep)
    os.replace(tmp, out)
    return replaced


# ------------------------------------------------------------------ per-row limits
@dataclass
class Limits:
    """Per-row limits, checked before a row is tokenized or its media decoded. None: no limit."""
    context_tokens: Optional[int] = None  # the model's context (max_model_len, else the config's)
    tokenizer: Any = None  # counts prompt tokens (a chunk at a time, stopping past the context)
    max_token_bytes: Optional[int] = None  # the longest vocabulary entry in bytes: the cheap bound
    max_pixels: Optional[int] = 64_000_000  # width x height of one image, read from its header
    max_audio_s: Optional[float] = 600.0  # one audio file's duration, from its header
    max_video_frames: Optional[int] = 54_000  # one video's frames (30 min at 30 fps), from its header

    @classmethod
    def for_checkpoint(cls, pretrained: str, model_args: dict, **kw) -> "Limits":
        from transformers import AutoTokenizer

        from flex_models.family import load_checkpoint

        ck = load_checkpoint(pretrained)
        ctx = model_args.get("max_model_len")
        ctx = int(ctx) if ctx not in (None, "", "None") else context_of(ck.config)
        try:
            tok = AutoTokenizer.from_pretrained(str(ck.local_dir))
        except Exception as e:  # noqa: BLE001 - the engine will say what is wrong with the checkpoint
            print(f"flex-judge judge: no tokenizer for the per-row prompt limit ({type(e).__name__}: {e}); "
                  "prompts are bounded by the engine only", file=sys.stderr)
            return cls(context_tokens=None, **kw)
        longest = max((len(t.encode("utf-8")) for t in tok.get_vocab()), default=1)
        # vocabulary strings are at least as long in UTF-8 as the bytes they stand for (byte-level BPE
        # maps a byte to a 1- or 2-byte character, sentencepiece's '▁' is 3 bytes for one space), so
        # text of B bytes has at least B / longest tokens
        return cls(context_tokens=ctx, tokenizer=tok, max_token_bytes=max(longest, 1), **kw)


def context_of(config: dict) -> Optional[int]:
    """max_position_embeddings of the text model (top level, text_config or the Omni thinker's)."""
    for c in (config, config.get("text_config") or {}, (config.get("thinker_config") or {}).get("text_config") or {}):
        if isinstance(c, dict) and c.get("max_position_embeddings"):
            return int(c["max_position_embeddings"])
    return None


def prompt_texts(item: Item, settings: Settings) -> list[str]:
    """The row's texts that go into every prompt: question and responses (or the template's fields)."""
    row, responses = item.row, row_responses(item.row, item.mode)
    t = settings.template
    if t is None or t.mode not in (None, item.mode):
        return [row.get("question", "") if isinstance(row.get("question"), str) else "", *responses]
    names = {f for _, f, _, _ in string.Formatter().parse(t.user) if f}
    out = []
    for name in names:
        if name in ("response", "response_a", "response_b", "responses"):
            out += responses if name == "responses" else [responses[0]] if name in ("response", "response_a") else responses[1:2]
        elif isinstance(row.get(name), str):
            out.append(row[name])
    return out


def _count_tokens(tok, texts: list[str], stop: int) -> int:
    """A lower bound of the prompt tokens ``texts`` make: counted a chunk at a time (a token may
    merge across a cut: -1 per cut), stopping as soon as the bound reaches ``stop``."""
    n = 0
    for text in texts:
        for i in range(0, len(text), TOKEN_CHUNK_CHARS):
            n += len(tok(text[i: i + TOKEN_CHUNK_CHARS], add_special_tokens=False)["input_ids"]) - 1
            if n >= stop:
                return n
        n += 1
    return max(n, 0)


def _media_limit(key: str, path: str, lim: Limits) -> Optional[str]:
    """Why one media file is over the limits (read from its header), or None."""
    try:
        if key == "images" and lim.max_pixels:
            from PIL import Image

            try:
                with Image.open(path) as im:
                    w, h = im.size
            except Image.DecompressionBombError as e:
                return f"image {path}: {e}"
            if w * h > lim.max_pixels:
                return f"image {path} is {w}x{h} = {w * h} pixels, over the limit of {lim.max_pixels} (--max-pixels)"
        elif key == "audios" and lim.max_audio_s:
            import soundfile as sf

            info = sf.info(path)
            secs = info.frames / info.samplerate if info.samplerate else math.inf
            if secs > lim.max_audio_s:
                return (f"audio {path} lasts {secs:.0f} s ({info.frames} samples at {info.samplerate} Hz), over the "
                        f"limit of {lim.max_audio_s:g} s (--max-audio-seconds)")
        elif key == "videos" and lim.max_video_frames:
            import av

            with av.open(path) as c:
                st = c.streams.video[0]
                frames = st.frames or (float(st.duration * st.time_base) * float(st.average_rate or 0)
                                       if st.duration and st.time_base else (c.duration or 0) / 1e6 * float(st.average_rate or 0))
            if frames > lim.max_video_frames:
                return f"video {path} has {int(frames)} frames, over the limit of {lim.max_video_frames} (--max-video-frames)"
    except Exception:  # noqa: BLE001 - an unreadable header: the decoder reports the file with its error
        return None
    return None


def over_limits(item: Item, settings: Settings, lim: Limits) -> Optional[str]:
    """Why ``item`` cannot be judged within ``lim``, or None. The prompt is bounded by bytes first
    (no tokenizer), then counted with the tokenizer; media by their headers (nothing decoded)."""
    if lim.context_tokens:
        texts = prompt_texts(item, settings)
        n_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
        at_least = math.ceil(n_bytes / lim.max_token_bytes) if lim.max_token_bytes else 0
        if at_least >= lim.context_tokens:
            return (f"prompt of {n_bytes} bytes is at least {at_least} tokens, more than the model's context of "
                    f"{lim.context_tokens} tokens (model_args max_model_len)")
        if lim.tokenizer is not None:
            n = _count_tokens(lim.tokenizer, texts, lim.context_tokens)
            if n >= lim.context_tokens:
                return (f"prompt of at least {n} tokens does not fit the model's context of {lim.context_tokens} "
                        "tokens (model_args max_model_len)")
    media = iter(item.media)  # row_media's order: the images, then the videos, then the audios
    for key in MEDIA_KEYS:
        v = item.row.get(key) or []
        for _ in [v] if isinstance(v, str) else v:
            why = _media_limit(key, next(media), lim)
            if why:
                return why
    return None


# ------------------------------------------------------------------ judging
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


def _report(path: Path, bad: list[dict]) -> None:
    for b in bad:
        print(f"flex-judge judge: {path} line {b['line']}: {b['error']} (skipped)", file=sys.stderr)


def judge_file(judge, path: Path, out: Path, settings: Settings, mode: str = "auto", batch_size: int = 32,
               progress: bool = True, model: Optional[dict] = None, limits=None,
               media_root: Optional[Path] = None) -> dict:
    """Judge every row of ``path`` that ``out`` has no reusable record of; returns the summary (also
    written next to ``out``). A record is reused only when the same model (``model``: see
    :func:`model_identity`), settings and row content produced it. ``judge`` and ``limits`` may be
    zero-argument callables: they are called only when a row is left to judge, so an empty or
    fully resumed file never builds the engine."""
    from tqdm import tqdm

    path, out = Path(path), Path(out)
    if path.resolve() == out.resolve():
        raise ValueError(f"--out {out} is the input file")
    model = model if model is not None else {}
    items, bad = read_items(path, mode, media_root)
    n_read_bad = len(bad)
    reused, reasons, stale = plan_resume(out, items, settings, model)
    _report(path, bad)
    if stale:
        replaced = _rewrite(out, [r for r in reused.values()], stale)
        print(f"flex-judge judge: {len(stale)} records of {out} are judged again "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))}); the old ones moved to {replaced}",
              file=sys.stderr)
    todo = [it for it in items if it.id not in reused]
    if todo and callable(limits):
        limits = limits()
    if todo and limits is not None:
        keep = []
        for it in todo:
            why = over_limits(it, settings, limits)
            if why:
                bad.append({"line": it.line, "id": it.id, "error": why})
                _report(path, bad[-1:])
            else:
                keep.append(it)
        todo = keep
    n_bad0, judgments, engine_s, t0 = len(bad), 0, 0.0, time.perf_counter()
    records = list(reused.values())
    if todo and callable(judge) and not hasattr(judge, "run"):
        judge = judge()
    with jsonl.Appender(out, fsync=True) as f, \
            tqdm(total=len(todo), desc="flex-judge judge", unit="item", disable=not progress or not todo) as bar:
        if f.cut:
            print(f"flex-judge judge: cut a partial last line from {out}", file=sys.stderr)
        for i in range(0, len(todo), batch_size):
            chunk = todo[i: i + batch_size]
            t1 = time.perf_counter()
            results = _judge_chunk(judge, settings, chunk, bad)
            engine_s += time.perf_counter() - t1
            recs = []
            for it, rec in results:
                rec["model"] = model
                rec["fingerprint"] = {"run": run_fingerprint(settings, model, it.mode), "row": it.digest}
                recs.append(rec)
                judgments += rec["n_samples"]
            f.write(*recs)  # one write, flushed and fsynced per batch
            records += recs
            bar.update(len(chunk))
    _report(path, bad[n_bad0:])
    wall = time.perf_counter() - t0
    n_rejudged = sum(reasons.get(k, 0) for k in reasons if k != "row removed")
    summary = {"input": str(path), "output": str(out), "rows": len(items) + n_read_bad,
               "judged_now": len(records) - len(reused), "resumed": len(reused),
               "resume": {"reused": len(reused), "rejudged": {k: v for k, v in sorted(reasons.items()) if k != "row removed"},
                          "dropped": reasons.get("row removed", 0), "n_rejudged": n_rejudged},
               "skipped_bad_rows": len(bad), "bad_rows": sorted(bad, key=lambda b: b["line"]),
               "modes": summarize(sorted(records, key=lambda r: r["line"])),
               "speed": {"judgments": judgments, "wall_s": round(wall, 3), "engine_s": round(engine_s, 3),
                         "judgments_per_s": round(judgments / engine_s, 3) if engine_s and judgments else None},
               "settings": settings.fingerprint(), "model": model}
    summary_path(out).write_text(json.dumps(jsonl.finite(summary), indent=2, ensure_ascii=False) + "\n")
    return summary


def summary_path(out: Path) -> Path:
    return out.with_name(out.stem + ".summary.json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flex-judge judge", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("input", type=Path, help="JSONL file of items to judge")
    p.add_argument("--out", type=Path, help="output JSONL (default: <input>.judged.jsonl); reruns resume it")
    g = p.add_argument_group("protocol")
    g.add_argument("--mode", choices=("auto", *MODES), default="auto", help="item mode (auto: from each row's fields)")
    for mode, allowed in (("pair", COMPARE_TASKS), ("score", SCORE_TASKS)):  # the benchmark registry's
        default = DEFAULT_PROTOCOL[mode].removeprefix("flex_")
        others = [t.removeprefix("flex_") for t in allowed if t != DEFAULT_PROTOCOL[mode]]
        g.add_argument(f"--{mode}-protocol", default=default, help=" | ".join([f"{default} (default)", *others]))
    g.add_argument("--template", type=Path, help="JSON/YAML {system, user[, mode]} replacing the protocol prompt (default: the protocol's)")
    g.add_argument("--samples", type=int, help="samples per item (default: the protocol's runs, 3); "
                                               "pair: sign majority, score: mean, batch: mean scores")
    g.add_argument("--both-orders", action="store_true", help="also judge with the responses reversed (position-bias check)")
    e = p.add_argument_group("engine")
    e.add_argument("--model", help="Flex-Judge checkpoint (hub id or folder); required unless --server")
    e.add_argument("--server", help="judge on a running `flex-judge judge serve` at this URL instead of loading a model (default: unset, --model)")
    e.add_argument("--api-key", help="the server's key (default: env FLEX_JUDGE_API_KEY)")
    e.add_argument("--concurrency", type=int, default=64, help="--server: requests in flight at once")
    e.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto", help="inference engine (auto: vLLM where installed)")
    e.add_argument("--model-args", help="more `flex` model_args, e.g. dtype=bfloat16,max_model_len=8192 (default: none; docs/model.md)")
    e.add_argument("--max-new-tokens", type=int, help="cap the judge's output (default: the protocol's 4096)")
    e.add_argument("--batch-size", type=int, default=64, help="items per engine call (and per output flush)")
    lim = p.add_argument_group("per-row limits (a row over one is reported by line and skipped)")
    lim.add_argument("--media-root", type=Path, help="media paths must resolve inside this folder "
                                                     "(default: the input file's folder)")
    lim.add_argument("--max-pixels", type=int, default=Limits.max_pixels, help="pixels of one image, from its header (default: %(default)s)")
    lim.add_argument("--max-audio-seconds", type=float, default=Limits.max_audio_s, help="seconds of one audio file, from its header (default: %(default)s)")
    lim.add_argument("--max-video-frames", type=int, default=Limits.max_video_frames, help="frames of one video, from its container (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true")
    return p


@contextlib.contextmanager
def stdout_to_stderr():
    """Everything written to stdout inside, by Python code (sys.stdout) or by this process's and its
    children's file descriptor 1 (vLLM's engine process), goes to stderr; stdout is kept for the
    one summary line."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded): the Python-level redirect alone
        saved = None
    if saved is not None:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            with contextlib.suppress(Exception):
                sys.__stdout__.flush()  # what was buffered for fd 1 meanwhile goes to stderr too
            os.dup2(saved, 1)
            os.close(saved)


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
    with stdout_to_stderr():
        rc, s = _run(a)
    if s is not None:  # exactly one line on stdout: the summary
        print(jsonl.dumps({k: s[k] for k in ("modes", "resume", "skipped_bad_rows", "speed")}), flush=True)
    return rc


def _run(a) -> tuple[int, Optional[dict]]:
    from flex_models.family import CheckpointError

    out = a.out or a.input.with_suffix(".judged.jsonl")
    try:
        settings = Settings(samples=a.samples, both_orders=a.both_orders,
                            protocols={"pair": protocol_for("pair", a.pair_protocol),
                                       "score": protocol_for("score", a.score_protocol),
                                       "batch": protocol_for("batch", DEFAULT_PROTOCOL["batch"])},
                            template=Template.load(a.template) if a.template else None)
        model_args = parse_kv(a.model_args, "--model-args")
        items, _ = read_items(a.input, a.mode, a.media_root)  # fail on a missing input before any weights load
        read_done(out)  # a wrong --out is refused before any weights load
        # the model part of the fingerprint: only when there is a row (an empty file needs no checkpoint)
        model = (model_identity(a.model, a.server, a.backend, model_args, a.max_new_tokens) if items else {})
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"flex-judge judge: {e}", file=sys.stderr)
        return 2, None
    if a.max_new_tokens:
        model_args["max_new_tokens"] = a.max_new_tokens
    media_limits = dict(max_pixels=a.max_pixels, max_audio_s=a.max_audio_seconds, max_video_frames=a.max_video_frames)

    def make_judge():
        from flex_judge.judging.api import Judge

        if a.server:
            from flex_judge.serving.client import RemoteModel

            return Judge(RemoteModel(a.server, a.api_key, concurrency=a.concurrency, max_new_tokens=a.max_new_tokens))
        # vLLM's engine process is spawned, never forked: a fork after anything in this process touched
        # CUDA fails ("Cannot re-initialize CUDA in forked subprocess"; H200, 2026-11-29). Its logs go
        # to stderr (stdout is the summary's). This is the CLI edge: the env is the engine's setting.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
        return Judge.from_pretrained(a.model, backend=a.backend, **model_args)

    def make_limits():  # the server checks the prompt against its own model; media are checked here
        return Limits(**media_limits) if a.server else Limits.for_checkpoint(a.model, model_args, **media_limits)

    s = judge_file(make_judge, a.input, out, settings, a.mode, a.batch_size, progress=not a.no_progress,
                   model=model, limits=make_limits, media_root=a.media_root)
    sp, r = s["speed"], s["resume"]
    print(f"flex-judge judge: {s['judged_now']} items judged now ({sp['judgments']} judgments in {sp['engine_s']} s: "
          f"{sp['judgments_per_s']} judgments/s), {r['reused']} reused, {r['n_rejudged']} judged again "
          f"({', '.join(f'{k}: {v}' for k, v in r['rejudged'].items()) or 'none'}), "
          f"{s['skipped_bad_rows']} bad rows skipped -> {out}, {summary_path(out)}", file=sys.stderr)
    return 0, s


if __name__ == "__main__":
    raise SystemExit(main())
