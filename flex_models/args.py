"""model_args of the `flex` model: one typed table, parsed and checked before any weights load.

Engine settings (how the model is loaded) live here; request settings (temperature, stop
strings, seeds) come per request from the task's gen_kwargs (see flex_models.requests).
"""
from __future__ import annotations

import argparse
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from flex_models.errors import FlexJudgeError

BACKEND_NAMES = ("vllm", "hf", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
MODALITIES = ("image", "video", "audio")
AUDIO_SCALINGS = ("released", "unit")  # flex_models.media.AUDIO_SCALINGS

# Settings that only one engine understands: name -> the backend it belongs to.
_ENGINE_ONLY = {
    "tensor_parallel_size": "vllm", "gpu_memory_utilization": "vllm", "max_num_seqs": "vllm",
    "enable_prefix_caching": "vllm", "kv_cache_memory_bytes": "vllm", "enforce_eager": "vllm",
    "max_model_len": "vllm", "data_parallel_size": "vllm", "load_format": "vllm",
    "device_map": "hf", "attn_implementation": "hf",
}


# set by the harness (lmms-eval passes batch_size and device to every model), not by users
HARNESS_ARGS = frozenset({"batch_size", "device", "max_batch_size"})


class FlexArgError(FlexJudgeError, ValueError):
    """A model_arg is unknown, malformed or contradicts another one."""


@dataclass
class FlexArgs:
    pretrained: str = ""
    backend: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 4096
    batch_size: int = 8
    limit_mm_per_prompt: dict = field(default_factory=dict)
    seed: int = 0
    assistant_prefix: str = ""
    trust_remote_code: bool = False
    # resumable judging (flex_models.journal): a folder, or "off"; unset = env FLEX_JUDGE_JOURNAL
    # (`flex-judge eval` sets it to <output_path>/flex_journal), else no journal
    journal: str | None = None
    # requests in flight at once (media decoded only for these); unset = 2 x the engine's max_num_seqs
    stream_window: int | None = None
    # audio input: "released" = the released audio scripts' int16-range scaling (x32767) of
    # resampled audio, which produced the published Flex-Omni numbers; "unit" = always [-1, 1]
    audio_scaling: str = "released"
    # vLLM engine
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    max_num_seqs: int | None = None
    enable_prefix_caching: bool | None = None
    kv_cache_memory_bytes: int | None = None
    load_format: str | None = None  # e.g. "dummy": random weights (speed runs)
    # transformers
    device: str | None = None
    device_map: str | None = None
    attn_implementation: str | None = None
    # set by the harness, not by users
    max_batch_size: int | None = None

    def explicit(self) -> set[str]:
        return getattr(self, "_explicit", set())

    @property
    def max_new_tokens_cap(self) -> int | None:
        """max_new_tokens given in model_args caps every request; the default only fills gaps."""
        return self.max_new_tokens if "max_new_tokens" in self.explicit() else None


ARG_NAMES = tuple(f.name for f in fields(FlexArgs))
_DEFAULTS = FlexArgs()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The help formatter of every flex-judge subcommand: descriptions kept as written, and each
    option's default appended where it has one and its help does not already say it (argparse's
    ArgumentDefaultsHelpFormatter would also print "default: None" / "default: False")."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if (d is None or d is False or d is argparse.SUPPRESS or action.option_strings == []
                or "default" in text.lower() or isinstance(action, argparse._HelpAction)):
            return text
        return f"{text} (default: {'%(default)s'})"


