"""Media for chat messages: images resized per protocol, 16 kHz mono float32 audio, video paths."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from flex_tasks.protocol import TaskSpec

AUDIO_SR = 16000


def load_image(value: Any, size: Optional[int]):
    """PIL image (from a PIL image, a path, or a datasets ``{'bytes','path'}`` dict), RGB,
    resized to ``size`` x ``size`` when the protocol fixes a size."""
    from PIL import Image

    if isinstance(value, dict):
        import io

        value = Image.open(io.BytesIO(value["bytes"])) if value.get("bytes") else Image.open(value["path"])
    elif isinstance(value, str):
        value = Image.open(value)
    img = value.convert("RGB")
    return img.resize((size, size)) if size else img


def load_audio(path: str, where: str = "") -> dict:
    """``{"array": float32 mono in [-1, 1], "sampling_rate": 16000, "source_sampling_rate": the
    file's rate}``: the protocol's audio (soundfile, channels averaged, polyphase-resampled to
    16 kHz). The source rate lets the flex model reproduce the released scripts' scaling of
    resampled audio (model_args audio_scaling). One decoder, shared with the flex model; a
    missing or corrupt file raises an error naming ``where`` and the file."""
    from flex_models.media import decode_audio

    array, source_sr = decode_audio(path, where)
    return {"array": array, "sampling_rate": AUDIO_SR, "source_sampling_rate": source_sr}


def resolve(spec: TaskSpec, doc: dict) -> list:
    """The doc's media in template order (order swaps applied)."""
    refs = list(doc["media"])
    if spec.bench == "mj_bench" and doc["flex_swap"]:
        refs = refs[::-1]
    row = None
    out = []
    for ref in refs:
        if ref.startswith("row:"):
            if row is None:
                from flex_tasks.data import source_dataset

                row = source_dataset(spec, doc["source"])[int(doc["row"])]
            out.append(load_image(row[ref[4:]], spec.image_size))
        elif spec.modality == "audio":
            out.append(load_audio(ref, f"{spec.task} item {doc.get('flex_item')}"))
        elif spec.video is not None:
            out.append(ref)
        else:
            out.append(load_image(ref, spec.image_size))
    return out
