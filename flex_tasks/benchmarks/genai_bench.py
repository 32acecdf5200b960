"""GenAI-Bench: a prompt (editing: source / target / instruction prompts) and two generated
images or videos, in the data's order; the verdict is an [[A>B]]-style vote."""
from pathlib import Path

from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import HUB, DataError, existing, load_hub_copy, require_columns, source_dataset, text_rows

_EDITING_FIELDS = ("source_prompt", "target_prompt", "instruct_prompt")


def fields(spec, doc) -> dict:
    if spec.variant == "image_edition":
        return {k: doc[k] for k in _EDITING_FIELDS}
    return {"prompt": doc["prompt"]}


VOTES = ("leftvote", "rightvote", "tievote", "bothbad_vote")


def load(spec, source) -> list[dict]:
    config = spec.variant
    # a local folder may hold only videos/ and leave the metadata to the hub
    meta = source
    if source != HUB and config == "video_generation":
        try:
            load_hub_copy(Path(source), config, spec.hub[2])
        except DataError:
            meta = HUB
    ds = source_dataset(spec, meta)
    where = f"{spec.task} ({meta})"
    media_cols = {"image_generation": ["left_image", "right_image"],
                  "image_edition": ["source_image", "left_output_image", "right_output_image"],
                  "video_generation": ["left_video", "right_video"]}[config]
    text_cols = ["source_prompt", "target_prompt", "instruct_prompt"] if config == "image_edition" else ["prompt"]
    require_columns(ds, text_cols + media_cols + ["vote_type"], where)
    read = text_cols + ["vote_type"] + (media_cols if config == "video_generation" else [])
    items = []
    for i, r in enumerate(text_rows(ds, read)):
        if r["vote_type"] not in VOTES:
            raise DataError(f"{where} row {i}: vote_type {r['vote_type']!r} not in {VOTES}")
        item = {"data_id": f"{config}-{i}", **{c: r[c] for c in text_cols}, "gold": r["vote_type"], "row": i}
        if config == "video_generation":
            if source == HUB:
                raise DataError(f"{spec.task}: videos are not in the hub parquet; set {spec.env} to a folder "
                                f"with videos/<file name of left_video/right_video>")
            item["media"] = [existing(Path(source) / "videos" / Path(str(r[c])).name, where, i, spec.env) for c in media_cols]
        else:
            item["media"] = [f"row:{c}" for c in media_cols]
        items.append(item)
    for it in items:
        it["source"] = meta
    return items


BENCHMARK = Benchmark("genai_bench", load=load, fields=fields)
