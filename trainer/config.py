"""Training configuration: one dataclass, YAML defaults, strict `--key value` overrides.

Unknown keys and values of the wrong type are errors that name the key (nanoGPT's configurator
strictness, without its `exec`). The resolved config is saved beside every checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    # --- what to train --------------------------------------------------------------------
    model: str = ""  # local checkpoint dir or hub id (Qwen2.5-VL or full Qwen2.5-Omni)
    family: str = "auto"  # auto | vl | omni  (auto: read config.json model_type, never the name)
    train_file: str = ""  # jsonl rows {"prompt": ..., "text": ...}
    output_dir: str = "runs/flex-judge"
    # --- data -----------------------------------------------------------------------------
    max_length: int = 4096  # prompt + completion tokens; longer rows are bad rows
    bad_rows: str = "error"  # error: report rows with line numbers and stop | skip: report, drop, go on
    append_eos: bool = True  # end every completion with <|im_end|> so the judge learns to stop
    # --- optimisation (Flex-Judge recipe, protocols.json training_recipe) -----------------
    epochs: int = 1
    max_steps: int = -1  # > 0: stop after this many optimizer steps (overrides epochs)
    per_device_batch: int = 2  # samples per micro-batch; they are packed into one row, no padding
    grad_accum: int = 4
    learning_rate: float = 1e-5
    min_lr_ratio: float = 0.0
    scheduler: str = "cosine"  # cosine | linear | constant (all after linear warmup)
    warmup_ratio: float = 0.05
    weight_decay: float = 1e-4
    adam_betas: list = field(default_factory=lambda: [0.9, 0.95])
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0  # 0 disables clipping
    precision: str = "bf16"  # bf16: bf16 compute (see param_dtype) | fp32
    gradient_checkpointing: bool = True
    checkpoint_layers: int = -1  # with gradient_checkpointing: only the first N decoder layers recompute (-1 = all)
    # auto: bf16 when precision is bf16 on CUDA without FSDP/DeepSpeed, else fp32. bf16: the model's
    # weights are bf16 (no autocast), the optimizer holds fp32 master weights (trainer/optim.py).
    # Numerics differ slightly from fp32 weights + autocast (bf16 residual stream); CPU fp32 runs are unchanged.
    param_dtype: str = "auto"  # auto | bf16 | fp32
    compile_layers: bool = False  # torch.compile each decoder layer (dynamic shapes); CUDA runs
    attn_implementation: str = "sdpa"  # sdpa (block-diagonal mask) | varlen (torch flash varlen, CUDA) | eager
    loss_chunk_tokens: int = 4096  # lm_head + cross-entropy on target tokens only, this many at a time
    seed: int = 42
    # --- checkpoints and logs ---------------------------------------------------------------
    save_every: int = 0  # optimizer steps between crash-safe checkpoints; 0 = only the final model
    keep_checkpoints: int = 1
    resume: bool = False  # continue from output_dir/checkpoints/last
    log_every: int = 1
    trackers: list = field(default_factory=list)  # e.g. [tensorboard] or [wandb], if installed
    peak_tflops: float = 0.0  # for MFU; 0 = guess from the device (H100 SXM dense bf16: 989)
    plot: bool = True
    progress_bar: bool = True

    def check(self) -> "TrainConfig":
        choices = {"family": ("auto", "vl", "omni"), "bad_rows": ("error", "skip"),
                   "scheduler": ("cosine", "linear", "constant"), "precision": ("bf16", "fp32"),
                   "param_dtype": ("auto", "bf16", "fp32"),
                   "attn_implementation": ("sdpa", "varlen", "eager")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"config key '{key}': {getattr(self, key)!r} is not one of {allowed}")
        for key in ("max_length", "per_device_batch", "grad_accum", "epochs", "loss_chunk_tokens", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"config key '{key}' must be >= 1, got {getattr(self, key)}")
        if not self.model:
            raise ValueError("config key 'model' is required (checkpoint dir or hub id)")
        if not self.train_file:
            raise ValueError("config key 'train_file' is required (jsonl with prompt/text rows)")
        if self.param_dtype == "bf16" and self.precision != "bf16":
            raise ValueError("config key 'param_dtype': bf16 weights need precision: bf16")
        if len(self.adam_betas) != 2:
            raise ValueError(f"config key 'adam_betas' needs two numbers, got {self.adam_betas}")
        for t in self.trackers:
            if t not in ("tensorboard", "wandb"):
                raise ValueError(f"config key 'trackers': {t!r} is not one of ('tensorboard', 'wandb')")
        return self


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _coerce(key: str, value):
    """Check (YAML) or parse (command line string) one value against the field's type."""
    kind = _HINTS[key]
    if isinstance(value, str) and kind is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"config key '{key}': cannot parse {value!r}: {e}") from None
    if kind is float and isinstance(value, str):  # YAML 1.1 reads '2e-5' as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ValueError(f"config key '{key}' wants {kind.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _unknown(key: str) -> ValueError:
    import difflib

    near = difflib.get_close_matches(key, FIELDS, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return ValueError(f"unknown config key '{key}'.{hint} Known keys: {', '.join(FIELDS)}")


def load_config(path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- `--key value` / `--key=value` overrides; then validated."""
    values: dict = {}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a mapping of keys to values")
        for key, value in loaded.items():
            if key not in FIELDS:
                raise _unknown(key)
            values[key] = _coerce(key, value)
    args = list(overrides or [])
    while args:
        token = args.pop(0)
        if not token.startswith("--"):
            raise ValueError(f"expected --key value, got {token!r}")
        key, eq, value = token[2:].partition("=")
        key = key.replace("-", "_")
        if key not in FIELDS:
            raise _unknown(key)
        if not eq:
            if _HINTS[key] is bool and (not args or args[0].startswith("--")):
                value = "true"  # bare flag, e.g. --resume
            elif not args:
                raise ValueError(f"config key '{key}' needs a value")
            else:
                value = args.pop(0)
        values[key] = _coerce(key, value)
    return TrainConfig(**values).check()


def save_config(cfg: TrainConfig, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def config_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
