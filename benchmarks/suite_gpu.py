"""The paper's whole suite (`flex_all`) on one GPU: a suite-shaped judging workload for the `flex` model.

One command:

    python benchmarks/suite_gpu.py --mode gpu --scale 0.025 --out-json R.json --out-md R.md   # one H200
    python benchmarks/suite_gpu.py --mode cpu --out-json R.json                            # tiny models, CPU

Workload (SUITE below; every number says where it comes from): the 14 tasks of `flex_all` with their
item counts, the protocol's run counts and order swaps (flex_tasks.protocol / protocols.json), the
protocol's sampling settings and stop strings, media shapes per item (images per item and size,
video frames and size, audio seconds) and an output-length distribution per task (OUTPUT_LENGTHS).
Prompts are the protocol's system prompt and user template (flex_tasks.prompts) with synthetic text
of stated token lengths; images are random pixels (distinct per item, shared by the runs of an
item), audio random noise, video random frames. Weights are random (vLLM `load_format=dummy`) in
the released 7B shapes of each family: Flex-VL-7B (Qwen2.5-VL-7B) for the vision tasks, the
Flex-Omni-7B thinker (Qwen2.5-Omni-7B) for the audio tasks, as `flex_all` runs them.

One worker process per family (the GPU holds one engine at a time). In each, on one engine:
  - start-up: process launch -> `FlexJudge` ready, and `LLM()` alone inside it (`startup_minus_raw_init_s`)
  - `raw`: vLLM `LLM.generate` on flex's exact requests (prompts, decoded media, SamplingParams) in
    flex's submission order (flex_models.requests.share_order), one call over all the family's tasks
  - `flex`: `FlexJudge.generate_until` on lmms-eval Instances of the same docs (render, media, seeds,
    the engine loop), one call over all tasks, as lmms-eval hands a `flex_all` run to the model
  - `runmajor`: `LLM.generate` on the same requests in the upstream scripts' order, one call per run
    (all items of run 0, then of run 1, ...) with the caches emptied between runs (at full size a run
    of a large task outgrows the KV cache): the runs of an item not together, what sharing is worth
  prefix cache and multimodal cache are reset between passes; raw and flex alternate which goes
  first per family, so neither always meets the warmer engine, and with `--pairs 2` run twice in
  ABBA order (raw, flex, flex, raw), so a drift over the engine's life falls on both equally;
  `flex_over_raw` is then the ratio of the sums, `flex_over_raw_by_pair` each pair's own.
With `--warm-startup`, after each family: its start-up again on the now warm compile caches, flex's
and a bare vLLM script's (gpu/raw_startup.py), so the adapter's start-up cost is read in one session.
Per request, vLLM's `num_cached_tokens` gives the prefix-cache hits, and the prompt's media
placeholder spans tell which media items lay outside the cached prefix, i.e. needed the encoder.

Upstream way (the authors' scripts: one script per benchmark, each building its own engine and
calling `generate` once per run): estimated as (per benchmark) one process start + import + `LLM()`
(the start-up measured here) + that benchmark's share of the run-major pass (summary
"upstream_way.how" says what this over- and under-counts); with `--upstream-run` also run, after
each family's worker: every script a fresh process (`gpu/raw_startup.py --requests`) sending the raw
pass's own requests, one `generate` per task and run ("upstream_way.measured").

Scaled: `--scale` multiplies every item count (rounded, >= 2 items per task); the full-suite minutes
are the measured ones divided by the scale (request phase) plus start-up once per family.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

T_LAUNCH = time.time()
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "benchmarks" / "gpu"))  # steplog, hostprof, workers: the GPU benchmarks' helpers

# ----------------------------------------------------------------------------------- the workload
# items: the benchmark's test set size. Sources: protocols.json "data" fields (VL-RewardBench 1,250;
# GenAI-Bench 1,735 / 919 / 1,069; NISQA 712 files; SOMOS 3,000; VoxSim 2,776 pairs); MJ-Bench
# alignment 724, safety 574, quality (artifact) 1,121: the MJ-Bench paper's Table 1 (arXiv
# 2407.04842; its per-category counts add up to these; the released Flex-Judge code,
# jongwooko/flex-judge test/mj_bench_vllm.py, evaluates whole splits); BVCC (VoiceMOS 2022 main track) test 1,066 utterances (VoiceMOS 2022 challenge
# paper, arXiv 2203.11389); MLLM-as-a-Judge: Flex-Judge's test/mllm_as_a_judge_vllm.py reads the
# whole Benchmark/{score,pair,batch}.jsonl files, so the items are those files' records: score 6,112
# and pair 8,816 (records numbered score_id 0..6111 and pair_id 0..8815 in the copy of the released
# files in the public fork TejasAnvekar/UQ-MLLM-Judge, Dataset/Benchmark/; the original
# Dongping-Chen/MLLM-Judge holds only batch.jsonl in the stored index, and the fork's batch.jsonl is
# larger than the original's, so the fork may differ from the release), batch 1,470 (recalled from the
# MLLM-as-a-Judge paper, arXiv 2402.04788; its records carry no running number to count by, and the
# original's 3.05 MB at ~2 kB a record is ~1,500). The paper's 4,414 counts image-instruction pairs,
# not judged records: several answers are scored, and several pairs compared, per instruction.
# text: synthetic token lengths of the template fields (assumed from the datasets' kind of text:
# captions / prompts ~20-30 tokens, model answers ~150-250 tokens; MLLM-as-a-Judge batch items
# rank 4 answers, carried here as two fields of two answers each).
# media: images per item at the protocol's size (VL-RewardBench is not resized by the protocol:
# 640x480 assumed, the common COCO-like size of its sources); GenAI-Bench video: fps 1.0 and
# max_pixels 224*224 (protocol), 4 s per clip assumed (the generators in GenAI-Bench make 2-4 s
# clips) -> 4 frames of 224x224; audio seconds per file assumed from the corpora (NISQA ~8 s,
# BVCC ~4 s, SOMOS ~5 s, VoxSim ~6 s per utterance).
SUITE = [
    # task, family, items, source, fields {name: tokens}, media
    ("flex_vl_rewardbench", "vl", 1250, "protocols.json", {"query": 30, "answer1": 220, "answer2": 220},
     {"image": [(640, 480)]}),
    ("flex_mj_bench_alignment", "vl", 724, "MJ-Bench paper", {"caption": 25}, {"image": [(336, 336)] * 2}),
    ("flex_mj_bench_safety", "vl", 574, "MJ-Bench paper", {"caption": 25}, {"image": [(336, 336)] * 2}),
    ("flex_mj_bench_quality", "vl", 1121, "MJ-Bench paper", {"caption": 25}, {"image": [(336, 336)] * 2}),
    ("flex_genai_bench_image", "vl", 1735, "protocols.json", {"prompt": 25}, {"image": [(448, 448)] * 2}),
    ("flex_genai_bench_editing", "vl", 919, "protocols.json",
     {"source_prompt": 15, "target_prompt": 15, "instruct_prompt": 15}, {"image": [(448, 448)] * 3}),
    ("flex_genai_bench_video", "vl", 1069, "protocols.json", {"prompt": 25}, {"video": [(4, 224, 224)] * 2}),
    ("flex_mllm_judge_score", "vl", 6112, "MLLM-Judge score.jsonl (fork copy)", {"instruction": 40, "answer": 200},
     {"image": [(448, 448)]}),
    ("flex_mllm_judge_pair", "vl", 8816, "MLLM-Judge pair.jsonl (fork copy)",
     {"instruction": 40, "answer1": 200, "answer2": 200},
     {"image": [(448, 448)]}),
    ("flex_mllm_judge_batch", "vl", 1470, "MLLM-as-a-Judge paper (recalled)", {"instruction": 40, "a1": 400, "a2": 400},
     {"image": [(448, 448)]}),
    ("flex_nisqa", "omni", 712, "protocols.json", {}, {"audio": [8.0]}),
    ("flex_bvcc", "omni", 1066, "VoiceMOS 2022 paper", {}, {"audio": [4.0]}),
    ("flex_somos", "omni", 3000, "protocols.json", {}, {"audio": [5.0]}),
    ("flex_voxsim", "omni", 2776, "protocols.json", {}, {"audio": [6.0, 6.0]}),
]
# Output length (generated tokens) per request: log-normal with this median and sigma 0.6, cut to
# [32, the protocol's max_tokens 4096]. Assumed, from the shape of a Flex-Judge answer: a <think>
# trace then the verdict; its training traces were the longest teacher traces per prompt (protocols.json
# "filter"), and judging text is a few hundred tokens. Comparisons reason over two candidates (450),
# one-answer scores are shorter (250), four-answer rankings longer (600), MOS / similarity traces
# shortest (200). Random weights never choose EOS on their own (p ~ 1/152,064 per step), so each
# request runs to its drawn max_new_tokens, with EOS still honoured as flex sends it.
OUTPUT_LENGTHS = {"flex_vl_rewardbench": 450, "flex_mj_bench": 400, "flex_genai_bench": 400,
                  "flex_mllm_judge_score": 250, "flex_mllm_judge_pair": 450, "flex_mllm_judge_batch": 600,
                  "audio": 200}
SIGMA = 0.6
MIN_TOKENS = 32
# Benchmarks of the upstream scripts (one script, one engine each): the groups of flex_all.
UPSTREAM_SCRIPT = {"flex_mj_bench": "mj_bench", "flex_genai_bench": "genai_bench", "flex_mllm_judge": "mllm_as_a_judge"}
PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|IMAGE|>", "<|VIDEO|>", "<|AUDIO|>")

# Released 7B shapes (Qwen2.5-VL-7B-Instruct / Qwen2.5-Omni-7B config.json).
TEXT_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, max_window_layers=28)
VISION_7B = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                 spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=3584,
                 fullatt_block_indexes=[7, 15, 23, 31])
AUDIO_7B = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                num_mel_bins=128, max_source_positions=1500, n_window=100, output_dim=3584)


def script_of(task: str) -> str:
    for prefix, name in UPSTREAM_SCRIPT.items():
        if task.startswith(prefix):
            return name
    return task.removeprefix("flex_")


def median_length(task: str) -> int:
    if task in OUTPUT_LENGTHS:
        return OUTPUT_LENGTHS[task]
    for k, v in OUTPUT_LENGTHS.items():
        if task.startswith(k):
            return v
    return OUTPUT_LENGTHS["audio"]


def scaled_items(items: int, scale: float) -> int:
    return items if scale >= 1 else max(2, round(items * scale))


def workload(family: str, scale: float, task_filter: list[str] | None = None) -> list[dict]:
    """The family's tasks: counts, runs, order, media shapes, lengths (no media yet)."""
    from flex_tasks.protocol import TASKS

    out = []
    for task, fam, items, source, fields, media in SUITE:
        if fam != family or (task_filter and task not in task_filter):
            continue
        spec = TASKS[task]
        out.append(dict(task=task, family=fam, items_full=items, items=scaled_items(items, scale), items_source=source,
                        runs=spec.runs if spec.multi_run else 1, order=spec.order, fields=fields, media=media,
                        median_new_tokens=median_length(task), max_tokens=spec.max_tokens,
                        temperature=spec.temperature, top_p=spec.top_p, stop=list(spec.stop)))
    return out


