"""Checkpoints for the inference benchmark.

- smoke: `flex_models.tiny.make_tiny("vl", dir)` as is (random tiny weights, CPU-friendly).
- 7b: the same tokenizer / processor / chat template / special-token ids, with the released
  Qwen2.5-VL-7B (= Flex-VL-7B) shapes patched into config.json, the image processor opened up to
  Qwen's pixel limits (a 448x448 image -> 256 tokens) and random bf16 weights written by
  transformers (~16.6 GB; on the GPU's host disk, built where it runs, never carried).
The flex model has no `load_format=dummy` switch, so weights must exist on disk.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

TEXT_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
               max_window_layers=28)
MROPE_7B = [16, 24, 24]
VISION_7B = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                 spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=3584,
                 fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2)
QWEN_PIXELS = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384}  # Qwen2.5-VL defaults
MARKER = "flexbench_ckpt.json"


def _patch_7b_config(d: Path) -> None:
    p = d / "config.json"
    cfg = json.loads(p.read_text())
    text = cfg["text_config"]
    text.update(TEXT_7B)
    text.pop("layer_types", None)  # re-derived from num_hidden_layers
    rope = text.get("rope_parameters") or {}
    rope.update(mrope_section=MROPE_7B, rope_theta=1e6)
    text["rope_parameters"] = rope
    cfg["vision_config"].update(VISION_7B)
    cfg["dtype"] = "bfloat16"
    text["dtype"] = "bfloat16"
    p.write_text(json.dumps(cfg, indent=2) + "\n")
    open_pixel_limits(d)


def open_pixel_limits(d: Path) -> None:
    """The tiny checkpoint's image / video processors opened up to Qwen's own pixel limits (the
    inference and suite benchmarks' 7B-shaped checkpoints)."""
    proc = d / "processor_config.json"
    pc = json.loads(proc.read_text())
    for key in ("image_processor", "video_processor"):
        if key in pc:
            pc[key]["size"] = dict(QWEN_PIXELS)
            pc[key].pop("min_pixels", None)
            pc[key].pop("max_pixels", None)
    proc.write_text(json.dumps(pc, indent=2) + "\n")


def write_random_weights(d: Path, seed: int = 0) -> dict:
    """Random bf16 weights of the config in `d`, built on the GPU when there is one."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    cfg = AutoConfig.from_pretrained(d)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(dev):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    t1 = time.perf_counter()
    model.save_pretrained(d, max_shard_size="4GB")
    t2 = time.perf_counter()
    n = sum(p.numel() for p in model.parameters())
    del model
    if dev == "cuda":
        torch.cuda.empty_cache()
    return {"params": n, "init_s": round(t1 - t0, 2), "save_s": round(t2 - t1, 2), "device": dev}


def build(kind: str, root: Path, weights: bool = True) -> Path:
    """kind "tiny" | "7b" -> checkpoint dir under root. A complete dir is reused; a 7b dir
    prepared without weights (e.g. built on the CPU machine and carried) only gets its weights."""
    d = Path(root) / f"ckpt-{kind}"
    marker = d / MARKER
    if kind not in ("tiny", "7b"):
        raise ValueError(f"checkpoint kind {kind!r}; allowed: tiny, 7b")
    if not marker.exists():
        from flex_models.tiny import make_tiny

        make_tiny("vl", d)
        info: dict = {"kind": kind, "weights": True}
        if kind == "7b":
            for f in d.glob("*.safetensors"):
                f.unlink()
            _patch_7b_config(d)
            info["weights"] = False
        marker.write_text(json.dumps(info) + "\n")
    info = json.loads(marker.read_text())
    if weights and not info.get("weights"):
        info.update(write_random_weights(d), weights=True)
        marker.write_text(json.dumps(info) + "\n")
    return d


def meta_shapes(d: Path):
    """(config, params-by-part) of the checkpoint in `d`, instantiated on the meta device."""
    import sys

    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    sys.path.insert(0, str(Path(__file__).parent))
    import roofline

    cfg = AutoConfig.from_pretrained(d)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    return cfg, roofline.count_params(model)
