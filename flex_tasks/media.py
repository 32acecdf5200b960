"""Media for chat messages: images resized per protocol, 16 kHz mono float32 audio, video paths."""
from __future__ import annotations

from math import gcd
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


def load_audio(path: str) -> dict:
    """``{"array": float32 mono, "sampling_rate": 16000}``: stereo averaged, resampled
    (polyphase) to 16 kHz."""
    import soundfile as sf
    from scipy.signal import resample_poly

    audio, sr = sf.read(path, dtype="float32", always_2d=False)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != AUDIO_SR:
        g = gcd(int(sr), AUDIO_SR)
        audio = resample_poly(audio, AUDIO_SR // g, int(sr) // g)
    return {"array": np.asarray(audio, dtype=np.float32), "sampling_rate": AUDIO_SR}


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
            out.append(load_audio(ref))
        elif spec.video is not None:
            out.append(ref)
        else:
            out.append(load_image(ref, spec.image_size))
    return out
