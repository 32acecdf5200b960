"""Tiny random Qwen2.5-VL / Qwen2.5-Omni checkpoints, built offline in seconds.

`make_tiny("vl" | "omni", out_dir, seed=0)` writes config, random weights, a byte-level BPE
tokenizer trained on a few local lines (Qwen special tokens appended after it) and the
family's processor. The result loads in vLLM (CPU) and transformers; shapes follow
docs/ENVIRONMENT notes (text hidden 128, 2 layers, head_dim 64, mrope [8, 12, 12]).
The same seed gives the same files.

CLI: `python -m flex_models.tiny --family vl OUT` (also `flex-judge make-tiny`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from flex_models.args import HelpFormatter
from flex_models.family import FAMILIES

# Text the tokenizer is trained on: judge-prompt vocabulary so prompts tokenize compactly.
_CORPUS = [
    "You are a helpful assistant. The assistant first performs a detailed, step-by-step reasoning",
    "process in its mind and then provides the user with the answer. <think> </think> <answer> </answer>",
    "Now the user asks you to judge the performance of two AI assistants in response to the question.",
    "Score assistants 1-10 (higher=better). Criteria includes helpfulness, relevance, accuracy, detail.",
    "[Question] [Assistant 1's Answer] [Assistant 2's Answer] [Assistant A's Image] [[A>B]] [[B>A]]",
    "Listen to the generated speech audio, and score this speech on a scale from 1.0 to 5.0.",
    "The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 10",
    "Avoid order, length, style or other bias. After thinking, when you finally reach a conclusion,",
]

# Qwen's pre-tokenizer split pattern (contractions, letters, single digits, punctuation, spaces).
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_COMMON_SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
]
_OMNI_SPECIALS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|IMAGE|>", "<|VIDEO|>"]

# A small Qwen-style chat template (text / image / video / audio content parts).
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|vision_start|>' + IMAGE_TOKEN + '<|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' -%}{{- '<|vision_start|>' + VIDEO_TOKEN + '<|vision_end|>' -}}"
    "{%- elif part['type'] == 'audio' -%}{{- '<|audio_bos|><|AUDIO|><|audio_eos|>' -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def _chat_template(family: str) -> str:
    image, video = ("<|image_pad|>", "<|video_pad|>") if family == "vl" else ("<|IMAGE|>", "<|VIDEO|>")
    return _CHAT_TEMPLATE.replace("IMAGE_TOKEN", repr(image)).replace("VIDEO_TOKEN", repr(video))


def _build_tokenizer(family: str):
    """Byte-level BPE trained on _CORPUS, then the family's special tokens appended."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    specials = _COMMON_SPECIALS + (_OMNI_SPECIALS if family == "omni" else [])
    tok.add_special_tokens(specials)
    extra = {}
    if family == "omni":
        extra = {
            "image_token": "<|IMAGE|>", "video_token": "<|VIDEO|>", "audio_token": "<|AUDIO|>",
            "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
            "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
        }
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|fim_pad|>",
        bos_token=None, unk_token=None, model_max_length=32768, padding_side="left",
        chat_template=_chat_template(family), extra_special_tokens=extra,
    )


def _text_shape(vocab: int) -> dict:
    return dict(
        vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "mrope_section": [8, 12, 12], "rope_theta": 1e6},
        rms_norm_eps=1e-6, tie_word_embeddings=False,
    )


def _vision_shape(out_hidden: int) -> dict:
    return dict(
        depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=out_hidden,
        fullatt_block_indexes=[1], window_size=112, patch_size=14, spatial_merge_size=2,
        temporal_patch_size=2,
    )


def _ids(tok) -> dict:
    c = tok.convert_tokens_to_ids
    return {name: c(t) for name, t in [
        ("eos", "<|im_end|>"), ("pad", "<|fim_pad|>"), ("bos", "<|endoftext|>"),
        ("vs", "<|vision_start|>"), ("ve", "<|vision_end|>"),
        ("image_pad", "<|image_pad|>"), ("video_pad", "<|video_pad|>"),
    ]}


