"""transformers backend: batched, left-padded `generate` with the checkpoint's processor.

VL: Qwen2_5_VLForConditionalGeneration. Omni: Qwen2_5OmniThinkerForConditionalGeneration loaded
from the full checkpoint (the full model's generate with audio output off crashes in 5.19).
Greedy requests (and unseeded sampled ones with equal settings) share batches; a seeded
sampled request runs alone, seeded with `torch.manual_seed(seed)` right before `generate`.
"""
from __future__ import annotations

import logging

from tqdm import tqdm

from flex_models.media import video_metadata
from flex_models.family import FAMILY
from flex_models.requests import Output, Prepared, cut_at_stop

log = logging.getLogger("flex_models")



def torch_dtype(name: str):
    import torch

    return {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[name]


class HFBackend:
    name = "hf"

    def __init__(self, args, checkpoint):
        import torch
        import transformers
        from transformers import AutoProcessor

        self.args, self.family = args, checkpoint.family
        torch.manual_seed(args.seed)  # engine-level seed for requests the task does not seed
        cls = getattr(transformers, FAMILY[checkpoint.family].model_class)
        kw = dict(dtype=torch_dtype(args.dtype), trust_remote_code=args.trust_remote_code)
        if args.attn_implementation:
            kw["attn_implementation"] = args.attn_implementation
        if args.device_map:
            kw["device_map"] = args.device_map
        self.model = cls.from_pretrained(args.pretrained, **kw).eval()
        if not args.device_map:
            device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
            if device.startswith("cuda") and not torch.cuda.is_available():
                # lm-eval passes --device cuda by default; on a CPU-only machine run on CPU
                log.warning("flex: device=%s requested but CUDA is not available; using cpu", device)
                device = "cpu"
            self.model.to(device)
        self.device = next(self.model.parameters()).device
        self.processor = AutoProcessor.from_pretrained(args.pretrained, trust_remote_code=args.trust_remote_code)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids = set()
        for src in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if src is not None:
                ids.update(src if isinstance(src, (list, tuple)) else [src])
        return sorted(ids)

    def _inputs(self, batch: list[Prepared]):
        kw: dict = {}
        images = [im for p in batch for im in p.media.get("image", [])]
        videos = [v for p in batch for v in p.media.get("video", [])]
        audio = [a for p in batch for a in p.media.get("audio", [])]
        if images:
            kw["images"] = images
        if videos:
            kw["videos"] = [frames for frames, _ in videos]
            kw["video_metadata"] = [video_metadata(m) for _, m in videos]
            kw["do_sample_frames"] = False  # frames were sampled at the protocol fps already
        if audio:
            kw["audio"] = audio
        inputs = self.processor(text=[p.prompt for p in batch], padding=True, return_tensors="pt", **kw)
        return inputs.to(self.device)

    def _generate_batch(self, batch: list[Prepared]) -> list[Output]:
        import torch

        spec = batch[0].spec
        inputs = self._inputs(batch)
        gen = dict(max_new_tokens=spec.max_new_tokens, num_return_sequences=spec.n,
                   eos_token_id=None if spec.ignore_eos else self.eos_ids,
                   pad_token_id=self.tokenizer.pad_token_id)
        if spec.min_new_tokens:
            gen["min_new_tokens"] = spec.min_new_tokens
        if spec.greedy:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            gen.update(do_sample=True, temperature=spec.temperature, top_p=spec.top_p,
                       top_k=spec.top_k if spec.top_k > 0 else None)
            if spec.seed is not None:
                torch.manual_seed(spec.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen)
        prompt_len = inputs["input_ids"].shape[1]
        new = out[:, prompt_len:].tolist()
        results = []
        for i, p in enumerate(batch):
            ids_n, texts = [], []
            for seq in new[i * spec.n:(i + 1) * spec.n]:
                seq = _strip_after_eos(seq, self.eos_ids, self.tokenizer.pad_token_id)
                text = self.tokenizer.decode(seq, skip_special_tokens=True)
                ids_n.append(seq)
                texts.append(cut_at_stop(text, p.spec.stop, p.spec.include_stop))
            n_prompt = int(inputs["attention_mask"][i].sum())
            results.append(Output(texts=texts, token_ids=ids_n, prompt_tokens=n_prompt))
        return results

    def generate(self, prepared: list[Prepared], progress: bool = True) -> list[Output]:
        groups: dict = {}
        for i, p in enumerate(prepared):
            groups.setdefault(p.spec.sampling_key(), []).append(i)
        batches = []
        for key, idx in groups.items():
            # A seeded sampled request runs alone so its sample depends only on its seed, not on
            # its batch neighbours (rows of one batch draw from one RNG stream).
            seeded = key[0] == "sample" and key[-1] is not None
            bs = 1 if seeded else max(1, self.args.batch_size)
            batches += [idx[j:j + bs] for j in range(0, len(idx), bs)]
        out: list = [None] * len(prepared)
        for idx in tqdm(batches, desc="flex (transformers)", disable=not progress):
            for i, res in zip(idx, self._generate_batch([prepared[i] for i in idx])):
                out[i] = res
        return out


def _strip_after_eos(seq: list[int], eos_ids: list[int], pad_id) -> list[int]:
    """Generated ids up to and including the first EOS (later ids are padding)."""
    for j, t in enumerate(seq):
        if t in eos_ids:
            return seq[: j + 1]
    while seq and pad_id is not None and seq[-1] == pad_id and pad_id not in eos_ids:
        seq = seq[:-1]
    return seq
