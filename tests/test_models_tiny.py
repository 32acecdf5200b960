"""Tiny checkpoints: deterministic per seed, the shapes and special tokens the contracts need."""
import hashlib
import json

from flex_models.tiny import main, make_tiny


def digest(d):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(d.iterdir()) if f.name in ("model.safetensors", "tokenizer.json", "config.json")}


def test_same_seed_same_files_other_seed_other_weights(tmp_path, tiny_vl):
    again = make_tiny("vl", tmp_path / "again", seed=0)
    other = make_tiny("vl", tmp_path / "other", seed=1)
    assert digest(again) == digest(tiny_vl)
    assert digest(other)["model.safetensors"] != digest(tiny_vl)["model.safetensors"]
    assert digest(other)["tokenizer.json"] == digest(tiny_vl)["tokenizer.json"]


def test_configs_and_special_tokens(tiny_vl, tiny_omni):
    from transformers import AutoTokenizer

    vl = json.loads((tiny_vl / "config.json").read_text())
    omni = json.loads((tiny_omni / "config.json").read_text())
    assert vl["model_type"] == "qwen2_5_vl" and omni["model_type"] == "qwen2_5_omni"
    assert omni["architectures"] == ["Qwen2_5OmniForConditionalGeneration"]
    tok = AutoTokenizer.from_pretrained(tiny_omni)
    assert tok.pad_token == "<|fim_pad|>" and tok.eos_token == "<|im_end|>"
    for t in ("<|im_start|>", "<|vision_start|>", "<|IMAGE|>", "<|AUDIO|>", "<|audio_bos|>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    assert omni["thinker_config"]["audio_token_index"] == tok.convert_tokens_to_ids("<|AUDIO|>")
    assert vl["image_token_id"] == AutoTokenizer.from_pretrained(tiny_vl).convert_tokens_to_ids("<|image_pad|>")


def test_cli(tmp_path, capsys):
    assert main(["--family", "omni", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "processor_config.json").is_file()
    assert str(tmp_path / "o") in capsys.readouterr().out