def _vocab_size(tok) -> int:
    return ((len(tok) + 63) // 64) * 64


def _vl_model(tok):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    i = _ids(tok)
    text = _text_shape(_vocab_size(tok))
    text.update(bos_token_id=i["bos"], eos_token_id=i["eos"], pad_token_id=i["pad"])
    cfg = Qwen2_5_VLConfig(
        text_config=text, vision_config=_vision_shape(128),
        image_token_id=i["image_pad"], video_token_id=i["video_pad"],
        vision_start_token_id=i["vs"], vision_end_token_id=i["ve"],
    )
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return Qwen2_5_VLForConditionalGeneration(cfg)


def _omni_model(tok):
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    c = tok.convert_tokens_to_ids
    i = _ids(tok)
    text = _text_shape(_vocab_size(tok))
    text.update(bos_token_id=i["bos"], eos_token_id=i["eos"], pad_token_id=i["pad"])
    thinker = dict(
        text_config=text, vision_config=_vision_shape(128),
        audio_config=dict(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2,
                          encoder_ffn_dim=128, d_model=64, output_dim=128, n_window=100,
                          max_source_positions=1500),
        audio_token_index=c("<|AUDIO|>"), image_token_index=c("<|IMAGE|>"),
        video_token_index=c("<|VIDEO|>"), audio_start_token_id=c("<|audio_bos|>"),
        audio_end_token_id=c("<|audio_eos|>"), vision_start_token_id=i["vs"],
        vision_end_token_id=i["ve"], user_token_id=c("user") if c("user") is not None else 0,
        pad_token_id=i["pad"],
    )
    # The talker is never instantiated (enable_audio_output=False); its ids only need to be in range.
    talker = dict(
        vocab_size=64, tts_text_start_token_id=1, tts_text_end_token_id=2, tts_text_pad_token_id=3,
        tts_codec_start_token_id=4, tts_codec_end_token_id=5, tts_codec_pad_token_id=6,
        tts_codec_mask_token_id=7, vision_start_token_id=8, vision_end_token_id=9,
        audio_start_token_id=10, audio_end_token_id=11, audio_token_index=12,
        image_token_index=13, video_token_index=14,
    )
    cfg = Qwen2_5OmniConfig(thinker_config=thinker, talker_config=talker, enable_audio_output=False)
    cfg.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    return Qwen2_5OmniForConditionalGeneration(cfg)


def _processor(family: str, tok):
    from transformers import Qwen2VLImageProcessor

    img_kw = dict(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64)
    size = {"shortest_edge": img_kw["min_pixels"], "longest_edge": img_kw["max_pixels"]}
    image_proc = Qwen2VLImageProcessor(size=size, **img_kw)
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    video_proc = Qwen2VLVideoProcessor(size=size, **img_kw)
    if family == "vl":
        from transformers import Qwen2_5_VLProcessor

        return Qwen2_5_VLProcessor(image_processor=image_proc, tokenizer=tok,
                                   video_processor=video_proc, chat_template=tok.chat_template)
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000)
    return Qwen2_5OmniProcessor(image_processor=image_proc, video_processor=video_proc,
                                feature_extractor=fe, tokenizer=tok, chat_template=tok.chat_template)


def make_tiny(family: str, out_dir, seed: int = 0) -> Path:
    """Write a random tiny checkpoint of `family` ("vl" or "omni") to `out_dir`; return the path."""
    if family not in FAMILIES:
        raise ValueError(f"make_tiny: family={family!r}; allowed: {', '.join(FAMILIES)}")
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _build_tokenizer(family)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = _vl_model(tok) if family == "vl" else _omni_model(tok)
    finally:
        torch.random.set_rng_state(state)
    model = model.to(torch.float32).eval()
    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    _processor(family, tok).save_pretrained(out)
    tok.save_pretrained(out)
    (out / "flex_tiny.json").write_text(json.dumps({"family": family, "seed": seed}) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="flex-judge make-tiny", description=__doc__.split("\n")[0], formatter_class=HelpFormatter)
    ap.add_argument("--family", choices=FAMILIES, required=True, help="required: which family to build")
    ap.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")
    ap.add_argument("out", help="output directory")
    args = ap.parse_args(argv)
    path = make_tiny(args.family, args.out, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