def parse_kv(s: str | None, what: str = "model_args") -> dict[str, str]:
    """``"k=v,k2=v2"`` (lmms-eval's model_args syntax) -> ``{"k": "v", "k2": "v2"}``; the one k=v
    parser of the project. A part without ``=`` is an error that names ``what``."""
    out: dict[str, str] = {}
    for item in (s or "").split(","):
        if item.strip():
            k, sep, v = item.partition("=")
            if not sep:
                raise FlexArgError(f"{what} {s!r}: expected key=value[,key=value], got {item.strip()!r}")
            out[k.strip()] = v.strip()
    return out


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _bool(name: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise FlexArgError(f"model_args {name}={v!r}: expected a boolean (true/false)")


def _int(name: str, v: Any, minimum: int | None = None) -> int:
    try:
        out = int(str(v).strip()) if not isinstance(v, int) else v
    except ValueError:
        raise FlexArgError(f"model_args {name}={v!r}: expected an integer") from None
    if minimum is not None and out < minimum:
        raise FlexArgError(f"model_args {name}={v!r}: must be >= {minimum}")
    return out


def _choice(name: str, v: Any, choices) -> str:
    s = str(v).strip()
    if s not in choices:
        raise FlexArgError(
            f"model_args {name}={v!r}: allowed values are {', '.join(choices)}.{did_you_mean(s, choices)}"
        )
    return s


def parse_limit_mm(v: Any) -> dict:
    """'image=2,audio=1', 'image:2;audio:1', a JSON object or a dict -> {modality: int}."""
    if v is None or v == "":
        return {}
    if isinstance(v, dict):
        raw = dict(v)
    else:
        s = str(v).strip()
        if s.startswith("{"):
            try:
                raw = json.loads(s)
            except json.JSONDecodeError as e:
                raise FlexArgError(f"model_args limit_mm_per_prompt={v!r}: bad JSON ({e})") from None
        else:
            raw = {}
            for item in s.replace(";", ",").replace("|", ",").split(","):
                if not item.strip():
                    continue
                key, sep, num = item.replace(":", "=").partition("=")
                if not sep:
                    raise FlexArgError(
                        f"model_args limit_mm_per_prompt={v!r}: expected items like image=2,audio=1"
                    )
                raw[key.strip()] = num.strip()
    out = {}
    for k, n in raw.items():
        if k not in MODALITIES:
            raise FlexArgError(
                f"model_args limit_mm_per_prompt: unknown modality {k!r}; allowed: "
                f"{', '.join(MODALITIES)}.{did_you_mean(k, MODALITIES)}"
            )
        out[k] = _int(f"limit_mm_per_prompt[{k}]", n, minimum=0)
    return out


def _batch_size(v: Any) -> int:
    s = str(v).strip()
    if s.startswith("auto"):
        _, _, n = s.partition(":")
        return _int("batch_size", n, 1) if n else _DEFAULTS.batch_size
    return _int("batch_size", s, 1)


def resolve_backend(name: str) -> str:
    if name != "auto":
        return name
    try:
        import vllm  # noqa: F401
    except Exception:
        return "hf"
    return "vllm"


def parse_args(raw: dict) -> FlexArgs:
    """Validate the raw model_args dict (strings from the CLI or Python values)."""
    raw = {k: v for k, v in raw.items()}
    unknown = [k for k in raw if k not in ARG_NAMES]
    if unknown:
        k = unknown[0]
        raise FlexArgError(
            f"unknown model_args {k!r} for model 'flex'.{did_you_mean(k, ARG_NAMES)} "
            f"Allowed: {', '.join(n for n in ARG_NAMES if n != 'max_batch_size')}"
        )
    a = FlexArgs()
    explicit = {k for k, v in raw.items() if v is not None and k not in HARNESS_ARGS}
    for k, v in raw.items():
        if v is None:
            continue
        if k in ("pretrained", "assistant_prefix", "device", "device_map", "attn_implementation", "load_format",
                 "journal"):
            setattr(a, k, str(v))
        elif k == "backend":
            a.backend = _choice(k, v, BACKEND_NAMES)
        elif k == "dtype":
            a.dtype = _choice(k, v, DTYPES)
        elif k == "audio_scaling":
            a.audio_scaling = _choice(k, v, AUDIO_SCALINGS)
        elif k == "batch_size":
            a.batch_size = _batch_size(v)
        elif k == "limit_mm_per_prompt":
            a.limit_mm_per_prompt = parse_limit_mm(v)
        elif k == "gpu_memory_utilization":
            try:
                a.gpu_memory_utilization = float(v)
            except ValueError:
                raise FlexArgError(f"model_args {k}={v!r}: expected a float in (0, 1]") from None
            if not 0 < a.gpu_memory_utilization <= 1:
                raise FlexArgError(f"model_args {k}={v!r}: expected a float in (0, 1]")
        elif k in ("trust_remote_code", "enforce_eager", "enable_prefix_caching"):
            setattr(a, k, _bool(k, v))
        elif k in ("max_new_tokens", "tensor_parallel_size", "data_parallel_size", "max_num_seqs",
                   "max_model_len", "max_batch_size", "stream_window"):
            setattr(a, k, _int(k, v, 1))
        elif k in ("seed", "kv_cache_memory_bytes"):
            setattr(a, k, _int(k, v, 0))
    a.assistant_prefix = a.assistant_prefix.replace("\\n", "\n")
    if not a.pretrained:
        raise FlexArgError("model_args pretrained is required: a hub id or a local checkpoint dir")
    a.backend = resolve_backend(a.backend)
    if a.backend == "hf" and raw.get("backend") in (None, "auto") and explicit & {
        k for k, b in _ENGINE_ONLY.items() if b == "vllm"
    }:
        names = sorted(explicit & {k for k, b in _ENGINE_ONLY.items() if b == "vllm"})
        raise FlexArgError(f"model_args {names[0]} needs backend=vllm, but vllm is not importable")
    for k in sorted(explicit):
        owner = _ENGINE_ONLY.get(k)
        if owner and owner != a.backend:
            raise FlexArgError(
                f"model_args {k} only applies to backend={owner}, but backend={a.backend}; "
                f"drop {k} or set backend={owner}"
            )
    if a.data_parallel_size > 1 and a.tensor_parallel_size > 1:
        raise FlexArgError("model_args data_parallel_size>1 with tensor_parallel_size>1 is not supported; "
                           "use one of them")
    object.__setattr__(a, "_explicit", explicit)
    return a
