"""Media for chat messages: images resized per protocol, 16 kHz mono float32 audio, video paths."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

from flex_tasks import benchmarks
from flex_tasks.protocol import TaskSpec

AUDIO_SR = 16000


def load_image(value: Any, size: Optional[int], where: str = ""):
    """RGB PIL image (from a PIL image, a path, bytes or a datasets ``{'bytes','path'}`` dict;
    decoded by the one image loader, :func:`flex_models.media.load_image`), resized to
    ``size`` x ``size`` when the protocol fixes a size. A missing or corrupt image raises
    MediaError naming ``where`` and the file."""
    from flex_models.media import load_image as decode

    img = decode(value, where)
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


@lru_cache(maxsize=16)
def _undecoded(task: str, source: str, cols: tuple):
    """The source dataset's image columns as raw ``{'bytes', 'path'}`` (decoded by
    :func:`load_image`, so a corrupt image gets a named error instead of PIL's)."""
    import datasets

    from flex_tasks.data import source_dataset
    from flex_tasks.protocol import get

    ds = source_dataset(get(task), source).select_columns(list(cols))
    for c in cols:
        if isinstance(ds.features[c], datasets.Image):
            ds = ds.cast_column(c, datasets.Image(decode=False))
    return ds


def confined_cell(value, source: str, where: str):
    """A hub-style ``{'bytes', 'path'}`` cell, refused when it has no bytes and its path resolves
    outside the data root (the local copy's folder, or the datasets cache for a hub download):
    the rule of :func:`flex_models.confine.confine`, also checked at pre-flight
    (:func:`flex_tasks.data.check_row_media`). A relative path is read from the data root."""
    if isinstance(value, dict) and not value.get("bytes") and value.get("path"):
        from flex_models.confine import OutsideRoot, confine
        from flex_tasks.data import HUB, DataError, _datasets_cache

        try:
            path = confine(value["path"], source if source != HUB else _datasets_cache())
        except OutsideRoot as e:
            raise DataError(f"{where}: {e}") from None
        return {**value, "path": str(path)}  # a relative path is relative to the data root, not the cwd
    return value


def resolve(spec: TaskSpec, doc: dict) -> list:
    """The doc's media in template order (order swaps applied)."""
    refs = benchmarks.of(spec).media_order(spec, doc, list(doc["media"]))
    row = None
    out = []
    at = f"task {spec.task} item {doc.get('flex_item')} run {doc.get('flex_run')}"
    for ref in refs:
        if ref.startswith("row:"):
            if row is None:
                cols = tuple(sorted(r[4:] for r in refs if r.startswith("row:")))
                row = _undecoded(spec.task, doc["source"], cols)[int(doc["row"])]
            where = f"{at}: row {doc['row']} column {ref[4:]} of {doc['source']}"
            out.append(load_image(confined_cell(row[ref[4:]], doc["source"], where), spec.image_size, where))
        elif spec.modality == "audio":
            out.append(load_audio(ref, at))
        elif spec.video is not None:
            out.append(ref)
        else:
            out.append(load_image(ref, spec.image_size, at))
    return out