def draw_lengths(task: str, n: int, median: int, cap: int, max_tokens: int) -> list[int]:
    import numpy as np

    rng = np.random.RandomState(sum(map(ord, task)))  # the same lengths in every process
    x = np.exp(np.log(median) + SIGMA * rng.standard_normal(n))
    hi = min(max_tokens, cap) if cap else max_tokens
    lo = min(MIN_TOKENS, hi)
    return [int(v) for v in np.clip(np.round(x), lo, hi)]


# ------------------------------------------------------------------------------ checkpoints
def make_checkpoint(family: str, root: Path, size: str) -> Path:
    """tiny: flex_models.tiny as is. 7b: the tiny tokenizer / processor / template with the released
    7B shapes in config.json and no weights (the engine loads `load_format=dummy`)."""
    from flex_models.tiny import make_tiny

    d = root / f"{family}-{size}"
    if (d / "config.json").exists():
        return d
    make_tiny(family, d)
    if size == "tiny":
        return d
    for f in d.glob("*.safetensors"):
        f.unlink()
    cfg = json.loads((d / "config.json").read_text())
    block = cfg["thinker_config"] if family == "omni" else cfg
    text = block["text_config"]
    text.update(TEXT_7B)
    text.pop("layer_types", None)
    rope = text.get("rope_parameters") or {}
    rope.update(mrope_section=[16, 24, 24], rope_theta=1e6)
    text["rope_parameters"] = rope
    block["vision_config"].update(VISION_7B)
    if family == "omni":
        block["audio_config"].update(AUDIO_7B)
    for c in (cfg, text, block):
        c["dtype"] = "bfloat16"
    (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    sys.path.insert(0, str(Path(__file__).resolve().parent / "gpu"))
    from checkpoint import open_pixel_limits

    open_pixel_limits(d)
    return d


# ------------------------------------------------------------------------------ docs and requests
def filler(tokenizer, n_tokens: int, salt: int) -> str:
    """Text of about n_tokens tokens of this tokenizer (distinct per salt)."""
    if n_tokens <= 0:
        return ""
    words = ["judge", "image", "answer", "shows", "quality", "the", "scene", "detail", "color", "model",
             "prompt", "object", "left", "right", "person", "light", "texture", "sound", "clear", "speech"]
    out, k = [], salt
    while True:
        out.append(words[k % len(words)] + str(k % 97))
        k = k * 1103515245 + 12345 & 0x7FFFFFFF
        if len(out) % 8 == 0 and len(tokenizer(" ".join(out))["input_ids"]) >= n_tokens:
            return " ".join(out)


def build_docs(tasks: list[dict], tokenizer, cap: int | None, png_dir: Path | None = None) -> dict:
    """task -> docs in lmms-eval's order (item by item, the runs of an item adjacent: flex_tasks.lmms.expand),
    each doc: fields, media objects, flex_item / flex_run / flex_seed / flex_swap, max_new_tokens."""
    import numpy as np

    from flex_tasks.lmms import run_plan
    from flex_tasks.protocol import TASKS

    docs: dict = {}
    for t in tasks:
        spec = TASKS[t["task"]]
        rng = np.random.RandomState(sum(map(ord, t["task"])))
        plan = run_plan(spec, t["items"]) if spec.multi_run else [(0, False)] * t["items"]
        lengths = draw_lengths(t["task"], t["items"] * t["runs"], t["median_new_tokens"], cap, t["max_tokens"])
        out, j = [], 0
        for item in range(t["items"]):
            fields = {k: filler(tokenizer, n, item * 31 + len(k)) for k, n in t["fields"].items()}
            media = []
            for kind, shapes in t["media"].items():
                for s in shapes:
                    if kind == "image":
                        w, h = s
                        from PIL import Image

                        media.append(Image.fromarray(rng.randint(0, 255, (h, w, 3), dtype=np.uint8)))
                    elif kind == "video":
                        media.append(f"synthvideo:{t['task']}:{item}:{len(media)}:{s[0]}x{s[1]}x{s[2]}")
                    else:
                        media.append({"array": (rng.standard_normal(int(s * 16000)) * 0.1).astype(np.float32),
                                      "sampling_rate": 16000})
            for _ in range(t["runs"]):
                k, swap = plan[j]
                out.append(dict(flex_task=t["task"], flex_item=item, flex_run=k, flex_seed=spec.seed(k), flex_swap=swap,
                                fields=fields, media=media, max_new_tokens=lengths[j]))
                j += 1
        docs[t["task"]] = out
    return docs


def doc_messages(doc):
    """The protocol's prompt of a synthetic doc (system + user template, order swap applied)."""
    from flex_tasks.prompts import interleave, template_parts
    from flex_tasks.protocol import TASKS

    spec = TASKS[doc["flex_task"]]
    fields = dict(doc["fields"])
    media = list(doc["media"])
    if doc["flex_swap"]:
        if "answer1" in fields:  # VL-RewardBench: the two answers swapped
            fields["answer1"], fields["answer2"] = fields["answer2"], fields["answer1"]
        else:  # MJ-Bench: the two images swapped
            media = media[::-1]
    parts = template_parts(spec.user, fields)
    return [{"role": "system", "content": [{"type": "text", "text": spec.system}]},
            {"role": "user", "content": interleave(parts, media)}]


def gen_kwargs(doc) -> dict:
    from flex_tasks.protocol import TASKS

    g = TASKS[doc["flex_task"]].generation_kwargs()
    g["max_new_tokens"] = doc["max_new_tokens"]
    return g


def synthetic_video(url, where: str = "", fps=None, max_pixels=None):
    """Stand-in for flex_models.media.load_video on `synthvideo:` keys: random frames already at
    the protocol's size (PyAV, flex's decoder, is not on the GPU machine; decoding is not measured)."""
    import numpy as np

    from flex_models.media import load_video

    if not (isinstance(url, str) and url.startswith("synthvideo:")):
        return load_video(url, where, fps=fps, max_pixels=max_pixels)
    t, h, w = (int(v) for v in url.rsplit(":", 1)[1].split("x"))
    rng = np.random.RandomState(sum(map(ord, url)))
    frames = rng.randint(0, 255, (t, h, w, 3), dtype=np.uint8)
    f = float(fps or 1.0)
    meta = {"fps": f, "total_num_frames": t, "duration": t / f, "frames_indices": list(range(t)),
            "video_backend": "pyav"}
    return frames, meta


def instances(docs: dict):
    from lmms_eval.api.instance import Instance

    out = []
    for task, ds in docs.items():
        for i, d in enumerate(ds):
            out.append(Instance(request_type="generate_until", arguments=("", doc_messages, gen_kwargs(d), i, task, "test"),
                                idx=0, metadata={"task": task, "doc_id": i, "repeats": 1}))
    return out


# ------------------------------------------------------------------------------ measurement helpers
def copy_bandwidth() -> dict:
    """Device-to-device copy of 2 GiB, best of 5 (read + write bytes / s)."""
    import torch

    if not torch.cuda.is_available():
        return {"copy_GBps": None}
    n = 2 * 2**30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    best = 1e9
    for _ in range(6):
        torch.cuda.synchronize()
        t = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    del a, b
    torch.cuda.empty_cache()
    return {"copy_GBps": round(2 * n / best / 1e9, 1), "device": torch.cuda.get_device_name(0)}


def sampler_bench(batches=(256, 1024), stds=(0.001, 1.0, 2.0, 4.0), vocab: int = 152064, top_p: float = 0.95,
                  temperature: float = 0.6, reps: int = 20) -> dict:
    """vLLM's top-p kernel (apply_top_k_top_p_triton, what the engine's sampler runs for top_p < 1)
    alone, on fp32 logits [batch, vocab] of Gaussian rows with the given std, after the protocol's
    temperature: its time depends on how peaked the rows are (a pivot search), so random-weight
    engines (load_format=dummy: weights U(-1e-3, 1e-3), logits nearly flat) may pay more per step
    than a trained checkpoint, whose next-token entropy is a few nats. Median of `reps` (CUDA events)."""
    import torch

    from vllm.v1.sample.ops.topk_topp_triton import apply_top_k_top_p_triton

    out = []
    g = torch.Generator(device="cuda").manual_seed(0)
    for b in batches:
        p = torch.full((b,), top_p, device="cuda")
        for std in stds:
            base = torch.randn(b, vocab, device="cuda", generator=g) * std / temperature
            ent = float(-(base.softmax(-1) * base.log_softmax(-1)).sum(-1).mean())
            times = []
            for i in range(reps + 3):
                x = base.clone()
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                y = apply_top_k_top_p_triton(x, None, p)
                e1.record()
                torch.cuda.synchronize()
                if i >= 3:
                    times.append(e0.elapsed_time(e1))
            kept = float(torch.isfinite(y).float().sum(-1).mean())
            times.sort()
            out.append({"batch": b, "logit_std": std, "entropy_nats": round(ent, 3), "kept_tokens": round(kept, 1),
                        "ms": round(times[len(times) // 2], 3)})
            print(f"sampler: {out[-1]}", file=sys.stderr, flush=True)
    return {"top_p": top_p, "temperature": temperature, "vocab": vocab, "rows": out}


def text_shape(ckpt: Path, family: str) -> dict:
    cfg = json.loads((ckpt / "config.json").read_text())
    t = (cfg["thinker_config"] if family == "omni" else cfg)["text_config"]
    h, i, L, kv = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"], t["num_key_value_heads"]
    hd = h // t["num_attention_heads"]
    per_layer = 2 * h * h + 2 * h * kv * hd + 3 * h * i
    params = L * per_layer + t["vocab_size"] * h  # decoder layers + lm_head (the embedding is a gather)
    return {"decode_weight_bytes": 2 * params, "kv_bytes_per_token": 2 * L * kv * hd * 2}


def roofline_s(reqs: list[tuple[int, int]], shape: dict, bw: float, max_seqs: int) -> float:
    """Lower bound of the decode time of requests [(prompt tokens, new tokens)] at `bw` B/s: every
    step reads the weights once (steps >= new tokens / max_num_seqs) and every new token reads its
    request's KV so far. Prefill and the encoders are left out (a decode-only bound)."""
    total_new = sum(n for _, n in reqs)
    steps = max(max((n for _, n in reqs), default=0), math.ceil(total_new / max_seqs))
    kv = sum(n * p + n * (n - 1) / 2 for p, n in reqs) * shape["kv_bytes_per_token"]
    return (steps * shape["decode_weight_bytes"] + kv) / bw


def encoder_needs(prompt_ids, cached: int, ph: set) -> tuple[int, int]:
    """(media items in the prompt, media items not wholly inside the cached prefix)."""
    items, need, prev = 0, 0, False
    end = None
    for pos, tok in enumerate(prompt_ids):
        cur = tok in ph
        if cur:
            end = pos
        if prev and not cur:
            items += 1
            need += end >= cached
        prev = cur
    if prev:
        items += 1
        need += end >= cached
    return items, need


def reset_caches(llm) -> None:
    for name in ("reset_prefix_cache", "reset_mm_cache"):
        fn = getattr(llm, name, None)
        if fn is not None:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                print(f"suite: {name} failed: {e}", file=sys.stderr)


def raw_pass(llm, prepared, order, task_of, run_of, ph) -> dict:
    """One LLM.generate over the requests in `order`; per task: tokens, cache hits, encoder needs."""
    from flex_models.backends.vllm_backend import sampling_params, vllm_prompt

    prompts = [vllm_prompt(prepared[i]) for i in order]
    params = [sampling_params(prepared[i].spec) for i in order]
    t0 = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    wall = time.perf_counter() - t0
    per: dict = {}
    reqs = []
    for i, o in zip(order, outs):
        d = per.setdefault(task_of[i], dict(requests=0, prompt_tokens=0, cached_tokens=0, new_tokens=0,
                                            media_items=0, encoder_items=0, first_run_encoder_items=0))
        p = list(o.prompt_token_ids or [])
        c = int(getattr(o, "num_cached_tokens", 0) or 0)
        n = sum(len(x.token_ids) for x in o.outputs)
        items, need = encoder_needs(p, c, ph)
        d["requests"] += 1
        d["prompt_tokens"] += len(p)
        d["cached_tokens"] += c
        d["new_tokens"] += n
        d["media_items"] += items
        d["encoder_items"] += need
        reqs.append((len(p), n))
    return {"wall_s": wall, "per_task": per, "reqs": reqs}


def runmajor_pass(llm, prepared, order, task_of, run_of, ph) -> dict:
    """The upstream scripts' order: one `generate` per run k over every item's run-k request, prefix
    and multimodal caches emptied between runs. At full size one run of a large task (MLLM-as-a-Judge:
    4,414 prompts of ~1,000 tokens) is more than the KV cache holds, so run k+1 finds little of run k;
    at the scaled size everything would fit and hide that, hence the reset."""
    total: dict = {"wall_s": 0.0, "per_task": {}, "reqs": [], "calls": 0}
    for k in sorted({run_of[i] for i in order}):
        reset_caches(llm)
        part = raw_pass(llm, prepared, [i for i in order if run_of[i] == k], task_of, run_of, ph)
        total["wall_s"] += part["wall_s"]
        total["calls"] += 1
        total["reqs"] += part["reqs"]
        for t, d in part["per_task"].items():
            acc = total["per_task"].setdefault(t, dict.fromkeys(d, 0))
            for kk, v in d.items():
                acc[kk] += v
    return total


def dump_scripts(d: Path, prepared, order, task_of, run_of) -> None:
    """The upstream way's inputs, one file per benchmark script (`<script>.pkl`): its `generate` calls,
    one per task and run in the run-major order, each a list of (vLLM prompt, SamplingParams), the
    very requests of the raw pass. `gpu/raw_startup.py --requests` runs one script in a fresh process."""
    import pickle

    from flex_models.backends.vllm_backend import sampling_params, vllm_prompt

    calls: dict = {}
    for i in order:
        calls.setdefault(script_of(task_of[i]), {}).setdefault((task_of[i], run_of[i]), []).append(i)
    d.mkdir(parents=True, exist_ok=True)
    for script, groups in calls.items():
        with open(d / f"{script}.pkl", "wb") as fh:
            pickle.dump([(t, k, [(vllm_prompt(prepared[i]), sampling_params(prepared[i].spec)) for i in idx])
                         for (t, k), idx in groups.items()], fh)


def run_scripts(a, fam: str, ckpt: Path, d: Path, work: Path) -> dict:
    """The upstream way, run: each of the family's benchmark scripts (dump_scripts) as a process of
    its own, one after the other: launch, `import vllm`, `LLM()` with flex's engine arguments, then
    one `generate` per task and run. Returns the per-script results of gpu/raw_startup.py."""
    out: dict = {}
    for f in sorted(d.glob("*.pkl")):
        res = work / f"upstream_{fam}_{f.stem}.json"
        res.unlink(missing_ok=True)
        cmd = [sys.executable, str(REPO / "benchmarks" / "gpu" / "raw_startup.py"), "--ckpt", str(ckpt), "--family", fam,
               "--model-args", json.dumps(model_args(a)), "--requests", str(f), "--out-json", str(res),
               "--t-launch", repr(time.time())]
        t0 = time.time()
        with open(work / f"upstream_{fam}_{f.stem}.log", "w") as fh:
            try:
                rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=a.timeout, cwd=REPO).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        r = json.loads(res.read_text()) if res.exists() else {"error": f"rc={rc}"}
        out[f.stem] = dict(r, family=fam, process_s=round(time.time() - t0, 2), rc=rc)
        print(f"suite: upstream script {f.stem} rc={rc} {out[f.stem].get('launch_to_done_s')} s", flush=True)
    return out


def warm_startup(a, fam: str, ckpt: Path, worker_cmd: list[str], work: Path) -> dict:
    """The family's start-up once more, now that its compile caches are warm, in the same session as its
    passes: the flex worker with no passes (launch -> FlexJudge ready, `LLM()` inside it), then a bare
    vLLM script with flex's engine arguments (gpu/raw_startup.py: launch -> `LLM()` ready). What the
    adapter adds is flex's start-up minus the script's; `LLM()` alone leaves out the script's own
    Python start and `import vllm`, which every vLLM user pays."""
    out: dict = {}
    flex_json, raw_json = work / f"warm_flex_{fam}.json", work / f"warm_raw_{fam}.json"
    cmd = list(worker_cmd)
    for flag, value in (("--out-json", str(flex_json)), ("--passes", "none"), ("--steplog", ""),
                        ("--profile-pass", ""), ("--upstream-dir", "")):  # start-up only: no logs, no profiles
        cmd[cmd.index(flag) + 1] = value
    runs = [("flex", cmd, flex_json),
            ("script", [sys.executable, str(REPO / "benchmarks" / "gpu" / "raw_startup.py"), "--ckpt", str(ckpt),
                        "--family", fam, "--model-args", json.dumps(model_args(a)), "--out-json", str(raw_json),
                        "--t-launch", ""], raw_json)]
    for name, c, res in runs:
        res.unlink(missing_ok=True)
        c[c.index("--t-launch") + 1] = repr(time.time())
        with open(work / f"warm_{name}_{fam}.log", "w") as fh:
            try:
                rc = subprocess.run(c, stdout=fh, stderr=subprocess.STDOUT, timeout=a.timeout, cwd=REPO).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        if not res.exists():
            return {"error": f"{name} start-up probe rc={rc}: see warm_{name}_{fam}.log"}
        out[name] = json.loads(res.read_text())
    f, r = out["flex"], out["script"]
    return {"flex_startup_s": round(f["startup_s"], 2), "flex_llm_init_s": round(f["raw_init_s"] or 0, 2),
            "flex_startup_minus_llm_init_s": round(f["startup_s"] - (f["raw_init_s"] or 0), 2),
            "script_launch_to_ready_s": r["launch_to_ready_s"], "script_import_vllm_s": r["import_vllm_s"],
            "script_llm_init_s": r["llm_init_s"],
            "flex_minus_script_s": round(f["startup_s"] - r["launch_to_ready_s"], 2)}


def model_args(a) -> dict:
    """The flex model_args of the benchmark's engine (the worker's FlexJudge and the raw scripts)."""
    if a.mode == "gpu":
        kw = dict(backend="vllm", load_format="dummy", dtype="bfloat16", max_model_len=a.max_model_len)
        kw.update(json.loads(a.engine_args or "{}"))
        return kw
    return dict(backend="vllm", dtype="float32", max_new_tokens=a.cap, max_model_len=a.max_model_len)


# Dense bf16 peak of an H100/H200 SXM (NVIDIA's datasheet, 989 TFLOPS without sparsity): the prefill
# part of the per-step bound (benchmarks/gpu/steplog.py). A bound, not a rate this GPU reaches.
PEAK_BF16_FLOPS = 989e12


def profile_window(a, llm, name: str):
    """For the pass `name` if it is the one to profile (--profile-pass): py-spy samples of the
    engine-core process from --pyspy-delay s for --pyspy-s s (benchmarks/gpu/hostprof.py), and the
    engine's torch profile (configured through the engine's profiler_config, which skips its first
    delay_iterations steps) started now. Returns a function that collects both, or None."""
    if name not in a.profile_pass.split(","):
        return None
    import threading

    import hostprof
    from workers import _engine_pids

    started = {"torch": False}
    if a.torch_profile:
        try:
            llm.start_profile()
            started["torch"] = True
        except Exception as e:  # noqa: BLE001
            print(f"suite: start_profile failed: {e!r}", file=sys.stderr)
    res: dict = {"pids": _engine_pids(), "window_s": [a.pyspy_delay, a.pyspy_delay + a.pyspy_s]}
    procs: list = []
    files: dict = {}

    def later():
        time.sleep(a.pyspy_delay)
        for role, pid in res["pids"].items():
            files[role] = Path(a.workdir) / f"pyspy-{a.family}-{name}-{role}.txt"
            try:
                procs.append(hostprof.record(pid, a.pyspy_s, files[role]))
            except Exception as e:  # noqa: BLE001
                res.setdefault("errors", []).append(f"{role}: {e!r}")

    th = threading.Thread(target=later, daemon=True) if a.pyspy_s else None
    if th:
        th.start()

    def collect() -> dict:
        if th:
            th.join()
        for p in procs:
            try:
                text = p.communicate(timeout=a.pyspy_s + 30)[0]
            except subprocess.TimeoutExpired:
                p.kill()
                text = "py-spy timed out"
            if p.returncode:
                res.setdefault("errors", []).append(text[-500:])
        res["py_spy"] = {role: hostprof.collapse(f) for role, f in files.items() if f.exists()}
        if started["torch"]:
            try:
                llm.stop_profile()
            except Exception as e:  # noqa: BLE001
                res.setdefault("errors", []).append(f"stop_profile: {e!r}")
            res["torch_profile"] = torch_table(Path(a.torch_profile))
        return res

    return collect


def torch_table(d: Path) -> dict:
    """The engine's key_averages table (vLLM writes profiler_out_<rank>.txt): total CUDA time and the
    kernels that take it, by self CUDA time."""
    files = sorted(d.glob("profiler_out_*.txt"))
    if not files:
        return {"error": f"no profiler_out_*.txt in {d}"}
    text = files[0].read_text(errors="replace")
    rows, total = [], None
    for line in text.splitlines():
        if "Self CUDA time total" in line:
            total = line.split(":", 1)[1].strip()
        parts = [x for x in line.split("  ") if x.strip()]
        if len(parts) >= 10 and parts[-1].strip().isdigit():
            rows.append({"name": parts[0].strip()[:90], "self_cuda": parts[6].strip(), "self_cuda_pct": parts[7].strip(),
                         "calls": int(parts[-1])})
    return {"file": files[0].name, "self_cuda_total": total, "top": rows[:25]}


# ------------------------------------------------------------------------------ one family (worker)
def pass_order(wanted: list[str], pairs: int, raw_first: bool) -> list[str]:
    """The timed passes of one engine. raw and flex `pairs` times in ABBA order (raw, flex, flex,
    raw, ... from `raw_first`), so a drift in the engine's speed over the session (first-use costs,
    clocks, allocator state) falls on both sides equally; repeats are named raw_2, flex_2, ...;
    then run-major once. Round 8 ran one pair per family and found the first pass the slower in
    both families: one pair measures the order as much as the adapter."""
    out: list[str] = []
    for k in range(pairs):
        pair = ["raw", "flex"] if raw_first == (k % 2 == 0) else ["flex", "raw"]
        out += [p if k == 0 else f"{p}_{k + 1}" for p in pair if p in wanted]
    return out + (["runmajor"] if "runmajor" in wanted else [])


def worker(a) -> dict:
    t_launch = float(a.t_launch or T_LAUNCH)
    import flex_models.planner as planner_mod
    from flex_models.backends.vllm_backend import sampling_params, vllm_prompt
    from flex_models.model import FlexJudge
    from flex_models.requests import share_order

    t_import = time.time() - t_launch
    hw = json.loads(a.hw or "{}")  # measured by the parent in its own process: CUDA stays uninitialised here
    ckpt = Path(a.ckpt)
    kw = dict(model_args(a), journal="off")
    if a.engine_defaults:  # a sweep of the flex model's engine defaults (flex_models.backends.vllm_backend)
        import flex_models.backends.vllm_backend as vb

        vb.GPU_DEFAULTS.update(json.loads(a.engine_defaults))
    steplog_path = Path(a.steplog) if a.steplog else None
    if steplog_path:  # before the engine exists: its forked engine-core process carries the wrapper
        import steplog

        steplog_path.unlink(missing_ok=True)
        steplog.install(steplog_path)
    model = FlexJudge(pretrained=str(ckpt), **kw)
    startup = time.time() - t_launch
    llm = model.backend.llm
    init_s = getattr(model.backend, "init_s", None)
    if a.passes == "none":  # a start-up probe (--warm-startup): launch -> FlexJudge ready, nothing run
        import vllm

        return dict(family=a.family, import_s=t_import, startup_s=startup, raw_init_s=init_s,
                    versions={"vllm": vllm.__version__})
    planner_mod.load_video = synthetic_video
    tok = llm.get_tokenizer()
    ph = {i for i in (tok.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS) if isinstance(i, int) and i >= 0
          and i != getattr(tok, "unk_token_id", None)}
    tasks = workload(a.family, a.scale, a.tasks.split(",") if a.tasks else None)
    docs = build_docs(tasks, tok, a.cap if a.mode == "cpu" else None)
    model.task_dict = {t: {"test": ds} for t, ds in docs.items()}
    reqs = instances(docs)
    # the flex model's own planning of the same requests (what the raw passes send)
    planned = model._plan_all(reqs)
    keys = list(model._item_keys)
    task_of = [r.args[4] for r in reqs]
    run_of = [docs[r.args[4]][r.args[3]]["flex_run"] for r in reqs]
    from flex_models.planner import MediaCache

    cache = MediaCache()
    prepared = [model.decode(p, cache) for p in planned]
    flex_order = share_order(keys, list(range(len(reqs))))
    runmajor = sorted(range(len(reqs)), key=lambda i: (task_of[i], run_of[i], i))
    if a.upstream_dir:
        dump_scripts(Path(a.upstream_dir), prepared, runmajor, task_of, run_of)
    # warm-up (first-call allocations, processor caches): one item of every task, all its runs, so each
    # task's media shapes and prompt lengths are met once before any timed pass (round 8: with 8 requests of one task the first timed pass was the slower in both families)
    first = {}
    for i, t in enumerate(task_of):
        first.setdefault(t, keys[i])
    warm = [i for i in range(len(reqs)) if keys[i] == first[task_of[i]]]
    llm.generate([vllm_prompt(prepared[i]) for i in warm], [sampling_params(prepared[i].spec) for i in warm],
                 use_tqdm=False)
    reset_caches(llm)

    passes: dict = {}
    windows: dict = {}
    for name in pass_order(a.passes.split(","), a.pairs, bool(a.raw_first)):
        reset_caches(llm)
        sampler = profile_window(a, llm, name)
        windows[name] = [time.time(), None]
        if name.startswith("flex"):
            before = dict(model.timing)
            t0 = time.perf_counter()
            results = model.generate_until(reqs)
            wall = time.perf_counter() - t0
            new = sum(r.token_counts.output_tokens for r in results)
            passes[name] = {"wall_s": wall, "new_tokens": new, "requests": len(results),
                              "prompt_tokens": model.timing.get("prompt_tokens", 0) - before.get("prompt_tokens", 0),
                              "cached_tokens": model.timing.get("cached_tokens", 0) - before.get("cached_tokens", 0),
                              "prepare_s": model.timing["prepare_s"] - before["prepare_s"],
                              "engine_s": model.timing["engine_s"] - before["engine_s"]}
        elif name.startswith("raw"):
            passes[name] = raw_pass(llm, prepared, flex_order, task_of, run_of, ph)
        else:  # one generate per run, the cache emptied between runs (see runmajor_pass)
            passes[name] = runmajor_pass(llm, prepared, runmajor, task_of, run_of, ph)
        windows[name][1] = time.time()
        if sampler is not None:
            passes[name]["host_profile"] = sampler()
        print(f"suite[{a.family}]: {name} {passes[name]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    if steplog_path:
        import steplog

        time.sleep(1.0)  # the engine process flushes its log when it runs out of requests
        bw = (hw.get("copy_GBps") or 0) * 1e9 or None
        shape = text_shape(ckpt, a.family)
        max_seqs = llm.llm_engine.vllm_config.scheduler_config.max_num_seqs
        for name, (t0, t1) in windows.items():
            passes[name]["step_profile"] = steplog.reduce(steplog.read(steplog_path, t0, t1), shape, bw,
                                                          PEAK_BF16_FLOPS if bw else None, max_seqs, t_start=t0)
    sched = llm.llm_engine.vllm_config.scheduler_config
    cache_cfg = llm.llm_engine.vllm_config.cache_config
    import torch
    import vllm

    return dict(family=a.family, checkpoint=str(ckpt), tasks=tasks, hw=hw, import_s=t_import, startup_s=startup,
                raw_init_s=init_s, engine_kwargs={k: str(v) for k, v in model.backend.kwargs.items()},
                max_num_seqs=sched.max_num_seqs, max_num_batched_tokens=sched.max_num_batched_tokens,
                async_scheduling=getattr(sched, "async_scheduling", None),
                prefix_caching=getattr(cache_cfg, "enable_prefix_caching", None),
                shape=text_shape(ckpt, a.family), passes={k: {kk: vv for kk, vv in v.items() if kk != "reqs"}
                                                          for k, v in passes.items()},
                reqs=passes.get("raw", {}).get("reqs", []), versions={"vllm": vllm.__version__, "torch": torch.__version__,
                                                      "python": platform.python_version()})


# ------------------------------------------------------------------------------ summary
def summarize(parts: dict, scale: float, mode: str) -> dict:
    rows, fams = [], {}
    for fam, w in parts.items():
        if not w.get("ok"):
            fams[fam] = {"ok": False, "error": w.get("error")}
            continue
        p = w["passes"]
        if not {"raw", "flex"} <= set(p):  # a sweep run: the flex pass alone
            fams[fam] = {"ok": True, "sweep": True, "engine_kwargs": w["engine_kwargs"],
                         "startup_s": round(w["startup_s"], 2), "raw_init_s": round(w["raw_init_s"] or 0, 2),
                         "max_num_seqs": w["max_num_seqs"], "async_scheduling": w["async_scheduling"],
                         **{f"{k}_s": round(v["wall_s"], 2) for k, v in p.items()},
                         **{f"{k}_new_tokens": v.get("new_tokens") or sum(d["new_tokens"] for d in v["per_task"].values())
                            for k, v in p.items()}}
            continue
        raw, flex, rm = p["raw"], p["flex"], p.get("runmajor")
        bw = (w["hw"].get("copy_GBps") or 0) * 1e9
        roof = roofline_s([tuple(r) for r in w["reqs"]], w["shape"], bw, w["max_num_seqs"]) if bw else None
        raw_new = sum(d["new_tokens"] for d in raw["per_task"].values())
        # every raw and flex pass (ABBA with --pairs 2): the ratio of the sums, and each pair's own
        walls = {k: v["wall_s"] for k, v in p.items() if k != "runmajor"}
        sums = {side: sum(v for k, v in walls.items() if k.split("_")[0] == side) for side in ("raw", "flex")}
        pairs = sorted({k.partition("_")[2] or "1" for k in walls}, key=int)
        f = dict(ok=True, startup_s=round(w["startup_s"], 2), raw_init_s=round(w["raw_init_s"] or 0, 2),
                 startup_minus_raw_init_s=round(w["startup_s"] - (w["raw_init_s"] or 0), 2),
                 import_s=round(w["import_s"], 2),
                 raw_s=round(raw["wall_s"], 2), flex_s=round(flex["wall_s"], 2),
                 runmajor_s=round(rm["wall_s"], 2) if rm else None,
                 flex_over_raw=round(sums["raw"] / sums["flex"], 4),
                 pass_order_s={k: round(v, 2) for k, v in walls.items()},
                 flex_over_raw_by_pair=[round(walls[f"raw_{k}" if k != "1" else "raw"]
                                              / walls[f"flex_{k}" if k != "1" else "flex"], 4) for k in pairs],
                 share_speedup=round(rm["wall_s"] / raw["wall_s"], 4) if rm else None,
                 raw_decode_tok_s=round(raw_new / raw["wall_s"], 1),
                 flex_decode_tok_s=round(flex["new_tokens"] / flex["wall_s"], 1),
                 roofline_s=round(roof, 2) if roof else None,
                 decode_over_roofline=round(roof / flex["wall_s"], 4) if roof else None,
                 raw_decode_over_roofline=round(roof / raw["wall_s"], 4) if roof else None,
                 prefix_cache_hit_rate=round(flex["cached_tokens"] / max(flex["prompt_tokens"], 1), 4),
                 raw_prefix_cache_hit_rate=round(sum(d["cached_tokens"] for d in raw["per_task"].values())
                                                 / max(sum(d["prompt_tokens"] for d in raw["per_task"].values()), 1), 4),
                 runmajor_prefix_cache_hit_rate=round(sum(d["cached_tokens"] for d in rm["per_task"].values())
                                                      / max(sum(d["prompt_tokens"] for d in rm["per_task"].values()), 1), 4)
                 if rm else None,
                 max_num_seqs=w["max_num_seqs"], max_num_batched_tokens=w["max_num_batched_tokens"],
                 async_scheduling=w["async_scheduling"], copy_GBps=w["hw"].get("copy_GBps"))
        sp = flex.get("step_profile") or {}
        if sp.get("roofline_over_wall") is not None:  # the per-step bounds of benchmarks/gpu/steplog.py
            f.update(step_bw_bound_over_wall=sp["bw_bound_over_wall"], step_roofline_over_wall=sp["roofline_over_wall"])
        if w.get("warm_startup"):
            f["warm_startup"] = w["warm_startup"]
        fams[fam] = f
        # per task: the family's flex time shared out by each task's generated tokens (decode-bound)
        for t in w["tasks"]:
            d = raw["per_task"][t["task"]]
            share = d["new_tokens"] / max(raw_new, 1)
            per_item = t["items"]
            row = dict(
                task=t["task"], family=fam, items_full=t["items_full"], items=t["items"], items_source=t["items_source"],
                runs=t["runs"], order=t["order"], requests=d["requests"], media=t["media"],
                median_new_tokens=t["median_new_tokens"], mean_prompt_tokens=round(d["prompt_tokens"] / d["requests"], 1),
                mean_new_tokens=round(d["new_tokens"] / d["requests"], 1),
                flex_s=round(flex["wall_s"] * share, 2),
                flex_full_min=round(flex["wall_s"] * share / scale_of(t) / 60, 2),
                prefix_hit_rate=round(d["cached_tokens"] / max(d["prompt_tokens"], 1), 4),
                encoder_items_per_item=round(d["encoder_items"] / per_item, 3),
                media_items_per_item=round(d["media_items"] / per_item, 3))
            if rm:  # what sharing saves: against the run-major pass
                r = rm["per_task"][t["task"]]
                row.update(runmajor_s=round(rm["wall_s"] * (r["new_tokens"] / max(
                    sum(x["new_tokens"] for x in rm["per_task"].values()), 1)), 2),
                    runmajor_prefix_hit_rate=round(r["cached_tokens"] / max(r["prompt_tokens"], 1), 4),
                    runmajor_encoder_items_per_item=round(r["encoder_items"] / per_item, 3),
                    prefill_tokens_saved_per_item=round((d["cached_tokens"] - r["cached_tokens"]) / per_item, 1))
            rows.append(row)
    ok = [f for f in fams.values() if f.get("ok") and not f.get("sweep")]
    if len(ok) < len(fams):
        return {"mode": mode, "scale": scale, "families": fams, "tasks": rows}
    suite_s = sum(f["startup_s"] + f["flex_s"] for f in ok)
    full_s = sum(f["startup_s"] for f in ok) + sum(r["flex_full_min"] * 60 for r in rows)
    head = {"mode": mode, "scale": scale, "families": fams, "tasks": rows,
            "suite_s": round(suite_s, 1), "suite_full_min_extrapolated": round(full_s / 60, 1),
            "flex_over_raw": {k: f["flex_over_raw"] for k, f in fams.items() if f.get("ok")}}
    if not all("runmajor_s" in r for r in rows):  # no run-major pass: no estimate of the upstream way
        return head
    # the upstream way: per benchmark script one start-up (the family's measured launch -> engine ready)
    # plus its tasks' share of the run-major pass
    scripts: dict = {}
    for r in rows:
        s = scripts.setdefault(script_of(r["task"]), {"family": r["family"], "request_s": 0.0, "full_request_s": 0.0})
        s["request_s"] += r["runmajor_s"]
        s["full_request_s"] += r["runmajor_s"] / (r["items"] / r["items_full"])
    up_s = sum(fams[s["family"]]["startup_s"] + s["request_s"] for s in scripts.values())
    up_full = sum(fams[s["family"]]["startup_s"] + s["full_request_s"] for s in scripts.values())
    measured = upstream_measured({k: w.get("upstream") for k, w in parts.items()})
    return {**head,
            "upstream_way": {"scripts": len(scripts), "estimated_s": round(up_s, 1),
                             "estimated_full_min": round(up_full / 60, 1),
                             "how": "per benchmark script: one launch -> engine ready (measured start-up of its family) "
                                    "+ its tasks' share of the run-major pass (one generate per run, caches emptied "
                                    "between runs), scaled by 1/scale. Two errors of opposite sign: the "
                                    "run-major pass drains the batch once per run, which scaling overstates at full "
                                    "size; the scripts call generate once per task and run, whose drains are not counted",
                             **({"measured": measured} if measured else {})}}


def upstream_measured(ups: dict) -> dict | None:
    """The upstream way as run (--upstream-run): per script launch -> `LLM()` ready and its generate
    calls, summed over the scripts. At the scaled size each call is a batch of a few dozen requests
    that drains at once, so no full-size figure is derived from these (the estimate above is one)."""
    scripts = {name: r for u in ups.values() if u for name, r in u.items()}
    if not scripts:
        return None
    per, failed = {}, []
    for name, r in scripts.items():
        if "launch_to_done_s" not in r:
            failed.append(f"{name}: {r.get('error')}")
            continue
        per[name] = {k: r[k] for k in ("family", "launch_to_ready_s", "import_vllm_s", "llm_init_s", "request_s",
                                       "launch_to_done_s", "process_s", "requests", "new_tokens")}
        per[name]["calls"] = len(r["calls"])
    return {"scripts": len(per), "failed": failed, "per_script": per,
            "launch_to_done_s": round(sum(r["launch_to_done_s"] for r in per.values()), 1),
            "process_s": round(sum(r["process_s"] for r in per.values()), 1),
            "startup_s": round(sum(r["launch_to_ready_s"] for r in per.values()), 1),
            "request_s": round(sum(r["request_s"] for r in per.values()), 1),
            "how": "each benchmark script a fresh process, one after the other: launch, import vllm, LLM() with "
                   "flex's engine arguments, then one generate per task and run (caches emptied before each) on "
                   "the raw pass's own requests"}


def scale_of(t: dict) -> float:
    return t["items"] / t["items_full"]


def to_md(out: dict) -> str:
    s = out["summary"]
    m = out.get("machine", {})

    def v(x, unit=""):
        return "-" if x is None else f"{x}{unit}"

    lines = [f"# Suite benchmark (`benchmarks/suite_gpu.py`), {out['date']}", "",
             f"Machine: {m.get('device')} (copy {m.get('copy_GBps')} GB/s measured), vLLM {m.get('vllm')}, torch "
             f"{m.get('torch')}, Python {m.get('python')}; mode {s['mode']}, item counts x {s['scale']}"
             + (f" ({m['family_scale']})" if m.get("family_scale") else "") + ".", "",
             "| family | start-up | LLM() | start-up - LLM() | raw | flex | flex/raw | by pair | run-major | sharing x | "
             "decode/roofline | prefix hit (flex) | prefix hit (run-major) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for fam, f in s["families"].items():
        if not f.get("ok"):
            lines.append(f"| {fam} | failed: {f.get('error', '')[:80]} |")
            continue
        lines.append(f"| {fam} | {f['startup_s']} s | {f['raw_init_s']} s | {f['startup_minus_raw_init_s']} s | "
                     f"{f['raw_s']} s | {f['flex_s']} s | {f['flex_over_raw']} | "
                     f"{', '.join(map(str, f.get('flex_over_raw_by_pair', [])))} | {v(f['runmajor_s'], ' s')} | "
                     f"{v(f['share_speedup'])} | {f['decode_over_roofline']} | {f['prefix_cache_hit_rate']} | "
                     f"{v(f['runmajor_prefix_cache_hit_rate'])} |")
    warm = {fam: f["warm_startup"] for fam, f in s["families"].items() if f.get("warm_startup")}
    if warm:
        lines += ["", "Start-up again on warm compile caches, same session: flex (launch -> FlexJudge ready) and a "
                  "bare vLLM script (launch -> `LLM()` ready) with flex's engine arguments.", "",
                  "| family | flex start-up | its LLM() | flex - LLM() | script start-up | script import vllm | "
                  "script LLM() | flex - script |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for fam, w in warm.items():
            lines.append(f"| {fam} | failed: {w['error']} |" if "error" in w else
                         f"| {fam} | {w['flex_startup_s']} s | {w['flex_llm_init_s']} s | "
                         f"{w['flex_startup_minus_llm_init_s']} s | {w['script_launch_to_ready_s']} s | "
                         f"{w['script_import_vllm_s']} s | {w['script_llm_init_s']} s | {w['flex_minus_script_s']} s |")
    up = s.get("upstream_way")
    lines += ["", f"suite_s (measured, scaled) = {s['suite_s']} s; full suite extrapolated = "
              f"{s['suite_full_min_extrapolated']} min"
              + (f"; upstream way ({up['scripts']} scripts) estimated {up['estimated_s']} s scaled, "
                 f"{up['estimated_full_min']} min full" if up else " (no run-major pass: no upstream estimate)")
              + (f"; run ({mm['scripts']} processes): {mm['launch_to_done_s']} s scaled (start-ups {mm['startup_s']} s), "
                 f"requests {mm['request_s']} s." if up and (mm := up.get("measured")) else "."), "",
              "| task | items (full) | runs | requests run | prompt tok | new tok | flex s | full-suite min | "
              "prefix hit | run-major hit | encoder items / item (flex order) | (run-major) | media / item |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s["tasks"]:
        lines.append(f"| {r['task']} | {r['items']} ({r['items_full']}) | {r['runs']} | {r['requests']} | "
                     f"{r['mean_prompt_tokens']} | {r['mean_new_tokens']} | {r['flex_s']} | {r['flex_full_min']} | "
                     f"{r['prefix_hit_rate']} | {v(r.get('runmajor_prefix_hit_rate'))} | {r['encoder_items_per_item']} | "
                     f"{v(r.get('runmajor_encoder_items_per_item'))} | {r['media_items_per_item']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("gpu", "cpu"), default="gpu")
    ap.add_argument("--scale", type=float, default=None, help="item-count factor (gpu default 0.025, cpu 0.002)")
    ap.add_argument("--families", default="vl,omni")
    ap.add_argument("--tasks", default="", help="comma-separated subset of tasks (default: all of flex_all)")
    ap.add_argument("--cap", type=int, default=None, help="cap on new tokens per request (cpu default 4)")
    ap.add_argument("--max-model-len", type=int, default=None)
    ap.add_argument("--engine-args", default="", help="JSON of extra flex model_args for the engine (gpu)")
    ap.add_argument("--engine-defaults", default="", help="JSON merged into the flex model's GPU engine defaults")
    ap.add_argument("--passes", default="raw,flex,runmajor", help="which passes to run (raw, flex, runmajor)")
    ap.add_argument("--pairs", type=int, default=1, help="raw/flex pairs per engine, in ABBA order (pass_order)")
    ap.add_argument("--family-scale", default="", help="per-family --scale, e.g. omni=0.1 (the audio tasks' "
                    "passes are a few seconds at the VL scale: too short to time)")
    ap.add_argument("--warm-startup", action="store_true", help="after each family: its start-up again on warm "
                    "compile caches, flex (FlexJudge ready) then a bare vLLM script (gpu/raw_startup.py)")
    ap.add_argument("--workdir", default="/tmp/flexsuite")
    ap.add_argument("--ckpt-dir", default="", help="folder of prepared checkpoints <family>-<size>")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per family worker")
    ap.add_argument("--out-json", default=str(REPO / "benchmarks" / "suite_gpu_h200_results.json"))
    ap.add_argument("--out-md", default="")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--family", default="", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", default="", help=argparse.SUPPRESS)
    ap.add_argument("--t-launch", default="", help=argparse.SUPPRESS)
    ap.add_argument("--raw-first", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--hw", default="", help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sampler-bench", action="store_true", help="time vLLM's top-p kernel alone on flat and "
                    "peaked logits (GPU), write --out-json")
    ap.add_argument("--steplog", default="", help="log every engine step to this file and reduce it per pass "
                    "(benchmarks/gpu/steplog.py)")
    ap.add_argument("--profile-pass", default="", help="the passes to profile, comma-separated (py-spy "
                    "on the engine processes, the engine's torch profile if --torch-profile)")
    ap.add_argument("--upstream-run", action="store_true", help="also run the upstream way: one fresh process "
                    "per benchmark script (gpu/raw_startup.py --requests) on the same requests, after each family")
    ap.add_argument("--upstream-dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--pyspy-delay", type=float, default=25.0, help="seconds into the profiled pass py-spy starts")
    ap.add_argument("--pyspy-s", type=float, default=0.0, help="seconds of py-spy samples (0: none)")
    ap.add_argument("--torch-profile", default="", help="the engine's torch_profiler_dir (set the same dir in "
                    "--engine-defaults' profiler_config)")
    a = ap.parse_args(argv)
    if a.scale is None:
        a.scale = 0.025 if a.mode == "gpu" else 0.002
    if a.cap is None and a.mode == "cpu":
        a.cap = 4
    if a.max_model_len is None:
        a.max_model_len = 8192 if a.mode == "gpu" else 4096
    if a.probe:
        print(json.dumps(copy_bandwidth()))
        return 0
    if a.sampler_bench:
        Path(a.out_json).write_text(json.dumps(sampler_bench(), indent=1) + "\n")
        return 0
    if a.worker:
        res = worker(a)
        Path(a.out_json).write_text(json.dumps(res) + "\n")
        return 0

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    size = "7b" if a.mode == "gpu" else "tiny"
    parts = {}
    hw = {"copy_GBps": None}
    if a.mode == "gpu":  # in a process of its own: vLLM's engine process must find CUDA uninitialised
        probe = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--probe"], capture_output=True,
                               text=True, timeout=300, cwd=REPO)
        try:
            hw = json.loads(probe.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            print(f"suite: bandwidth probe failed: {probe.stderr[-800:]}", file=sys.stderr)
    fam_scale = {k: float(v) for k, v in (x.split("=") for x in a.family_scale.split(",") if x)}
    for n, fam in enumerate(a.families.split(",")):
        ckpt = Path(a.ckpt_dir) / f"{fam}-{size}" if a.ckpt_dir else make_checkpoint(fam, work / "ckpt", size)
        if not ckpt.exists():
            ckpt = make_checkpoint(fam, work / "ckpt", size)
        part_json = work / f"part_{fam}.json"
        part_json.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--mode", a.mode, "--family", fam,
               "--workdir", str(work),  # the worker's py-spy files go here (it has no other folder of its own)
               "--ckpt", str(ckpt), "--scale", str(fam_scale.get(fam, a.scale)), "--max-model-len", str(a.max_model_len),
               "--out-json", str(part_json), "--t-launch", "", "--raw-first", str(1 - n % 2),
               "--tasks", a.tasks, "--engine-args", a.engine_args, "--engine-defaults", a.engine_defaults,
               "--passes", a.passes, "--pairs", str(a.pairs), "--hw", json.dumps(hw), "--steplog", a.steplog and str(work / f"steps_{fam}.jsonl"),
               "--profile-pass", a.profile_pass, "--pyspy-delay", str(a.pyspy_delay), "--pyspy-s", str(a.pyspy_s),
               "--torch-profile", a.torch_profile, "--upstream-dir", str(work / f"upstream_{fam}") if a.upstream_run else ""]
        if a.cap:
            cmd += ["--cap", str(a.cap)]
        cmd[cmd.index("--t-launch") + 1] = repr(time.time())
        log = work / f"worker_{fam}.log"
        with open(log, "w") as fh:
            try:
                rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=a.timeout, cwd=REPO).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        if part_json.exists():
            parts[fam] = dict(json.loads(part_json.read_text()), ok=True)
        else:
            parts[fam] = {"ok": False, "error": f"worker rc={rc}: " + log.read_text()[-1500:]}
        print(f"suite: {fam} done (rc={rc})", flush=True)
        if a.upstream_run and parts[fam].get("ok"):  # the GPU is free again: one engine at a time
            parts[fam]["upstream"] = run_scripts(a, fam, ckpt, work / f"upstream_{fam}", work)
        if a.warm_startup and parts[fam].get("ok"):
            parts[fam]["warm_startup"] = warm_startup(a, fam, ckpt, cmd, work)
    summary = summarize(parts, a.scale, a.mode)
    first = next((p for p in parts.values() if p.get("ok")), {})
    machine = dict(first.get("versions", {}), device=first.get("hw", {}).get("device") or platform.processor() or "cpu",
                   copy_GBps=first.get("hw", {}).get("copy_GBps"), cores=os.cpu_count(), family_scale=a.family_scale,
                   kind=os.environ.get("FLEXBENCH_MACHINE", ""))
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine, "summary": summary,
           "workload": {"suite": [dict(task=t[0], family=t[1], items=t[2], source=t[3], fields=t[4], media=t[5])
                                  for t in SUITE], "output_lengths_median": OUTPUT_LENGTHS, "sigma": SIGMA},
           "parts": {k: {kk: vv for kk, vv in v.items() if kk != "reqs"} for k, v in parts.items()}}
    Path(a.out_json).write_text(json.dumps(out, indent=1) + "\n")
    if a.out_md and "suite_s" in summary:
        Path(a.out_md).write_text(to_md(out))
    print(json.dumps({k: summary.get(k) for k in ("suite_s", "suite_full_min_extrapolated", "flex_over_raw")}))
    print(json.dumps({k: v for k, v in (summary.get("upstream_way") or {}).items() if k != "how"}))
    return 0 if all(p.get("ok") for p in parts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
