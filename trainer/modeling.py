"""Model families: detection, loading with frozen towers, the text-only loss module, export.

Text-only SFT touches only the language model (embeddings, decoder layers, final norm, lm_head).
The vision tower (incl. its merger) and, for Omni, the audio tower are frozen and kept OUT of the
trained module entirely: no gradient, no optimizer state, not sharded by FSDP.

  vl   : Qwen2_5_VLForConditionalGeneration      trained: .model.language_model + .lm_head
  omni : Qwen2_5OmniThinkerForConditionalGeneration (loaded from the full Omni checkpoint)
                                                  trained: .model + .lm_head; exported back into
                                                  the full Qwen2_5OmniForConditionalGeneration files
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from flex_models.family import FAMILY, family_of, read_config
from trainer.config import ConfigError


WEIGHT_FILES = (".safetensors", ".bin", ".pt.index.json", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def detect_family(model: str, family: str = "auto") -> str:
    """From config.json's model_type, never from the name (flex_models.family, the one family table)."""
    found = family_of(read_config(model), model)
    if family != "auto" and family != found:
        raise ConfigError(f"config key 'family' is {family!r} but {model} is a {FAMILY[found].title} checkpoint ({found})")
    return found


# ---------------------------------------------------------------- varlen attention (packed rows)
def _varlen_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal attention inside each packed sample. q/k/v: (1, heads, L, d) -> (1, L, heads, d)."""
    cu, max_len = kwargs["cu_seq_lens_q"], kwargs["max_length_q"]
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (L, heads, d)
    if query.is_cuda:
        from torch.nn.attention.varlen import varlen_attn

        if torch.is_autocast_enabled("cuda"):  # rotary output is fp32 under autocast; flash wants bf16
            dt = torch.get_autocast_dtype("cuda")
            q, k, v = q.to(dt), k.to(dt), v.to(dt)
        if q.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError("attn_implementation 'varlen' needs bf16/fp16 (precision: bf16); use sdpa for fp32")

        params = _varlen_params()
        if "enable_gqa" not in params and k.shape[1] != q.shape[1] and not _GQA_NATIVE.get("ok"):
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        extra = {"enable_gqa": True} if "enable_gqa" in params else {}
        extra.update({"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True})
        out = varlen_attn(q, k, v, cu, cu, max_len, max_len, scale=scaling, **extra)
    else:  # reference path (CPU): one causal sdpa call per sample
        outs = []
        bounds = cu.tolist()
        for a, b in zip(bounds[:-1], bounds[1:]):
            outs.append(F.scaled_dot_product_attention(
                q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1),
                is_causal=True, scale=scaling, enable_gqa=True).transpose(0, 1))
        out = torch.cat(outs)
    return out.unsqueeze(0), None


_GQA_NATIVE: dict = {}  # {"ok": bool} once probed on this process's GPU


def _varlen_params():
    if "params" not in _GQA_NATIVE:
        from torch.nn.attention.varlen import varlen_attn

        _GQA_NATIVE["params"] = tuple(inspect.signature(varlen_attn).parameters)
    return _GQA_NATIVE["params"]


def probe_native_gqa(device, dtype=torch.bfloat16) -> bool:
    """Does this torch's varlen_attn (flash backend) take fewer K/V heads than Q heads without
    enable_gqa (the flash kernel supports GQA natively)? Checked once, eagerly, against the
    repeat_interleave reference (forward and backward); the K/V repeat is skipped only if equal."""
    if "ok" in _GQA_NATIVE:
        return _GQA_NATIVE["ok"]
    from torch.nn.attention.varlen import varlen_attn

    params = _varlen_params()
    extra = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    ok = False
    if "enable_gqa" not in params:
        try:
            g = torch.Generator(device=device).manual_seed(0)
            q = torch.randn(96, 4, 64, device=device, dtype=dtype, generator=g, requires_grad=True)
            kv = [torch.randn(96, 2, 64, device=device, dtype=dtype, generator=g, requires_grad=True) for _ in range(2)]
            cu = torch.tensor([0, 40, 96], device=device, dtype=torch.int32)
            out = varlen_attn(q, kv[0], kv[1], cu, cu, 56, 56, **extra)
            grads = torch.autograd.grad(out.float().square().sum(), [q, *kv])
            ref_kv = [t.detach().repeat_interleave(2, dim=1).requires_grad_(True) for t in kv]
            qr = q.detach().requires_grad_(True)
            ref = varlen_attn(qr, ref_kv[0], ref_kv[1], cu, cu, 56, 56, **extra)
            rg = torch.autograd.grad(ref.float().square().sum(), [qr, *ref_kv])
            rg = [rg[0]] + [t.unflatten(1, (2, 2)).sum(2) for t in rg[1:]]
            ok = torch.allclose(out, ref, atol=1e-2, rtol=1e-2) and all(
                torch.allclose(a.float(), b.float(), atol=5e-2, rtol=5e-2) for a, b in zip(grads, rg))
        except Exception:  # noqa: BLE001 - any refusal means: keep repeating K/V
            ok = False
    _GQA_NATIVE["ok"] = ok
    return ok


def _register_varlen():
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register("flex_varlen", _varlen_attention)
    AttentionMaskInterface.register("flex_varlen", lambda *args, **kwargs: None)


# ---------------------------------------------------------------- the trained module
class TextLM(nn.Module):
    """decoder + lm_head; forward returns the SUM of next-token cross-entropy over target tokens.
    lm_head runs only on target positions, `chunk` tokens at a time (recomputed in backward),
    so full-vocabulary logits for the whole row are never held."""

    def __init__(self, decoder: nn.Module, lm_head: nn.Module, chunk: int = 4096, varlen: bool = False):
        super().__init__()
        self.decoder, self.lm_head, self.chunk, self.varlen = decoder, lm_head, chunk, varlen

    def forward(self, input_ids, targets, position_ids, cu_seqlens, max_seqlen):
        pos = position_ids.unsqueeze(0).expand(4, *position_ids.shape)  # text + 3 mrope axes
        extra = {}
        if self.varlen:
            if input_ids.is_cuda:
                probe_native_gqa(input_ids.device)
            extra = dict(cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens,
                         max_length_q=max_seqlen, max_length_k=max_seqlen)
        hidden = self.decoder(input_ids=input_ids, position_ids=pos, attention_mask=None,
                              use_cache=False, **extra).last_hidden_state
        keep = targets != -100
        h, y = hidden[keep], targets[keep]
        total = hidden.new_zeros((), dtype=torch.float32)
        for hs, ys in zip(h.split(self.chunk), y.split(self.chunk)):
            total = total + torch.utils.checkpoint.checkpoint(self._ce, hs, ys, use_reentrant=False)
        return total

    def _ce(self, h, y):
        return F.cross_entropy(self.lm_head(h).float(), y, reduction="sum")


def load_for_training(model: str, family: str, attn: str = "sdpa", dtype=torch.float32,
                      gradient_checkpointing: bool = True, chunk: int = 4096, checkpoint_layers: int = -1,
                      compile_layers: bool = False):
    """-> (full, TextLM). `full` is the loaded HF model (VL) or thinker (Omni)."""
    import transformers

    impl = attn
    if attn == "varlen":
        _register_varlen()
        impl = "flex_varlen"
    cls = getattr(transformers, FAMILY[family].model_class)
    full = cls.from_pretrained(model, dtype=dtype, attn_implementation=impl)
    return full, wrap(full, family, attn, gradient_checkpointing, chunk, checkpoint_layers, compile_layers)


def wrap(full, family: str, attn: str = "sdpa", gradient_checkpointing: bool = True, chunk: int = 4096,
         checkpoint_layers: int = -1, compile_layers: bool = False) -> TextLM:
    decoder = full.model.language_model if family == "vl" else full.model
    full.requires_grad_(False)
    full.config.use_cache = False
    lm = TextLM(decoder, full.lm_head, chunk=chunk, varlen=attn == "varlen")
    lm.requires_grad_(True)
    if gradient_checkpointing:
        decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        set_checkpoint_layers(lm, checkpoint_layers)
    if compile_layers:
        for layer in decoder.layers:
            layer.compile(dynamic=True)
    return lm


def set_checkpoint_layers(lm: TextLM, n: int = -1) -> int:
    """Selective activation checkpointing: the first `n` decoder layers recompute their forward
    in backward, the others keep their activations (-1 = all). Same math; memory for speed.
    Returns how many layers now recompute."""
    layers = lm.decoder.layers
    n = len(layers) if n < 0 else min(n, len(layers))
    for i, layer in enumerate(layers):
        layer.gradient_checkpointing = i < n
    return n


def frozen_modules(full, family: str) -> dict[str, nn.Module]:
    if family == "vl":
        return {"visual": full.model.visual}
    return {"visual": full.visual, "audio_tower": full.audio_tower}


def flops_per_token(cfg_text, n_tokens_seq: float) -> tuple[float, float]:
    """Training FLOPs (forward + backward = 3x forward) per trained-on token, excluding the
    recomputation of gradient checkpointing (model FLOPs, not hardware FLOPs):
      body  = 6 * N_layers_params + 6 * 2 * n_layers * hidden * avg_causal_context   (per token)
      head  = 6 * hidden * vocab                                                      (per target token)
    N_layers_params = n_layers * (attn q,k,v,o + mlp gate,up,down); embeddings are a lookup.
    Causal attention: QK^T and AV each 2*hidden*context forward FLOPs, avg context = L/2 -> use
    E[L^2]/(2 E[L]) per token (n_tokens_seq) as the effective context."""
    h, i, n = cfg_text.hidden_size, cfg_text.intermediate_size, cfg_text.num_hidden_layers
    kv = cfg_text.num_key_value_heads * (h // cfg_text.num_attention_heads)
    per_layer = h * h * 2 + 2 * h * kv + 3 * h * i
    body = 6 * n * per_layer + 6 * 2 * n * h * n_tokens_seq
    head = 6 * h * cfg_text.vocab_size
    return body, head


def text_config(full, family: str):
    return full.config.text_config


# ---------------------------------------------------------------- export
def _copy_side_files(src: Path, dst: Path):
    """Tokenizer, processor, chat template, generation config, spk_dict ...: everything that is
    not a weight file or written already."""
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(WEIGHT_FILES) and not (dst / f.name).exists():
            shutil.copy2(f, dst / f.name)


def local_dir(model: str) -> Path:
    if Path(model).is_dir():
        return Path(model)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model))


def export(full, family: str, source: str, out_dir: Path, state: dict | None = None):
    """Write a loadable HF checkpoint to out_dir. `state`: TextLM state dict gathered from a
    sharded run (FSDP / ZeRO-3); None when `full` holds the trained weights already."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = local_dir(source)
    if state is not None:
        decoder = full.model.language_model if family == "vl" else full.model
        lm = TextLM(decoder, full.lm_head)
        missing, unexpected = lm.load_state_dict(state, strict=False)
        if unexpected or [m for m in missing if not m.startswith("lm_head") or not _tied(full)]:
            raise RuntimeError(f"gathered state does not match the model: missing {missing}, unexpected {unexpected}")
    save_dtype = getattr(torch, str(_source_dtype(src)).replace("torch.", ""), torch.float32)
    if family == "vl":
        full.to(save_dtype).save_pretrained(out_dir)
    else:
        _merge_thinker(full.to(save_dtype), src, out_dir)
    _copy_side_files(src, out_dir)
    return out_dir


