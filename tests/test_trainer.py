"""Trainer on tiny checkpoints (CPU): config strictness, exact completion-only masking, bad rows,
batch 4 x accum 1 == batch 1 x accum 4, pinned losses, resume, frozen towers, data filter."""
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from trainer import data as D
from trainer import train as T
from trainer.config import load_config
from trainer.data_pipeline import build_prompt, filter_traces
from trainer.make_demo_data import make_rows

PROMPT = build_prompt("What is 2 + 2?", "4", "5")
TEXT = "Assistant 1 is right.\n</think><answer>9</answer><answer>2</answer>"


@pytest.fixture(scope="module")
def demo8(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in make_rows(8)))
    return p


def cfg_for(model, train_file, out, **kw):
    base = dict(model=str(model), train_file=str(train_file), output_dir=str(out), max_length=2048,
                per_device_batch=4, grad_accum=1, max_steps=2, learning_rate=1e-3, warmup_ratio=0.0,
                scheduler="constant", weight_decay=0.0, precision="fp32", gradient_checkpointing=False,
                progress_bar=False, plot=False, seed=0)
    base.update(kw)
    return load_config(None, [f"--{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in base.items()])


# ---------------------------------------------------------------- config
def test_unknown_key_and_wrong_type_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'learning_rat'.*learning_rate"):
        load_config(None, ["--model", "m", "--train_file", "f", "--learning_rat", "1"])
    with pytest.raises(ValueError, match="config key 'grad_accum' wants int"):
        load_config(None, ["--model", "m", "--train_file", "f", "--grad_accum", "two"])
    y = tmp_path / "c.yaml"
    y.write_text("model: m\ntrain_file: f\nepochs: 1.5\n")
    with pytest.raises(ValueError, match="'epochs' wants int"):
        load_config(str(y))
    cfg = load_config(str(Path(T.__file__).parent / "configs" / "flex_vl.yaml"), ["--resume", "--learning_rate", "2e-5"])
    assert cfg.resume is True and cfg.learning_rate == 2e-5 and cfg.adam_betas == [0.9, 0.95]
    assert main_rc(["--config", str(y)]) == 2


def main_rc(argv):
    return T.main(argv)


def test_lr_schedule_is_pure_warmup_then_cosine():
    f = [T.lr_factor(s, 20, 2, "cosine", 0.0) for s in range(20)]
    assert f[0] == 0.5 and f[1] == 1.0 and f[2] == 1.0 and f[-1] < 0.01
    assert all(a >= b for a, b in zip(f[1:], f[2:]))


# ---------------------------------------------------------------- masking
def test_masking_is_exact_at_token_level(tiny_vl):
    tok = AutoTokenizer.from_pretrained(tiny_vl)
    s = D.encode_row({"prompt": PROMPT, "text": TEXT}, tok, 4096)
    full = tok(PROMPT + TEXT + "<|im_end|>", add_special_tokens=False).input_ids
    assert s.input_ids == full
    assert tok.decode(s.input_ids[:s.n_prompt]) == PROMPT  # header and '<think>\n' are masked
    assert tok.decode(s.input_ids[s.n_prompt:]) == TEXT + "<|im_end|>"  # every completion token trained
    assert tok.decode(s.input_ids[s.n_prompt - 1:s.n_prompt + 0]).endswith("\n")
    b = D.pack([s, s])
    n = len(s.input_ids)
    t = b["targets"][0].tolist()
    for k in range(2):  # per packed sample: target at i is token i+1 iff i+1 is a completion token
        seg = t[k * n:(k + 1) * n]
        assert seg[:s.n_prompt - 1] == [D.IGNORE] * (s.n_prompt - 1)
        assert seg[s.n_prompt - 1:n - 1] == s.input_ids[s.n_prompt:]
        assert seg[n - 1] == D.IGNORE  # never predict across the sample boundary
    assert b["position_ids"][0].tolist() == list(range(n)) * 2
    assert b["cu_seqlens"].tolist() == [0, n, 2 * n] and b["n_target"] == 2 * s.n_target
    assert tok.pad_token == "<|fim_pad|>"


def test_bad_rows_are_reported_with_line_numbers(tiny_vl, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_vl)
    good = json.dumps({"prompt": PROMPT, "text": TEXT})
    lines = [good, json.dumps({"prompt": PROMPT}), json.dumps({"prompt": PROMPT, "text": "  "}),
             json.dumps({"prompt": PROMPT, "text": "x" * 5000}), "{not json", good,
             json.dumps({"prompt": "no header", "text": "t"})]
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(D.BadRowsError) as e:
        D.load_samples(p, tok, 2048)
    msg = str(e.value)
    assert "5 bad row(s)" in msg
    import re

    for line, why in [(2, "missing or non-string field 'text'"), (3, "empty completion"), (4, r"\d+ tokens > max_length 2048"),
                      (5, "invalid JSON"), (7, "prompt has no assistant header")]:
        assert re.search(re.escape(f"{p}:{line}: ") + why, msg), (line, msg)
    seen = []
    kept = D.load_samples(p, tok, 2048, bad_rows="skip", log=seen.append)
    assert [s.line for s in kept] == [1, 6] and "skipping 5 bad row(s) of 7" in seen[0]


def test_rows_are_read_by_the_one_jsonl_reader(tiny_vl, tmp_path):
    """trainer data and the data pipeline read through flex_models.jsonl: a row that is a JSON
    string is "not a JSON object" (it used to come back as its own text, read as the reason), a
    bad byte is named by position, and a last line without its newline is a row."""
    from trainer.data_pipeline import PipelineError, read_objects

    tok = AutoTokenizer.from_pretrained(tiny_vl)
    good = json.dumps({"prompt": PROMPT, "text": TEXT})
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b"\n".join([good.encode(), b'"just a string"', b'{"prompt": "\xff"}', b"", good.encode()]))
    with pytest.raises(D.BadRowsError) as e:
        D.load_samples(p, tok, 2048)
    assert f"{p}:2: row is not a JSON object" in str(e.value)
    assert f"{p}:3: not UTF-8 (byte 0xff at byte 13 of the line)" in str(e.value)
    kept = D.load_samples(p, tok, 2048, bad_rows="skip", log=lambda _: None)
    assert [s.line for s in kept] == [1, 5]  # line 4 is blank; line 5 has no newline
    with pytest.raises(PipelineError) as e:
        read_objects(str(p), ("prompt", "text"))
    assert f"{p}:2: not a JSON object" in str(e.value) and f"{p}:3: not UTF-8 (byte 0xff" in str(e.value)
    assert "2 bad line(s)" in str(e.value)


# ---------------------------------------------------------------- the loop
def test_batch4_accum1_equals_batch1_accum4(tiny_vl, demo8, tmp_path):
    a = T.run(cfg_for(tiny_vl, demo8, tmp_path / "a", per_device_batch=4, grad_accum=1))
    b = T.run(cfg_for(tiny_vl, demo8, tmp_path / "b", per_device_batch=1, grad_accum=4))
    for ra, rb in zip(a["history"], b["history"]):
        assert ra["target_tokens"] == rb["target_tokens"]
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-4)
    wa = _weights(a["model_dir"])
    wb = _weights(b["model_dir"])
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def _weights(d):
    from safetensors.torch import load_file

    out = {}
    for f in Path(d).glob("*.safetensors"):
        out.update(load_file(f))
    return out


