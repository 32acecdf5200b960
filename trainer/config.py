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


class ConfigError(ValueError):
    """A bad config value; `key` names the setting so the message can say where it was set."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


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
    resume_from: str = ""  # continue from this checkpoint (a step-N name under checkpoints/ or a path); implies resume
    overwrite: bool = False  # start over in an output_dir that holds a finished run or checkpoints (deletes them)
    log_every: int = 1
    trackers: list = field(default_factory=list)  # e.g. [tensorboard] or [wandb], if installed
    peak_tflops: float = 0.0  # for MFU; 0 = guess from the device (H100 SXM dense bf16: 989)
    plot: bool = True
    progress_bar: bool = True

    def where(self, key: str) -> str:
        """Where a key's value was set: 'file.yaml:LINE', '--key' or 'default'."""
        return getattr(self, "_origin", {}).get(key, "default")

    def check(self) -> "TrainConfig":
        choices = {"family": ("auto", "vl", "omni"), "bad_rows": ("error", "skip"),
                   "scheduler": ("cosine", "linear", "constant"), "precision": ("bf16", "fp32"),
                   "param_dtype": ("auto", "bf16", "fp32"),
                   "attn_implementation": ("sdpa", "varlen", "eager")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"config key '{key}': {getattr(self, key)!r} is not one of {allowed}", key)
        for key in ("max_length", "per_device_batch", "grad_accum", "epochs", "loss_chunk_tokens", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{key}' must be >= 1, got {getattr(self, key)}", key)
        if not self.model:
            raise ConfigError("config key 'model' is required (checkpoint dir or hub id)", "model")
        if not self.train_file:
            raise ConfigError("config key 'train_file' is required (jsonl with prompt/text rows)", "train_file")
        if self.param_dtype == "bf16" and self.precision != "bf16":
            raise ConfigError("config key 'param_dtype': bf16 weights need precision: bf16", "param_dtype")
        if len(self.adam_betas) != 2:
            raise ConfigError(f"config key 'adam_betas' needs two numbers, got {self.adam_betas}", "adam_betas")
        for t in self.trackers:
            if t not in ("tensorboard", "wandb"):
                raise ConfigError(f"config key 'trackers': {t!r} is not one of ('tensorboard', 'wandb')", "trackers")
        if self.resume_from:
            self.resume = True
        if self.resume and self.overwrite:
            raise ConfigError("config keys 'resume' and 'overwrite' exclude each other", "overwrite")
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


def read_yaml(path: str) -> tuple[dict, dict[str, int]]:
    """A YAML mapping and the line of each top-level key; errors name the file and line."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {col})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(x for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ConfigError(f"{at}: invalid YAML: {what}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: the config must be a mapping of keys to values")
    lines: dict[str, int] = {}
    for knode, _ in node.value:
        key, line = str(knode.value), knode.start_mark.line + 1
        if key in lines:
            raise ConfigError(f"{path}:{line}: config key '{key}' is set twice (first at line {lines[key]})", key)
        lines[key] = line
    return data, lines


def load_config(path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- `--key value` / `--key=value` overrides; then validated. Errors
    about a key set in the YAML name its file and line."""
    values: dict = {}
    origin: dict[str, str] = {}
    if path:
        loaded, lines = read_yaml(path)
        for key, value in loaded.items():
            at = f"{path}:{lines.get(str(key), 1)}"
            if key not in FIELDS:
                raise ConfigError(f"{at}: {_unknown(str(key))}", str(key))
            try:
                values[key] = _coerce(key, value)
            except ValueError as e:
                raise ConfigError(f"{at}: {e}", key) from None
            origin[key] = at
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
        origin[key] = f"--{key}"
    cfg = TrainConfig(**values)
    cfg._origin = origin
    try:
        return cfg.check()
    except ConfigError as e:
        if e.key and e.key in origin and ":" in origin[e.key]:
            raise ConfigError(f"{origin[e.key]}: {e}", e.key) from None
        raise


def save_config(cfg: TrainConfig, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))


def config_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
