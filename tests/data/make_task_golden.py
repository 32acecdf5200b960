"""Write tests/data/task_golden.json: what every flex task does, on the bundled fixtures.

    FLEX_JUDGE_DATA=fixtures python tests/data/make_task_golden.py            # (re)write
    FLEX_JUDGE_DATA=fixtures python tests/data/make_task_golden.py --check    # exit 1 on a difference

The golden was first written by the code BEFORE the benchmark registry refactor (issue 22
item 1, commit 41b7205 of main): tests/test_task_golden.py compares today's code with it byte
for byte, so moving a benchmark's facts into its module cannot change what a task renders,
parses or scores. Per task: its TaskSpec, generated YAML, every doc (item x run, order swaps),
the rendered chat messages (media as size + digest), the simple-mode text, the target; then
fixed model outputs (seeded, one per doc, a mix of well-formed answers and fallbacks, all
inside every protocol's scale) through make_record and the benchmark's report; and the
cross-task tables the CLI, API, compare and leaderboard read (groups, leaderboard sections,
API verbs and aliases, judge-file defaults, compare's task kinds). A full 14-task lmms-eval
fixture run takes minutes on a 2-core machine; these are the same hooks it calls, in seconds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("task_golden.json")
# The 14 tasks of the paper the golden was written for (benchmarks added later are not in it).
TASKS_OF_GOLDEN = ("flex_vl_rewardbench", "flex_mj_bench_alignment", "flex_mj_bench_safety", "flex_mj_bench_quality",
                   "flex_genai_bench_image", "flex_genai_bench_editing", "flex_genai_bench_video",
                   "flex_mllm_judge_score", "flex_mllm_judge_pair", "flex_mllm_judge_batch",
                   "flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim")
GROUPS_OF_GOLDEN = ("flex_mllm_judge", "flex_mj_bench", "flex_genai_bench", "flex_vision", "flex_audio", "flex_all")
SECTIONS_OF_GOLDEN = ("mllm_as_a_judge_avg", "vl_rewardbench", "mj_bench", "genai_bench", "audio_lcc_srcc")
ITERS = 200  # bootstrap resamples: enough to pin the CI code path, fast on 2 cores
# The TaskSpec fields the golden holds: those of the code that wrote it (fields added later, such
# as `scale`, are new behaviour with tests of their own).
SPEC_FIELDS = ("task", "bench", "variant", "system", "user", "temperature", "top_p", "max_tokens", "runs", "order",
               "parser", "parser_default", "headline", "extra_metrics", "env", "hub", "image_size", "video", "stop",
               "include_stop_str_in_output", "multi_run", "group", "modality", "limit_mm", "report_kwargs")


def _digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def _media(v):
    import numpy as np

    if isinstance(v, dict) and "array" in v:
        a = np.asarray(v["array"])
        return {"audio": list(a.shape), "dtype": str(a.dtype), "sr": v["sampling_rate"],
                "source_sr": v.get("source_sampling_rate"), "sha": _digest(a.tobytes())}
    if isinstance(v, str):
        p = Path(v)
        return {"path": str(p.relative_to(ROOT)) if p.is_absolute() else v}
    return {"image": list(v.size), "mode": v.mode, "sha": _digest(v.tobytes())}


def _jsonable(v):
    """Plain JSON; NaN/inf as strings, tuples as lists, media described."""
    if isinstance(v, float):
        return repr(v) if not math.isfinite(v) else v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, str):  # paths inside the checkout, wherever it is
        return v.replace(str(ROOT), "<ROOT>")
    if v is None or isinstance(v, (bool, int)):
        return v
    if hasattr(v, "item") and not hasattr(v, "size"):  # numpy scalar
        return _jsonable(v.item())
    if hasattr(v, "tolist") and not hasattr(v, "mode"):
        return _jsonable(v.tolist())
    return _media(v)


def _messages(msgs):
    out = []
    for m in msgs:
        content = []
        for part in m["content"]:
            if part["type"] == "text":
                content.append(_jsonable(part))
            else:
                content.append({"type": part["type"], **_media(part["url"])})
        out.append({"role": m["role"], "content": content})
    return out


def well_formed(rng, spec, doc) -> str:
    """An answer in the task's own format (values 1-5)."""
    tags = lambda vals: "".join(f"<answer>{v}</answer>" for v in vals)  # noqa: E731
    if spec.parser == "genai_vote":
        return "<think>t</think>" + tags([rng.choice(["[[A>B]]", "[[A<B]]", "[[B>A]]", "[[A=B=Good]]", "[[A=B=Bad]]"])])
    if spec.parser == "mllm_batch":
        return "<think>t</think>" + tags(rng.sample(range(1, 6), min(5, len(doc["answers"]))))
    if spec.parser in ("vlrb_better", "mj_pref", "mllm_pair"):
        return "<think>t</think>" + tags([rng.randint(1, 5), rng.randint(1, 5)])
    if spec.parser == "mllm_score":
        return "<think>t</think>" + tags([rng.randint(1, 5)])
    return "<think>t</think>" + tags([round(rng.uniform(1.0, 5.0), 1)])


