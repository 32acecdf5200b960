"""Trained checkpoints load and generate in the `flex` model on both engines (vLLM CPU and
transformers); Omni is exported as the full Qwen2_5OmniForConditionalGeneration. Plus the
2-process gloo run: same losses as 1 process with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer import train as T
from trainer.make_demo_data import make_rows

from test_trainer import cfg_for

REPO = Path(__file__).resolve().parents[1]
_ENGINES = []
SYSTEM = [{"role": "system", "content": [{"type": "text", "text": "You are a judge."}]}]


@pytest.fixture(scope="module")
def demo4(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in make_rows(4)))
    return p


def messages(family):
    if family == "vl":
        from PIL import Image

        img = Image.fromarray((np.random.RandomState(0).rand(56, 84, 3) * 255).astype("uint8"))
        part = {"type": "image", "url": img}
    else:
        t = np.arange(16000) / 16000
        part = {"type": "audio", "url": {"array": np.sin(2 * np.pi * 330 * t).astype(np.float32), "sampling_rate": 16000}}
    return SYSTEM + [{"role": "user", "content": [part, {"type": "text", "text": "\n\n[Question]\nx"}]}]


@pytest.mark.e2e
@pytest.mark.parametrize("family", ["vl", "omni"])
def test_exported_checkpoint_generates_in_both_engines(family, tiny_vl, tiny_omni, demo4, tmp_path):
    from flex_models.model import FlexJudge

    src = tiny_vl if family == "vl" else tiny_omni
    res = T.run(cfg_for(src, demo4, tmp_path / "run", per_device_batch=2, max_steps=1, learning_rate=1e-2))
    out = Path(res["model_dir"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == ("qwen2_5_vl" if family == "vl" else "qwen2_5_omni")
    for f in os.listdir(src):  # tokenizer / processor / template files came along
        assert (out / f).exists(), f
    if family == "omni":  # the trained thinker went back into the full model; other tensors untouched
        from safetensors.torch import load_file

        a, b = load_file(next(Path(src).glob("*.safetensors"))), load_file(next(out.glob("*.safetensors")))
        assert a.keys() == b.keys()
        changed = {k for k in a if not (a[k] == b[k]).all()}
        assert changed and all(k.startswith("thinker.model.") or k.startswith("thinker.lm_head") for k in changed)
        assert not any(k.startswith(("thinker.visual", "thinker.audio_tower")) for k in changed)
    texts = {}
    for be in ("vllm", "hf"):
        m = FlexJudge(pretrained=str(out), backend=be, dtype="float32", max_new_tokens=8)
        o = m.generate_prepared([m.prepare(messages(family), where="t")], progress=False)[0]
        assert len(o.token_ids[0]) > 0
        texts[be] = o.token_ids
        _ENGINES.append(m)  # keep alive: a vLLM engine torn down mid-process breaks the next one
    assert texts["vllm"] == texts["hf"]  # float32 greedy: both engines agree token for token


def test_two_gloo_processes_match_one_process(tiny_vl, demo4, tmp_path):
    """2 ranks x batch 1 x accum 2 == 1 rank x batch 2 x accum 2 (global batch 4 samples).
    Gloo on CPU: `ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m trainer ...` (accelerate's
    own `launch --cpu` starts several CPU processes only through mpirun)."""
    args = ["--model", str(tiny_vl), "--train_file", str(demo4), "--max_length", "2048", "--max_steps", "1",
            "--grad_accum", "2", "--precision", "fp32", "--gradient_checkpointing", "false", "--progress_bar", "false",
            "--plot", "false", "--learning_rate", "1e-3", "--seed", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "trainer", *args,
                          "--per_device_batch", "1", "--output_dir", str(tmp_path / "two")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert two.returncode == 0, two.stderr[-3000:]
    one = T.run(cfg_for(tiny_vl, demo4, tmp_path / "one", per_device_batch=2, grad_accum=2, max_steps=1))
    log = [json.loads(l) for l in open(tmp_path / "two" / "train_log.jsonl")]
    assert "world 2" in two.stdout + two.stderr
    assert log[0]["target_tokens"] == one["history"][0]["target_tokens"]
    assert log[0]["loss"] == pytest.approx(one["history"][0]["loss"], rel=1e-5)
    assert log[0]["grad_norm"] == pytest.approx(one["history"][0]["grad_norm"], rel=1e-4)