# Pinned on flex_models.tiny seed 0 and the bundled demo rows; if the tiny builder changes, re-pin.
PINNED = [6.168103, 5.599740, 5.091949, 4.686982]


def test_losses_pinned_and_loss_falls(tiny_vl, demo8, tmp_path):
    r = T.run(cfg_for(tiny_vl, demo8, tmp_path / "p", per_device_batch=2, grad_accum=2, max_steps=4,
                      learning_rate=3e-3))
    losses = [h["loss"] for h in r["history"]]
    assert losses[-1] < losses[0]
    assert all(math.isfinite(x) for x in losses)
    if PINNED is not None:
        assert losses == pytest.approx(PINNED, abs=1e-4)
    log = [json.loads(l) for l in open(tmp_path / "p" / "train_log.jsonl")]
    assert [x["step"] for x in log] == [1, 2, 3, 4]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "target_tokens"} <= set(log[0])
    saved = load_config(str(tmp_path / "p" / "model" / "flex_train_config.yaml"))
    assert saved.per_device_batch == 2 and saved.learning_rate == 3e-3


def test_resume_reproduces_the_loss_sequence(tiny_vl, demo8, tmp_path, monkeypatch):
    kw = dict(per_device_batch=2, grad_accum=1, max_steps=6, save_every=2, scheduler="cosine", warmup_ratio=0.2)
    ref = T.run(cfg_for(tiny_vl, demo8, tmp_path / "ref", **kw))["history"]
    crash_at = 5
    orig = T.Run.train_step

    def crashing(self, step):
        if step == crash_at - 1:
            raise KeyboardInterrupt("simulated crash")
        return orig(self, step)

    monkeypatch.setattr(T.Run, "train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        T.run(cfg_for(tiny_vl, demo8, tmp_path / "x", **kw))
    ck = tmp_path / "x" / "checkpoints"
    assert (ck / "last").read_text() == "step-4" and not list(ck.glob(".tmp-*"))
    # no pickle anywhere: safetensors + JSON + the YAML config only
    assert sorted(f.name for f in (ck / "step-4").iterdir()) == [
        "config.yaml", "model.safetensors", "optimizer.safetensors", "rng-0.safetensors", "trainer_state.json"]
    monkeypatch.setattr(T.Run, "train_step", orig)
    with pytest.raises(ValueError, match="'grad_accum'"):  # another data order: refused
        T.run(cfg_for(tiny_vl, demo8, tmp_path / "x", resume=True, **dict(kw, grad_accum=2)))
    res = T.run(cfg_for(tiny_vl, demo8, tmp_path / "x", resume=True, **kw))["history"]
    assert [h["step"] for h in res] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ref, res):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["lr"] == b["lr"]
    # the run is finished now: a further --resume says so and trains nothing
    assert T.run(cfg_for(tiny_vl, demo8, tmp_path / "x", resume=True, **kw))["finished"]