def _tied(full) -> bool:
    return bool(getattr(full.config, "tie_word_embeddings", False) or
                getattr(full.config.get_text_config(), "tie_word_embeddings", False))


def _source_dtype(src: Path) -> str:
    cfg = json.loads((src / "config.json").read_text())
    for c in (cfg, cfg.get("thinker_config", {}), cfg.get("text_config", {})):
        d = c.get("dtype") or c.get("torch_dtype")
        if d:
            return d
    return "float32"


def _merge_thinker(thinker, src: Path, out_dir: Path):
    """Replace the thinker.* tensors of the full Omni checkpoint by the trained thinker's,
    keeping shards, other tensors (talker, token2wav) and metadata byte-for-byte in layout."""
    from safetensors.torch import load_file, save_file

    tmp = out_dir / ".thinker-tmp"
    thinker.save_pretrained(tmp)  # disk-format key names, as transformers writes them
    trained = {}
    for f in sorted(tmp.glob("*.safetensors")):
        trained.update({"thinker." + k: v for k, v in load_file(f).items()})
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"{src}: the Omni export needs safetensors shards of the full model")
    seen = set()
    for shard in shards:
        tensors = load_file(shard)
        for k in tensors:
            if k in trained:
                if trained[k].shape != tensors[k].shape:
                    raise RuntimeError(f"{k}: trained shape {tuple(trained[k].shape)} != checkpoint {tuple(tensors[k].shape)}")
                tensors[k] = trained[k].to(tensors[k].dtype).contiguous()
                seen.add(k)
        save_file(tensors, out_dir / shard.name, metadata={"format": "pt"})
    src_thinker = {k for s in shards for k in _keys(s) if k.startswith("thinker.")}
    missing = sorted((set(trained) - seen)) + sorted(src_thinker - set(trained))
    if missing:
        raise RuntimeError(f"thinker keys differ between the trained thinker and {src}: {missing[:8]} ...")
    for f in src.glob("*.index.json"):
        shutil.copy2(f, out_dir / f.name)
    shutil.copy2(src / "config.json", out_dir / "config.json")
    shutil.rmtree(tmp)


def _keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        return list(f.keys())


def fsync_tree(path: Path):
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())
        fd = os.open(root, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
