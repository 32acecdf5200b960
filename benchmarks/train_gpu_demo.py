"""Bundled demo data: does training on trainer/data/demo_train.jsonl teach a tiny random judge the
output format? Loss per step, plus the share of greedy generations in the judge format, before vs after.

    python benchmarks/train_gpu_demo.py --out demo.json      # GPU: the run's default bf16 path; CPU: fp32

Model: flex_models.tiny.make_tiny("vl") (random, ~0.4M params, own small tokenizer).
Eval prompts: 16 held-out rows (trainer.make_demo_data.make_rows(seed=1); not in the training file)
and the first 16 training prompts. Generation: greedy, --max-new tokens, after the prompt's "<think>\\n".
"In format": "<think>" + generation matches <think> ... </think><answer>N</answer><answer>M</answer>
(the pairwise parse rule of flex_tasks.parsing.pairwise_scores must also succeed).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMAT = re.compile(r"^<think>.*?</think>\s*<answer>\d+</answer>\s*<answer>\d+</answer>", re.S)


def in_format(generated: str) -> bool:
    from flex_tasks.parsing import pairwise_scores

    text = "<think>\n" + generated
    return bool(FORMAT.match(text)) and pairwise_scores(text).ok


@torch.no_grad()
def format_share(model_dir: str, prompts: list[str], device, max_new: int = 80) -> dict:
    from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    outs = []
    for p in prompts:
        ids = tok(p, return_tensors="pt").input_ids.to(device)
        gen = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
        outs.append(tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=False).split("<|im_end|>")[0])
    ok = [in_format(o) for o in outs]
    return {"share": sum(ok) / len(ok), "n": len(ok), "examples": outs[:2]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--max-new", type=int, default=320, help="new tokens per generation (the tiny tokenizer "
                    "spends ~1 token per 1-3 characters; a demo completion is ~150 characters)")
    ap.add_argument("--out")
    ap.add_argument("--workdir", default="")
    args = ap.parse_args(argv)
    from flex_models.tiny import make_tiny
    from trainer import train as T
    from trainer.config import load_config
    from trainer.make_demo_data import make_rows

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="flex-demo-"))
    model_dir = make_tiny("vl", work / "tiny-vl")
    train_file = ROOT / "trainer" / "data" / "demo_train.jsonl"
    train_prompts = [json.loads(line)["prompt"] for line in train_file.read_text().splitlines()][:16]
    held = [r["prompt"] for r in make_rows(16, seed=1)]
    held = [p for p in held if p not in set(train_prompts)]
    before = {"held_out": format_share(str(model_dir), held, device, args.max_new), "train": format_share(str(model_dir), train_prompts, device, args.max_new)}
    print("[before]", json.dumps({k: v["share"] for k, v in before.items()}), flush=True)
    gpu = device.type == "cuda"
    overrides = ["--model", str(model_dir), "--train_file", str(train_file), "--output_dir", str(work / "run"),
                 "--max_length", "2048", "--epochs", str(args.epochs), "--per_device_batch", "4", "--grad_accum", "2",
                 "--learning_rate", "3e-3", "--scheduler", "cosine", "--warmup_ratio", "0.05", "--weight_decay", "0.0",
                 "--precision", "bf16" if gpu else "fp32", "--gradient_checkpointing", "false",
                 "--attn_implementation", "varlen" if gpu else "sdpa", "--progress_bar", "false", "--plot", "false", "--seed", "0"]
    res = T.run(load_config(None, overrides))
    hist = res["history"]
    after = {"held_out": format_share(res["model_dir"], held, device, args.max_new), "train": format_share(res["model_dir"], train_prompts, device, args.max_new)}
    print("[after]", json.dumps({k: v["share"] for k, v in after.items()}), flush=True)
    out = {"max_new_tokens": args.max_new, "device": torch.cuda.get_device_name() if gpu else "cpu", "epochs": args.epochs, "steps": len(hist),
           "precision": "bf16 weights + fp32 masters, varlen" if gpu else "fp32, sdpa",
           "loss_first": hist[0]["loss"], "loss_last": hist[-1]["loss"], "losses": [round(r["loss"], 4) for r in hist],
           "format_share_before": {k: v["share"] for k, v in before.items()},
           "format_share_after": {k: v["share"] for k, v in after.items()},
           "n_eval": {k: v["n"] for k, v in after.items()},
           "examples_after": after["held_out"]["examples"], "examples_before": before["held_out"]["examples"]}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