@pytest.mark.parametrize("family", ["vl", "omni"])
def test_towers_get_no_grad_and_no_optimizer_state(family, tiny_vl, tiny_omni, demo8, tmp_path):
    from accelerate import Accelerator

    from trainer import modeling as M

    model = tiny_vl if family == "vl" else tiny_omni
    cfg = cfg_for(model, demo8, tmp_path, max_steps=1)
    tok = AutoTokenizer.from_pretrained(model)
    full, lm = M.load_for_training(str(model), family, gradient_checkpointing=False)
    run = T.Run(cfg, Accelerator(cpu=True), full, lm, D.load_samples(demo8, tok, 2048), full.config.get_text_config(), family)
    run.train_step(0)
    towers = M.frozen_modules(full, family)
    assert set(towers) == ({"visual"} if family == "vl" else {"visual", "audio_tower"})
    in_opt = {id(p) for g in run.opt.param_groups for p in g["params"]}
    state = {id(p) for p in run.opt.state}
    for name, tower in towers.items():
        params = list(tower.parameters())
        assert params and all(not p.requires_grad and p.grad is None for p in params), name
        assert not ({id(p) for p in params} & (in_opt | state)), name
    merger = full.model.visual.merger if family == "vl" else full.visual.merger
    assert all(not p.requires_grad for p in merger.parameters())
    assert in_opt == {id(p) for p in lm.parameters()} and len(state) == len(in_opt)


# ---------------------------------------------------------------- data pipeline filter
def test_filter_keeps_gold_agreeing_longest_and_counts_reasons():
    def tr(prompt, text, n, gold=(8, 3)):
        return {"prompt": prompt, "text": text, "n_tokens": n, "gold": list(gold) if gold else None, "row": 0, "seed": 13}

    ok = "r</think><answer>8</answer><answer>3</answer>"
    traces = [tr("p1", ok, 10), tr("p1", "longer " + ok, 20), tr("p2", "r</think><answer>3</answer><answer>8</answer>", 5),
              tr("p3", "r</think><answer>8</answer>", 5), tr("p4", ok, 5, gold=None), tr("p5", ok, 7)]
    rows, why = filter_traces(traces, max_rows=10)
    assert rows == [{"prompt": "p1", "text": "longer " + ok}, {"prompt": "p5", "text": ok}]
    assert why["kept"] == 2 and why["dropped: scores differ from gold"] == 1
    assert why["dropped: fewer than two <answer>N</answer>"] == 1 and why["dropped: no gold score pair"] == 1
    assert why["dropped: shorter trace of the same prompt"] == 1
    rows, why = filter_traces(traces, max_rows=1)
    assert len(rows) == 1 and why["dropped: over --max-rows cap"] == 1


def test_bundled_demo_data_is_current_and_in_train_format():
    path = Path(T.__file__).parent / "data" / "demo_train.jsonl"
    rows = [json.loads(l) for l in open(path)]
    assert rows == make_rows(len(rows)) and 32 <= len(rows) <= 64
    for r in rows:
        assert r["prompt"].endswith("<|im_start|>assistant\n<think>\n")
        assert r["text"].count("<answer>") == 2 and "</think>" in r["text"]


