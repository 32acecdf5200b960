"""model_args validation, family detection from config.json, request settings (no weights)."""
import json

import pytest

from flex_models.args import FlexArgError, parse_args, parse_limit_mm
from flex_models.family import CheckpointError, family_of, load_checkpoint
from flex_models.requests import GenKwargsError, build_spec, cut_at_stop


def test_defaults_and_string_batch_size():
    a = parse_args({"pretrained": "x/y", "batch_size": "4", "backend": "hf"})
    assert (a.backend, a.batch_size, a.max_new_tokens, a.assistant_prefix, a.seed) == ("hf", 4, 4096, "", 0)
    assert parse_args({"pretrained": "x/y", "batch_size": 1, "backend": "hf"}).batch_size == 1


def test_backend_auto_resolves_to_vllm_when_importable():
    assert parse_args({"pretrained": "x/y"}).backend == "vllm"


def test_unknown_arg_names_itself_and_suggests():
    with pytest.raises(FlexArgError, match=r"unknown model_args 'max_new_token'.*Did you mean 'max_new_tokens'"):
        parse_args({"pretrained": "x/y", "max_new_token": 8})


def test_bad_choice_lists_allowed_values():
    with pytest.raises(FlexArgError, match=r"backend='vlm'.*vllm, hf, auto.*Did you mean 'vllm'"):
        parse_args({"pretrained": "x/y", "backend": "vlm"})
    with pytest.raises(FlexArgError, match=r"dtype='fp32'.*float32"):
        parse_args({"pretrained": "x/y", "dtype": "fp32"})


@pytest.mark.parametrize("raw, match", [
    ({"backend": "hf", "tensor_parallel_size": "2"}, "tensor_parallel_size only applies to backend=vllm"),
    ({"backend": "hf", "kv_cache_memory_bytes": "1000"}, "kv_cache_memory_bytes only applies to backend=vllm"),
    ({"backend": "vllm", "device_map": "auto"}, "device_map only applies to backend=hf"),
    ({"backend": "vllm", "data_parallel_size": "2", "tensor_parallel_size": "2"}, "data_parallel_size>1 with"),
    ({"max_new_tokens": "0"}, "max_new_tokens='0': must be >= 1"),
    ({"enforce_eager": "maybe"}, "enforce_eager='maybe': expected a boolean"),
    ({"gpu_memory_utilization": "1.5"}, r"gpu_memory_utilization='1.5': expected a float in \(0, 1\]"),
])
def test_contradictory_or_malformed_args(raw, match):
    with pytest.raises(FlexArgError, match=match):
        parse_args({"pretrained": "x/y", **raw})


def test_pretrained_required():
    with pytest.raises(FlexArgError, match="pretrained is required"):
        parse_args({"backend": "hf"})


def test_limit_mm_formats():
    assert parse_limit_mm("image=2,audio=1") == {"image": 2, "audio": 1}
    assert parse_limit_mm('{"image": 3}') == {"image": 3}
    with pytest.raises(FlexArgError, match=r"unknown modality 'images'.*Did you mean 'image'"):
        parse_limit_mm("images=2")


def test_assistant_prefix_unescapes_newline():
    assert parse_args({"pretrained": "x", "assistant_prefix": "<think>\\n"}).assistant_prefix == "<think>\n"


def test_family_from_config_not_name(tmp_path):
    # a directory named like a VL model holding an Omni config is Omni
    d = tmp_path / "Flex-VL-7B"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2_5_omni"}))
    assert load_checkpoint(str(d)).family == "omni"
    assert family_of({"architectures": ["Qwen2_5_VLForConditionalGeneration"]}) == "vl"
    with pytest.raises(CheckpointError, match="thinker-only"):
        family_of({"model_type": "qwen2_5_omni_thinker"}, "t")
    with pytest.raises(CheckpointError, match="model_type='llama'.*not a supported family"):
        family_of({"model_type": "llama"}, "l")


def test_tiny_checkpoints_detected(tiny_vl, tiny_omni):
    assert load_checkpoint(str(tiny_vl)).family == "vl"
    assert load_checkpoint(str(tiny_omni)).family == "omni"


def test_missing_checkpoint_names_pretrained(tmp_path):
    with pytest.raises(CheckpointError, match=r"pretrained='/nonexistent/ckpt': no such checkpoint directory"):
        load_checkpoint("/nonexistent/ckpt")
    with pytest.raises(CheckpointError, match=r"pretrained='nobody/no-such-model'.*HF_HUB_OFFLINE"):
        load_checkpoint("nobody/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_checkpoint(str(tmp_path / "empty"))


def test_model_fails_on_bad_args_before_loading(tmp_path):
    from flex_models.model import FlexJudge

    with pytest.raises(FlexArgError, match="temperatur"):
        FlexJudge(pretrained=str(tmp_path), temperatur="0.1")
    with pytest.raises(CheckpointError, match="pretrained"):
        FlexJudge(pretrained=str(tmp_path / "missing"), backend="hf")


def test_seed_precedence_and_sampling():
    s = build_spec({"temperature": 0.6, "top_p": 0.95, "max_tokens": 7}, 4096, doc_seed=3, default_seed=0)
    assert (s.seed, s.max_new_tokens, s.greedy, s.top_p) == (3, 7, False, 0.95)
    assert build_spec({"seed": 11}, 10, doc_seed=3, default_seed=0).seed == 11
    assert build_spec({}, 10, doc_seed=None, default_seed=5).seed == 5
    assert build_spec({"temperature": 0.6, "do_sample": False}, 10).greedy
    assert build_spec({"do_sample": True}, 10).temperature == 1.0
    assert build_spec({"until": ["\n\n", ""]}, 10).stop == ("\n\n",)
    with pytest.raises(GenKwargsError, match="num_beams=4.*task t doc 1"):
        build_spec({"num_beams": 4}, 10, where="task t doc 1")


def test_cut_at_stop_earliest_and_include():
    text = "<think>a</think><answer>3</answer><answer>5</answer>"
    assert cut_at_stop(text, ["</answer>", "<|im_end|>"], include=True) == "<think>a</think><answer>3</answer>"
    assert cut_at_stop(text, ["</answer>"], include=False) == "<think>a</think><answer>3"
    assert cut_at_stop(text, ["zzz"]) == text


def test_fixed_length_kwargs_and_engine_only_load_format():
    s = build_spec({"max_new_tokens": 9, "min_tokens": 9, "ignore_eos": True}, 4096)
    assert (s.min_new_tokens, s.ignore_eos, s.max_new_tokens) == (9, True, 9)
    assert build_spec({}, 10).ignore_eos is False
    assert parse_args({"pretrained": "x", "backend": "vllm", "load_format": "dummy"}).load_format == "dummy"
    with pytest.raises(FlexArgError, match="load_format"):
        parse_args({"pretrained": "x", "backend": "hf", "load_format": "dummy"})
