"""Synthetic VL-RewardBench-shaped judge requests for the inference benchmark.

One doc = one pairwise judgment: the protocol's VL-RewardBench system prompt, one square RGB
image, a question and two answers. Everything is generated from the doc index, so the lmms-eval
task (through `process_docs`) and the raw-engine run in `benchmarks/inference_gpu.py` see the
same requests. Sizes come from the environment so one YAML serves the GPU run and the CPU smoke:

  FLEXBENCH_N      number of docs (default 256)
  FLEXBENCH_WORDS  words of question + two answers (default 300, ~600 text tokens in all with the
                   system prompt on the benchmark's tokenizer)
  FLEXBENCH_IMAGE  image side in pixels (default 448)
"""
from __future__ import annotations

import functools
import json
import os
import random
from importlib import resources

import numpy as np
from PIL import Image

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"

# Vocabulary of the generated text: judge-style words (they tokenize compactly on the tiny
# tokenizer too, so token counts stay comparable between the two machines).
_WORDS = (
    "the assistant answer question image shows a detailed accurate relevant response level of "
    "detail helpful score reasoning step first then provides user with evaluation both assistants "
    "performance judge criteria includes helpfulness relevance accuracy avoid order length style "
    "bias after thinking when you finally reach conclusion clearly quick brown fox jumps over lazy "
    "dog speech audio generated scale higher better"
).split()


@functools.lru_cache(maxsize=1)
def system_prompt() -> str:
    """The protocol's VL-RewardBench system prompt (flex_tasks/protocols.json)."""
    text = resources.files("flex_tasks").joinpath("protocols.json").read_text()
    return json.loads(text)["vl_rewardbench"]["system"]


def _sizes() -> tuple[int, int, int]:
    env = os.environ
    return (int(env.get("FLEXBENCH_N", 256)), int(env.get("FLEXBENCH_WORDS", 300)),
            int(env.get("FLEXBENCH_IMAGE", 448)))


def make_doc(i: int, words: int, image: int) -> dict:
    rng = random.Random(1_000_003 * (i + 1))
    n_q = max(1, words // 6)
    n_a = max(1, (words - n_q) // 2)
    say = lambda n: " ".join(rng.choice(_WORDS) for _ in range(n))  # noqa: E731
    return {"flex_item": f"synth-{i:05d}", "query": say(n_q).capitalize() + "?",
            "answer1": say(n_a).capitalize() + ".", "answer2": say(n_a).capitalize() + ".",
            "image_seed": i, "image_side": image}


def make_docs(n: int | None = None, words: int | None = None, image: int | None = None) -> list[dict]:
    n0, w0, i0 = _sizes()
    return [make_doc(i, w0 if words is None else words, i0 if image is None else image)
            for i in range(n0 if n is None else n)]


def process_docs(dataset):
    """Replace the one-row seed dataset with FLEXBENCH_N synthetic docs."""
    import datasets

    return datasets.Dataset.from_list(make_docs())


@functools.lru_cache(maxsize=4096)
def _image(seed: int, side: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def doc_to_visual(doc: dict) -> list:
    return [_image(doc["image_seed"], doc["image_side"])]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs=None) -> str:
    """The user turn without its image placeholder (the model puts it back before the text)."""
    return (f"\n\n[Question]\n{doc['query']}\n\n[Assistant 1's Answer]\n{doc['answer1']}"
            f"\n\n[Assistant 2's Answer]\n{doc['answer2']}")


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs=None) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt()}]},
        {"role": "user", "content": [{"type": "image", "url": doc_to_visual(doc)[0]},
                                     {"type": "text", "text": doc_to_text(doc)}]},
    ]


def render_prompt(doc: dict, assistant_prefix: str = "") -> str:
    """Qwen chat prompt of one doc, as the `flex` model renders it (architecture.md, contract 1)."""
    return (f"<|im_start|>system\n{system_prompt()}<|im_end|>\n<|im_start|>user\n"
            f"{IMAGE_PLACEHOLDER}{doc_to_text(doc)}<|im_end|>\n<|im_start|>assistant\n"
            f"{assistant_prefix}")


def process_results(doc: dict, results: list[str]) -> dict:
    text = results[0] if results else ""
    return {"output_chars": float(len(text))}