# ---------------------------------------------------------------- GPU-speed options, on CPU
def test_selective_checkpointing_is_the_same_math(tiny_vl, demo8, tmp_path):
    kw = dict(per_device_batch=2, grad_accum=2, max_steps=2, learning_rate=3e-3)
    full = T.run(cfg_for(tiny_vl, demo8, tmp_path / "all", gradient_checkpointing=True, **kw))["history"]
    some = T.run(cfg_for(tiny_vl, demo8, tmp_path / "one", gradient_checkpointing=True, checkpoint_layers=1, **kw))["history"]
    assert [h["loss"] for h in full] == pytest.approx(PINNED[:2], abs=1e-4)
    assert [h["loss"] for h in some] == pytest.approx([h["loss"] for h in full], abs=1e-6)


def test_bf16_weights_with_fp32_masters_train_resume_and_export_masters(tiny_vl, demo8, tmp_path, monkeypatch):
    """param_dtype bf16 (the CUDA default under precision bf16) also runs on CPU: bf16 module,
    fp32 masters in the optimizer, resume from the saved masters, export of the fp32 masters."""
    assert T.bf16_weights(cfg_for(tiny_vl, demo8, tmp_path / "a", precision="bf16"), cuda=True)
    assert not T.bf16_weights(cfg_for(tiny_vl, demo8, tmp_path / "a", precision="bf16"), cuda=False)
    assert not T.bf16_weights(cfg_for(tiny_vl, demo8, tmp_path / "a"), cuda=True)  # fp32 stays fp32
    with pytest.raises(ValueError, match="param_dtype"):
        cfg_for(tiny_vl, demo8, tmp_path / "a", param_dtype="bf16")
    kw = dict(per_device_batch=2, grad_accum=2, max_steps=4, learning_rate=3e-3, precision="bf16", param_dtype="bf16",
              save_every=2)
    ref = T.run(cfg_for(tiny_vl, demo8, tmp_path / "ref", **kw))
    losses = [h["loss"] for h in ref["history"]]
    assert losses[-1] < losses[0] and losses == pytest.approx(PINNED, abs=0.05)  # bf16 rounding only
    orig = T.Run.train_step

    def crashing(self, step):
        assert next(self.lm.parameters()).dtype == torch.bfloat16
        if step == 3:
            raise KeyboardInterrupt("simulated crash")
        return orig(self, step)

    monkeypatch.setattr(T.Run, "train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        T.run(cfg_for(tiny_vl, demo8, tmp_path / "x", **kw))
    monkeypatch.setattr(T.Run, "train_step", orig)
    res = T.run(cfg_for(tiny_vl, demo8, tmp_path / "x", resume=True, **kw))
    assert [h["loss"] for h in res["history"]] == pytest.approx(losses, abs=1e-6)
    w, wr = _weights(ref["model_dir"]), _weights(res["model_dir"])
    k = next(k for k in w if "layers.0.mlp.up_proj" in k)
    assert w[k].dtype == torch.float32 and not torch.equal(w[k].bfloat16().float(), w[k])  # masters, not bf16
    assert all(torch.equal(w[n], wr[n]) for n in w)


@pytest.mark.parametrize("family", ["vl", "omni"])
def test_fsdp_config_wraps_the_trained_family(family, tiny_vl, tiny_omni, monkeypatch):
    """The shipped FSDP accelerate config must resolve to a layer class the model has, for both
    families: accelerate refuses a wrap list naming any class the model lacks (this failed on the
    H200 x2 run of 2026-11-29 with the config listing both families' layers). The class reaches
    accelerate on its plugin object; the environment the launch exported is left as it was."""
    import os

    import yaml

    from trainer import modeling as M
    from trainer.train import fsdp_plugin

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "trainer/configs/accelerate_fsdp.yaml").read_text())
    assert fsdp_plugin(family) is None  # not an FSDP launch
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` exports from the config
    monkeypatch.setenv("FSDP_VERSION", str(cfg["fsdp_config"]["fsdp_version"]))
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", cfg["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"])
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", cfg["fsdp_config"]["fsdp_auto_wrap_policy"])
    before = dict(os.environ)
    full, lm = M.load_for_training(str(tiny_vl if family == "vl" else tiny_omni), family)
    plugin = fsdp_plugin(family)
    assert dict(os.environ) == before
    assert plugin.fsdp_version == 2  # the rest of the launch's settings still come from it
    plugin.set_auto_wrap_policy(lm)  # accelerate's check: raises for a class the model lacks
    assert plugin.transformer_cls_names_to_wrap == [type(lm.decoder.layers[0]).__name__]
