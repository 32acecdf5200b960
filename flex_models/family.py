"""Which Qwen family a checkpoint is, read from its config.json (never from its name)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flex_models.errors import FlexJudgeError


@dataclass(frozen=True)
class Family:
    """One supported model family: everything the inference backends, the trainer and the tiny
    checkpoint builder need to know about it (the one family table of the project)."""
    name: str  # "vl" | "omni"
    title: str
    model_types: tuple[str, ...]  # config.json model_type values of a full checkpoint
    architectures: tuple[str, ...]  # config.json architectures values of a full checkpoint
    model_class: str  # the transformers class that generates / trains (Omni: the thinker only)
    decoder_layer: str  # the transformer block class: the FSDP wrap unit


FAMILY: dict[str, Family] = {f.name: f for f in (
    Family("vl", "Flex-VL (Qwen2.5-VL)", ("qwen2_5_vl", "qwen2_vl"),
           ("Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration"),
           "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLDecoderLayer"),
    Family("omni", "Flex-Omni (Qwen2.5-Omni thinker)", ("qwen2_5_omni",),
           ("Qwen2_5OmniForConditionalGeneration", "Qwen2_5OmniModel"),
           "Qwen2_5OmniThinkerForConditionalGeneration", "Qwen2_5OmniDecoderLayer"),
)}
FAMILIES = tuple(FAMILY)
_MODEL_TYPES = {mt: f.name for f in FAMILY.values() for mt in f.model_types}
_ARCHITECTURES = {a: f.name for f in FAMILY.values() for a in f.architectures}


class CheckpointError(FlexJudgeError, ValueError):
    """`pretrained` cannot be found or is not a supported Flex-Judge family."""


@dataclass(frozen=True)
class Checkpoint:
    pretrained: str  # what the user gave
    config: dict
    family: str  # "vl" | "omni"

    @property
    def local_dir(self) -> Path:
        """The folder holding the weights: the given dir, or the hub cache snapshot of a hub id."""
        p = Path(self.pretrained).expanduser()
        if p.is_dir():
            return p
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(self.pretrained, local_files_only=True))
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"model_args pretrained={self.pretrained!r}: no complete local snapshot in the "
                                  f"hub cache to fingerprint ({type(e).__name__}); pass a local directory") from None


def read_config(pretrained: str) -> dict:
    """config.json of a local dir or a hub id (hub cache first; offline -> clear error)."""
    p = Path(pretrained).expanduser()
    if p.is_dir():
        cfg = p / "config.json"
        if not cfg.is_file():
            raise CheckpointError(f"model_args pretrained={pretrained!r}: directory has no config.json")
        return json.loads(cfg.read_text())
    looks_local = pretrained.startswith(("/", ".", "~")) or pretrained.count("/") > 1
    if looks_local:
        raise CheckpointError(f"model_args pretrained={pretrained!r}: no such checkpoint directory")
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(pretrained, "config.json")
    except Exception as e:  # offline, unknown repo, gated, ...
        raise CheckpointError(
            f"model_args pretrained={pretrained!r}: not a local directory and its config.json could not be "
            f"fetched from the hub ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Offline (HF_HUB_OFFLINE=1) the checkpoint must already be in the hub cache or be a local dir."
        ) from None
    return json.loads(Path(path).read_text())


def family_of(config: dict, pretrained: str = "?") -> str:
    mt = config.get("model_type")
    if mt in _MODEL_TYPES:
        return _MODEL_TYPES[mt]
    for arch in config.get("architectures") or []:
        if arch in _ARCHITECTURES:
            return _ARCHITECTURES[arch]
    if mt == "qwen2_5_omni_thinker":
        raise CheckpointError(
            f"model_args pretrained={pretrained!r} is a thinker-only Qwen2.5-Omni checkpoint; vLLM needs "
            "the full Qwen2_5OmniForConditionalGeneration checkpoint (model_type qwen2_5_omni)"
        )
    raise CheckpointError(
        f"model_args pretrained={pretrained!r}: model_type={mt!r}, architectures="
        f"{config.get('architectures')!r} is not a supported family; supported model_type: "
        f"{', '.join(sorted(_MODEL_TYPES))}"
    )


def load_checkpoint(pretrained: str) -> Checkpoint:
    config = read_config(pretrained)
    return Checkpoint(pretrained=pretrained, config=config, family=family_of(config, pretrained))
