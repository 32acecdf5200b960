"""Text SFT data: jsonl {prompt, text} -> completion-only samples -> packed micro-batches.

Labels: every prompt token is masked. Prompts are chat-templated and end in
'<|im_start|>assistant\\n<think>\\n', so the assistant header and the '<think>\\n' prefix are
masked and only the reasoning + answer (+ '<|im_end|>') is trained on.

Packing: a micro-batch is `per_device_batch` samples concatenated into one row with positions
restarting at 0 per sample and no padding; attention never crosses samples (block-diagonal
causal mask for sdpa, cu_seqlens for varlen attention).

Order: sample order is a seeded permutation per epoch; optimizer step k takes the next
per_device_batch * grad_accum * world_size samples, so the same step sees the same samples
whatever the split into micro-batches / ranks, and `--resume` at step k sees the same data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from flex_models import jsonl
from flex_models.errors import FlexJudgeError

ASSISTANT_HEADER = "<|im_start|>assistant\n"
EOS = "<|im_end|>"
IGNORE = -100


@dataclass
class Sample:
    input_ids: list[int]
    n_prompt: int  # tokens 0..n_prompt-1 are masked
    line: int  # 1-based line in the jsonl (0 for synthetic data)

    @property
    def n_target(self) -> int:
        return len(self.input_ids) - self.n_prompt


class BadRowsError(FlexJudgeError, ValueError):
    pass


def encode_row(row, tokenizer, max_length: int, append_eos: bool = True) -> Sample | str:
    """One row (a parsed JSON line) -> Sample, or a string saying why the row is bad."""
    if not isinstance(row, dict):
        return "row is not a JSON object"
    for key in ("prompt", "text"):
        if not isinstance(row.get(key), str):
            return f"missing or non-string field '{key}'"
    prompt, text = row["prompt"], row["text"]
    if ASSISTANT_HEADER not in prompt:
        return f"prompt has no assistant header {ASSISTANT_HEADER!r}"
    if not text.strip():
        return "empty completion 'text'"
    if append_eos and not text.endswith(EOS):
        text = text + EOS
    enc = tokenizer(prompt + text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    cut = len(prompt)
    n_prompt = sum(1 for start, _ in offsets if start < cut)
    if any(start < cut < end for start, end in offsets):
        return "a token straddles the prompt/completion boundary"
    if len(ids) > max_length:
        return f"{len(ids)} tokens > max_length {max_length}"
    if n_prompt >= len(ids):
        return "completion is empty after tokenization"
    return Sample(ids, n_prompt, 0)


def load_samples(path: str | Path, tokenizer, max_length: int, bad_rows: str = "error",
                 append_eos: bool = True, log=print) -> list[Sample]:
    """Encode every row; bad rows are reported with line numbers and stop the run (or, with
    bad_rows='skip', are reported and left out)."""
    samples, bad = [], []
    for ln in jsonl.read(path, whole_file=True):  # a line that is not UTF-8 or not JSON: its error
        out = encode_row(ln.value, tokenizer, max_length, append_eos) if ln.ok else ln.error
        if isinstance(out, str):
            bad.append((ln.line, out))
        else:
            out.line = ln.line
            samples.append(out)
    if bad:
        report = "\n".join(f"  {path}:{line}: {why}" for line, why in bad)
        if bad_rows == "error":
            raise BadRowsError(f"{len(bad)} bad row(s) in {path} (set bad_rows: skip to leave them out):\n{report}")
        log(f"[data] skipping {len(bad)} bad row(s) of {len(bad) + len(samples)} in {path}:\n{report}")
    if not samples:
        raise BadRowsError(f"no usable rows in {path}")
    return samples


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=g).tolist()


def steps_per_epoch(n: int, per_device_batch: int, grad_accum: int, world: int) -> int:
    per_step = per_device_batch * grad_accum * world
    return -(-n // per_step)


def step_micro_batches(samples: list[Sample], order: list[int], step_in_epoch: int,
                       per_device_batch: int, grad_accum: int, world: int) -> list[list[Sample]]:
    """The grad_accum * world micro-batches of one optimizer step, index a * world + rank.

    A short last step spreads its samples as evenly as possible; an empty micro-batch (possible
    only in that step) is returned as [] and becomes a zero-weight dummy."""
    per_step = per_device_batch * grad_accum * world
    idx = order[step_in_epoch * per_step:(step_in_epoch + 1) * per_step]
    n_mb = grad_accum * world
    if len(idx) == per_step:
        chunks = [idx[i * per_device_batch:(i + 1) * per_device_batch] for i in range(n_mb)]
    else:
        q, r = divmod(len(idx), n_mb)
        chunks, start = [], 0
        for i in range(n_mb):
            size = q + (1 if i < r else 0)
            chunks.append(idx[start:start + size])
            start += size
    return [[samples[i] for i in chunk] for chunk in chunks]


def pack(batch: list[Sample], dummy: Sample | None = None) -> dict:
    """Concatenate samples into one row: input_ids, next-token targets (IGNORE on prompt tokens
    and at each sample's last position), restarting positions and cu_seqlens."""
    weight = 1.0
    if not batch:
        batch, weight = [dummy], 0.0
    ids, targets, pos, cu = [], [], [], [0]
    for s in batch:
        n = len(s.input_ids)
        ids += s.input_ids
        t = s.input_ids[1:] + [IGNORE]
        t = [IGNORE if i + 1 < s.n_prompt else t[i] for i in range(n)]
        targets += t
        pos += list(range(n))
        cu.append(cu[-1] + n)
    return {
        "input_ids": torch.tensor([ids]),
        "targets": torch.tensor([targets]),
        "position_ids": torch.tensor([pos]),
        "cu_seqlens": torch.tensor(cu, dtype=torch.int32),
        "max_seqlen": max(len(s.input_ids) for s in batch),
        "n_target": sum(s.n_target for s in batch) if weight else 0,
        "weight": weight,
    }
