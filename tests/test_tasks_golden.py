"""Golden: doc_to_messages text parts, with each media part replaced by its placeholder,
reassemble to the protocol's user string (from protocols.json, filled by hand here)."""
import json
from pathlib import Path

import numpy as np
import pytest

from flex_tasks import lmms
from flex_tasks.data import load_items
from flex_tasks.protocol import TASKS

P = json.loads((Path(__file__).resolve().parents[1] / "flex_tasks" / "protocols.json").read_text())
PH = {"image": "<|vision_start|><|image_pad|><|vision_end|>", "video": "<|vision_start|><|video_pad|><|vision_end|>",
      "audio": "<|audio_bos|><|AUDIO|><|audio_eos|>"}


@pytest.fixture(autouse=True)
def _fixtures(monkeypatch):
    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    monkeypatch.delenv("FLEX_JUDGE_RUNS", raising=False)


def expected_user(task: str, doc: dict) -> str:
    if task in ("flex_vl_rewardbench", "flex_multimodal_rewardbench"):  # the latter reuses the former's template
        a1, a2 = (doc["answer1"], doc["answer0"]) if doc["flex_swap"] else (doc["answer0"], doc["answer1"])
        return P[task.removeprefix("flex_")]["user"].replace("{query}", doc["query"]).replace("{answer1}", a1).replace("{answer2}", a2)
    if task.startswith("flex_mj_bench"):
        return P["mj_bench"]["user_vl"].replace("{caption}", doc["caption"])
    if task == "flex_genai_bench_editing":
        u = P["genai_bench"]["user_editing"]
        for k in ("source_prompt", "target_prompt", "instruct_prompt"):
            u = u.replace("{" + k + "}", doc[k])
        return u
    if task.startswith("flex_genai_bench"):
        kind, ph = ("Video", "<|video_pad|>") if task.endswith("video") else ("Image", "<|image_pad|>")
        return (P["genai_bench"]["user_image_or_video"].replace("{Image|Video}", kind).replace("{placeholder}", ph)
                .replace("{prompt}", doc["prompt"]))
    if task == "flex_mllm_judge_pair":
        return (P["mllm_as_a_judge"]["user_pair"].replace("{instruction}", doc["instruction"])
                .replace("{answer1}", doc["answer1"]).replace("{answer2}", doc["answer2"]))
    if task == "flex_mllm_judge_score":
        return P["mllm_as_a_judge"]["user_score"].replace("{instruction}", doc["instruction"]).replace("{answer}", doc["answer"])
    if task == "flex_mllm_judge_batch":  # the reference script's loop
        text = f"{PH['image']}\n\n[Question]\n{doc['instruction']}\n\n"
        for i, a in enumerate(doc["answers"]):
            text += f"[Assistant {i + 1}'s Answer]\n{a}\n\n"
        return text.strip()
    return P[task.removeprefix("flex_")]["user"]


def reassemble(content: list[dict]) -> str:
    return "".join(c["text"] if c["type"] == "text" else PH[c["type"]] for c in content)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_user_text_matches_protocol(task):
    spec = TASKS[task]
    _, items = load_items(spec)
    docs = lmms.expand(spec, items)
    for doc in docs[: 2 * spec.n_runs()]:  # two items, every run (covers swaps)
        msgs = lmms.doc_to_messages(doc)
        assert [m["role"] for m in msgs] == ["system", "user"]
        assert msgs[0]["content"] == [{"type": "text", "text": spec.system}]
        assert reassemble(msgs[1]["content"]) == expected_user(task, doc)
        assert all(c["text"] for c in msgs[1]["content"] if c["type"] == "text")  # no empty parts


def test_mllm_batch_layout_matches_protocol_for_two_answers():
    from flex_tasks.benchmarks.mllm_as_a_judge import batch_template
    from flex_tasks.prompts import template_parts

    doc = {"instruction": "Q?", "a1": "x", "a2": "y"}
    parts = template_parts(batch_template(2), doc)
    text = "".join(t for _, t in parts).strip()
    proto = P["mllm_as_a_judge"]["user_batch"].split("\n\n... (")[0]
    assert text == proto.replace("{instruction}", "Q?").replace("{a1}", "x").replace("{a2}", "y")


def test_system_prompts_are_protocol_strings():
    assert TASKS["flex_vl_rewardbench"].system == P["vl_rewardbench"]["system"]
    assert "provides the user withthe answer" in TASKS["flex_vl_rewardbench"].system  # typo kept
    for split in ("alignment", "safety", "quality"):
        assert TASKS[f"flex_mj_bench_{split}"].system == P["mj_bench"]["system"][split]
    assert "editied" in TASKS["flex_genai_bench_editing"].system
    assert "FISRT DECIMAL" in TASKS["flex_nisqa"].system and "FISRT DECIMAL" in TASKS["flex_somos"].system
    assert "[Assistant Edited B's Image]" in TASKS["flex_genai_bench_editing"].user


@pytest.mark.parametrize("task,size", [("flex_mj_bench_alignment", 336), ("flex_genai_bench_image", 448),
                                       ("flex_genai_bench_editing", 448), ("flex_mllm_judge_pair", 448)])
def test_image_sizes(task, size):
    spec = TASKS[task]
    doc = lmms.expand(spec, load_items(spec)[1])[0]
    imgs = [c["url"] for c in lmms.doc_to_messages(doc)[1]["content"] if c["type"] == "image"]
    assert imgs and all(im.size == (size, size) and im.mode == "RGB" for im in imgs)


def test_video_parts_are_paths_with_protocol_hints():
    spec = TASKS["flex_genai_bench_video"]
    doc = lmms.expand(spec, load_items(spec)[1])[0]
    vids = [c["url"] for c in lmms.doc_to_messages(doc)[1]["content"] if c["type"] == "video"]
    assert len(vids) == 2 and all(Path(v).exists() and v.endswith(".mp4") for v in vids)
    assert doc["flex_video"] == {"fps": 1.0, "max_pixels": 224 * 224}


@pytest.mark.parametrize("task", ["flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim"])
def test_audio_parts_are_16k_mono_float32(task):
    spec = TASKS[task]
    docs = lmms.expand(spec, load_items(spec)[1])
    for doc in docs:
        auds = [c["url"] for c in lmms.doc_to_messages(doc)[1]["content"] if c["type"] == "audio"]
        assert len(auds) == (2 if task == "flex_voxsim" else 1)
        for a in auds:
            assert a["sampling_rate"] == 16000 and a["array"].dtype == np.float32 and a["array"].ndim == 1
            assert 0.45 * 16000 <= len(a["array"]) <= 0.55 * 16000  # 0.5 s clips, 48 kHz ones resampled