def fixed_output(spec, doc, i: int) -> str:
    """A deterministic judge output for doc ``i`` of the task: mostly the task's own answer
    format, else every kind of answer a parser may meet, so each task sees parsed and
    fallback outputs. Values stay within 1-5 (inside every protocol's scale)."""
    rng = random.Random(f"{spec.task}:{i}")
    if rng.random() < 0.6:
        return well_formed(rng, spec, doc)
    a, b, c = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)
    x = round(rng.uniform(1.0, 5.0), 1)
    pool = [
        f"<think>reason {i}</think><answer>{a}</answer><answer>{b}</answer>",
        f"<think>reason {i}</think><answer>{a}</answer><answer>{b}</answer><answer>{c}</answer>",
        f"<answer>{a}</answer>",
        f"<think>r</think><answer>{x}</answer>",
        f"<answer>{rng.choice(['[[A>B]]', '[[A<B]]', '[[B>A]]', '[[A=B=Good]]', '[[A=B=Bad]]'])}</answer>",
        f"The score is {x}.",
        f"I would say {a} out of five",
        "no verdict here",
        "",
    ]
    return rng.choice(pool)


def task_golden(spec) -> dict:
    from flex_tasks import benchmarks, lmms
    from flex_tasks.data import load_items
    from yaml_tasks.generate import task_yaml

    _, items = load_items(spec)
    docs = lmms.expand(spec, items)
    out = {"spec": _jsonable({f: getattr(spec, f) for f in SPEC_FIELDS}), "yaml": task_yaml(spec),
           "metric_names": _jsonable(spec.metric_names()), "generation_kwargs": spec.generation_kwargs(),
           "docs": []}
    records = []
    for i, doc in enumerate(docs):
        shown = {k: v for k, v in doc.items() if k != "media"}
        text = fixed_output(spec, doc, i)
        rec = lmms.make_record(spec, doc, text)
        records.append(rec.as_dict())
        res = lmms.process_results(doc, [text])
        out["docs"].append({
            "doc": _jsonable(shown),
            "media_refs": _jsonable([_media(m) if isinstance(m, str) and Path(m).is_absolute() else m
                                     for m in doc["media"]]),
            "messages": _messages(lmms.doc_to_messages(doc)),
            "text": lmms.doc_to_text(doc), "target": lmms.doc_to_target(doc),
            "output": text, "record": _jsonable(rec.as_dict()),
            "results_keys": list(res)})
    rep = benchmarks.of(spec).report(spec, records, iters=ITERS, seed=1234)
    out["report"] = _jsonable(rep)
    return out


