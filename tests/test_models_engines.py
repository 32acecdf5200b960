"""Real engines on the tiny checkpoints: vLLM and transformers agree token for token (float32,
greedy); stop strings, per-request seeds and n samples behave the same way on both."""
import numpy as np
import pytest
from PIL import Image

from flex_models.model import FlexJudge

pytestmark = pytest.mark.e2e

SYSTEM = [{"role": "system", "content": [{"type": "text", "text": "You are a judge."}]}]


def image(seed):
    return Image.fromarray((np.random.RandomState(seed).rand(56, 84, 3) * 255).astype("uint8"))


def vl_messages(seed):
    return SYSTEM + [{"role": "user", "content": [
        {"type": "image", "url": image(seed)}, {"type": "text", "text": f"\n\n[Question]\nitem {seed}"}]}]


def omni_messages(sr):
    t = np.arange(sr) / sr
    audio = {"array": np.sin(2 * np.pi * 330 * t).astype(np.float32), "sampling_rate": sr}
    return SYSTEM + [{"role": "user", "content": [
        {"type": "text", "text": "Here is the speech I generated: "}, {"type": "audio", "url": audio}]}]


@pytest.fixture(scope="module")
def vl_models(tiny_vl):
    return {be: FlexJudge(pretrained=str(tiny_vl), backend=be, dtype="float32", max_new_tokens=16, batch_size=2)
            for be in ("vllm", "hf")}


@pytest.fixture(scope="module")
def omni_models(tiny_omni):
    return {be: FlexJudge(pretrained=str(tiny_omni), backend=be, dtype="float32", max_new_tokens=16)
            for be in ("vllm", "hf")}


def run(model, messages_list, gen_kwargs=None, docs=None):
    docs = docs or [{}] * len(messages_list)
    prepared = [model.prepare(m, where=f"doc {i}", doc=d, gen_kwargs=gen_kwargs or {})
                for i, (m, d) in enumerate(zip(messages_list, docs))]
    return model.generate_prepared(prepared, progress=False)


def test_vl_image_greedy_agrees_token_for_token(vl_models):
    msgs = [vl_messages(s) for s in range(3)]  # 3 prompts, batch_size 2: padding is exercised
    out = {be: run(m, msgs) for be, m in vl_models.items()}
    for v, h in zip(out["vllm"], out["hf"]):
        assert len(v.token_ids[0]) == 16
        assert v.token_ids == h.token_ids
        assert v.texts == h.texts
        assert v.prompt_tokens == h.prompt_tokens
    assert out["vllm"][0].token_ids != out["vllm"][1].token_ids  # the image matters


def test_omni_audio_greedy_agrees_token_for_token(omni_models):
    msgs = [omni_messages(22050), omni_messages(16000)]
    out = {be: run(m, msgs) for be, m in omni_models.items()}
    for v, h in zip(out["vllm"], out["hf"]):
        assert v.token_ids == h.token_ids and v.texts == h.texts


def test_stop_strings_cut_the_same_way(vl_models):
    full = run(vl_models["vllm"], [vl_messages(0)])[0].texts[0]
    stop = full[3:5]  # a substring that surely occurs
    assert stop and stop in full
    for include in (False, True):
        gk = {"until": [stop], "include_stop_str_in_output": include}
        texts = {be: run(m, [vl_messages(0)], gk)[0].texts[0] for be, m in vl_models.items()}
        cut = full[: full.index(stop) + (len(stop) if include else 0)]
        assert texts["vllm"] == cut and texts["hf"] == cut


def test_per_doc_seed_drives_sampling(vl_models):
    m = vl_models["vllm"]
    gk = {"temperature": 1.0, "top_p": 1.0}
    msgs = [vl_messages(0)] * 4
    docs = [{"flex_seed": 1}, {"flex_seed": 1}, {"flex_seed": 2}, {"flex_seed": 3}]
    a = [o.token_ids[0] for o in run(m, msgs, gk, docs)]
    b = [o.token_ids[0] for o in run(m, msgs, gk, docs)]
    assert a == b  # reproducible
    assert a[0] == a[1]  # same seed, same sample
    assert len({tuple(x) for x in a[1:]}) == 3  # different seeds differ (random 0.7M model, 16 tokens)
    hf = [o.token_ids[0] for o in run(vl_models["hf"], msgs, gk, docs)]
    assert hf == [o.token_ids[0] for o in run(vl_models["hf"], msgs, gk, docs)]
    assert hf[0] == hf[1]


def test_n_samples(vl_models):
    for m in vl_models.values():
        out = run(m, [vl_messages(0)], {"temperature": 1.0, "n": 3, "seed": 7})[0]
        assert len(out.texts) == 3 and len(set(map(tuple, out.token_ids))) > 1


def write_clip(path, frames=32, rate=8):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            rgb = np.full((240, 320, 3), i * 7 % 255, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return str(path)


def test_vl_video_at_doc_fps_agrees(vl_models, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")  # 4 s at 8 fps
    msgs = [SYSTEM + [{"role": "user", "content": [{"type": "video", "url": clip}, {"type": "text", "text": "rate"}]}]]
    docs = [{"flex_video": {"fps": 1.0, "max_pixels": 224 * 224}}]
    out = {be: run(m, msgs, docs=docs)[0] for be, m in vl_models.items()}
    assert out["vllm"].token_ids == out["hf"].token_ids
    assert out["vllm"].prompt_tokens == out["hf"].prompt_tokens
    docs2 = [{"flex_video": {"fps": 2.0, "max_pixels": 224 * 224}}]  # twice the frames, more tokens
    assert run(vl_models["vllm"], msgs, docs=docs2)[0].prompt_tokens > out["vllm"].prompt_tokens


def test_vllm_detokenizes_once_per_judgment_unless_stop_strings(vl_models):
    """vLLM's per-step incremental detokenizer is off (flex decodes each finished judgment from its
    ids): the same tokens as with it on, and the text vLLM's detokenizer gives (which holds back a
    trailing partial UTF-8 character). Stop strings turn it back on."""
    from flex_models.backends.vllm_backend import sampling_params, vllm_prompt

    m = vl_models["vllm"]
    prepared = [m.prepare(vl_messages(s), where=f"doc {s}", gen_kwargs={}) for s in range(2)]
    assert not sampling_params(prepared[0].spec).detokenize
    stop = m.prepare(vl_messages(0), gen_kwargs={"until": ["x"]})
    assert sampling_params(stop.spec).detokenize
    ours = m.generate_prepared(prepared, progress=False)
    own = []
    for p in prepared:
        params = sampling_params(p.spec)
        params.detokenize = True
        own.append(m.backend.llm.generate([vllm_prompt(p)], params, use_tqdm=False)[0].outputs[0])
    for o, v in zip(ours, own):
        assert o.token_ids[0] == list(v.token_ids)
        assert o.texts[0] == m.backend.tokenizer.decode(list(v.token_ids), skip_special_tokens=True)
        assert v.text and o.texts[0].startswith(v.text)


def test_device_check_counts_gpus_through_nvml_before_vllm_is_imported():
    """A data-parallel / early-engine worker asks on_cpu() before it imports vLLM. torch's CUDA-runtime
    device count would initialise the driver and vLLM's forked engine process would then die with
    "Cannot re-initialize CUDA in forked subprocess" (H200 x2, 2026-11-30): the check must go through
    NVML, as vLLM's own import arranges."""
    import os
    import subprocess
    import sys

    code = ("import os, sys; from flex_models.backends.vllm_backend import on_cpu; on_cpu(); "
            "print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'), 'vllm' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "False"]
