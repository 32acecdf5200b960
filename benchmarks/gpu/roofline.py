"""Roofline of Qwen2.5-VL-shaped judging on one GPU: pure arithmetic over the model's shapes.

Decode (one step generates one token for each of `batch` sequences) is bounded by
  bytes/step = streamed weights (decoder layers + lm_head, bf16; embeddings are a row gather)
             + KV cache read (batch x mean context x kv_bytes_per_token)
  flops/step = 2 x (decoder + lm_head params) x batch + attention (4 x heads x head_dim x context x layers x batch)
and step time >= max(bytes / HBM bandwidth, flops / dense bf16 rate).
The whole job (prefill + vision encoder + decode) gets the same treatment: prefill and the vision
tower at the compute rate, every decode step at its own bound.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

HBM_NOMINAL = 3.35e12  # H100 SXM datasheet, bytes/s
HBM_MEASURED = 3.0e12  # device-to-device copy on the lent H100 (KINDS.md), bytes/s
BF16_DENSE = 989e12  # H100 SXM dense bf16, FLOP/s
BYTES = 2  # bf16


@dataclass
class Shapes:
    decoder_params: int  # transformer layers + final norm (no embeddings, no lm_head)
    lm_head_params: int
    embed_params: int
    vision_params: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vision_patch: int = 14
    vision_merge: int = 2

    @property
    def kv_bytes_per_token(self) -> int:
        return self.layers * 2 * self.kv_heads * self.head_dim * BYTES

    @property
    def streamed_bytes(self) -> int:
        return (self.decoder_params + self.lm_head_params) * BYTES


def shapes_from_config(cfg, counts: dict) -> Shapes:
    """cfg: a transformers Qwen2_5_VLConfig; counts: params by part (see count_params)."""
    t = cfg.text_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    return Shapes(decoder_params=counts["decoder"], lm_head_params=counts["lm_head"],
                  embed_params=counts["embed"], vision_params=counts["vision"],
                  layers=t.num_hidden_layers, heads=t.num_attention_heads,
                  kv_heads=t.num_key_value_heads, head_dim=head_dim,
                  vision_patch=cfg.vision_config.patch_size,
                  vision_merge=cfg.vision_config.spatial_merge_size)


def count_params(model) -> dict:
    """Parameters of a Qwen2.5-VL model (meta device is fine) split into the parts above."""
    out = {"vision": 0, "embed": 0, "lm_head": 0, "decoder": 0}
    for name, p in model.named_parameters():
        n = p.numel()
        if ".visual." in f".{name}" or name.startswith("visual."):
            out["vision"] += n
        elif "embed_tokens" in name:
            out["embed"] += n
        elif name.startswith("lm_head"):
            out["lm_head"] += n
        else:
            out["decoder"] += n
    return out


def decode_step(s: Shapes, batch: int, context: float, bw: float, peak: float = BF16_DENSE) -> dict:
    bytes_ = s.streamed_bytes + batch * context * s.kv_bytes_per_token
    flops = 2 * (s.decoder_params + s.lm_head_params) * batch \
        + 4 * s.heads * s.head_dim * context * s.layers * batch
    t_mem, t_cmp = bytes_ / bw, flops / peak
    t = max(t_mem, t_cmp)
    return {"bytes": bytes_, "flops": flops, "t_mem_s": t_mem, "t_compute_s": t_cmp,
            "bound": "memory" if t_mem >= t_cmp else "compute", "tokens_per_s": batch / t}


def decode_roofline(s: Shapes, batch: int, prompt_tokens: float, out_tokens: int, bw: float,
                    peak: float = BF16_DENSE) -> dict:
    """Decode tokens/s bound at `batch`, at the mean context over the generation."""
    mean_ctx = prompt_tokens + (out_tokens + 1) / 2
    step = decode_step(s, batch, mean_ctx, bw, peak)
    return {"batch": batch, "mean_context": mean_ctx, **step}


def job_roofline(s: Shapes, n: int, batch: int, prompt_tokens: float, out_tokens: int,
                 image_side: int, bw: float, peak: float = BF16_DENSE) -> dict:
    """Lower bound on the wall time of n judgments run `batch` at a time (prefill at the compute
    rate; each decode step at its own bound)."""
    patches = (image_side // s.vision_patch) ** 2
    vision_flops = 2 * s.vision_params * patches * n
    prefill_flops = 2 * (s.decoder_params + s.lm_head_params / max(prompt_tokens, 1)) * prompt_tokens * n \
        + 2 * s.heads * s.head_dim * prompt_tokens ** 2 * s.layers * n
    t_prefill = (vision_flops + prefill_flops) / peak
    t_decode = 0.0
    waves = -(-n // batch)
    for w in range(waves):
        b = min(batch, n - w * batch)
        for k in range(1, out_tokens):  # token 0 comes from the prefill
            t = decode_step(s, b, prompt_tokens + k, bw, peak)
            t_decode += max(t["t_mem_s"], t["t_compute_s"])
    t = t_prefill + t_decode
    return {"t_prefill_s": t_prefill, "t_decode_s": t_decode, "t_total_s": t,
            "judgments_per_s": n / t, "out_tokens_per_s": n * out_tokens / t}


def as_dict(s: Shapes) -> dict:
    d = asdict(s)
    d.update(kv_bytes_per_token=s.kv_bytes_per_token, streamed_bytes=s.streamed_bytes)
    return d