def tables() -> dict:
    from flex_judge.analysis import compare, leaderboard
    from flex_judge.judging import api, items
    from flex_tasks.protocol import GROUP_AGGREGATES, GROUPS

    TASKS = golden_tasks()
    verbs = {"compare": api.COMPARE_TASKS, "compare_media": api.COMPARE_MEDIA_TASKS, "score": api.SCORE_TASKS,
             "rank": api.RANK_TASKS}
    aliases = {}
    for name in [t for t in TASKS] + [t.removeprefix("flex_") for t in TASKS] + ["mllm_score", "mllm_pair",
                                                                                "mllm_batch", "nope"]:
        for verb, allowed in verbs.items():
            try:
                aliases[f"{verb}:{name}"] = api.task_name(name, allowed)
            except api.JudgeInputError as e:
                aliases[f"{verb}:{name}"] = f"error: {e}"
    return {
        "tasks": list(TASKS), "groups": {g: GROUPS[g] for g in GROUPS if g in GROUPS_OF_GOLDEN}, "group_aggregates": _jsonable(dict(GROUP_AGGREGATES)),
        "sections": [_jsonable(dataclasses.asdict(s)) for s in leaderboard.SECTIONS if s.key in SECTIONS_OF_GOLDEN],
        "api_verbs": _jsonable(verbs), "api_aliases": aliases,
        "judge_defaults": items.DEFAULT_PROTOCOL,
        "judge_protocol_for": {f"{m}:{n}": _try(items.protocol_for, m, n)
                               for m in items.MODES for n in list(TASKS) + ["vl_rewardbench", "nisqa", "bvcc", "somos"]},
        "compare_kinds": {t: compare.task_kind(t) for t in TASKS},
    }


def _try(fn, *a):
    try:
        return fn(*a)
    except Exception as e:  # the error text is part of the behaviour
        return f"error: {type(e).__name__}: {e}"


def api_requests() -> dict:
    """The API's requests for text-only inputs (no checkpoint: request building only)."""
    from flex_judge.judging.api import Judge

    j = Judge(model=None)
    out = {}
    for proto in ("vl_rewardbench", "mllm_judge_pair"):
        r = j.compare_request("Q?", "resp a", "resp b", protocol=proto, run=1)
        out[f"compare:{proto}"] = {"task": r.spec.task, "doc": r.doc, "messages": _messages(r.messages)}
    for proto in ("mllm_score", "nisqa", "bvcc", "somos"):
        r = j.score_request("Q?", "resp", protocol=proto)
        out[f"score:{proto}"] = {"task": r.spec.task, "doc": r.doc, "messages": _messages(r.messages)}
    r = j.rank_request("Q?", ["x", "y", "z"], run=2)
    out["rank"] = {"task": r.spec.task, "doc": r.doc, "messages": _messages(r.messages)}
    return _jsonable(out)


def golden_tasks() -> dict:
    from flex_tasks.protocol import TASKS

    return {t: spec for t, spec in TASKS.items() if t in TASKS_OF_GOLDEN}


def build() -> str:
    TASKS = golden_tasks()
    golden = {"tasks": {t: task_golden(spec) for t, spec in TASKS.items()}, "tables": tables(),
              "api_requests": api_requests()}
    return json.dumps(golden, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv=None) -> int:
    import os

    argv = sys.argv[1:] if argv is None else argv
    # the script is a CLI edge: the protocol's run counts, the bundled fixtures
    os.environ["FLEX_JUDGE_DATA"] = "fixtures"
    for name in ("FLEX_JUDGE_RUNS", "FLEX_JUDGE_BOOTSTRAP_ITERS"):
        os.environ.pop(name, None)
    text = build()
    if "--check" in argv:
        same = GOLDEN.read_text() == text
        print("same" if same else f"differs from {GOLDEN}")
        return 0 if same else 1
    GOLDEN.write_text(text)
    print(f"wrote {GOLDEN} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
