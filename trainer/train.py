"""Flex-Judge SFT with accelerate: text-only reasoning traces -> a multimodal judge.

    python -m trainer --config trainer/configs/tiny_cpu.yaml [--key value ...]
    accelerate launch --config_file trainer/configs/accelerate_1gpu.yaml -m trainer --config trainer/configs/flex_vl.yaml
    python -m trainer --config ... --resume          # continue from output_dir/checkpoints/last
    python -m trainer --config ... --overwrite       # start over in an output_dir holding an earlier run

main() parses the config, builds (data, model, optimizer), trains and saves:
  output_dir/config.yaml        resolved config          output_dir/train_log.jsonl   one record per step
  output_dir/checkpoints/step-N crash-safe train state (safetensors + JSON, trainer/checkpoint.py)
  output_dir/loss.png           loss curve
  output_dir/model/             the HF checkpoint (full Qwen2.5-VL, or full Qwen2.5-Omni with the
                                trained thinker put back), tokenizer/processor files, flex_train_config.yaml

Loss: sum of target-token cross-entropy over the whole accumulation window (all micro-batches,
all ranks) divided by the number of target tokens in that window, so batch 4 x accum 1 ==
batch 1 x accum 4 == 2 ranks x batch 2 x accum 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from flex_models.family import FAMILY, CheckpointError
from trainer import checkpoint as C
from trainer import data as D
from trainer import modeling as M
from trainer.config import ConfigError, TrainConfig, add_key_options, config_dict, load_config, save_config


def lr_factor(step: int, total: int, warmup: int, kind: str, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimizer step `step` (0-based); pure."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1 - progress
    return min_ratio + (1 - min_ratio) * decay


def build_optimizer(cfg: TrainConfig, lm: torch.nn.Module, master: bool = False) -> torch.optim.Optimizer:
    """AdamW over the trained module only; no weight decay on 1-D tensors (norms, biases).
    master=True: MasterAdamW (fp32 masters in the optimizer; casts the module's params to bf16)."""
    params = [p for p in lm.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    fused = {"fused": True} if params[0].is_cuda else {}
    kw = dict(lr=cfg.learning_rate, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps, **fused)
    if master:
        from trainer.optim import MasterAdamW

        return MasterAdamW(groups, **kw)
    return torch.optim.AdamW(groups, **kw)


def sharded_launch(kinds: tuple[str, ...] = ("FSDP", "DEEPSPEED")) -> bool:
    """FSDP / DeepSpeed launches (accelerate sets these before the process starts)."""
    return any(os.environ.get(f"ACCELERATE_USE_{k}", "").lower() in ("1", "true") for k in kinds)


def bf16_weights(cfg: TrainConfig, cuda: bool | None = None) -> bool:
    """Resolve param_dtype: bf16 weights + fp32 masters (no autocast) or fp32 weights (+ autocast)."""
    if cfg.param_dtype != "auto":
        return cfg.param_dtype == "bf16"
    cuda = torch.cuda.is_available() if cuda is None else cuda
    return cfg.precision == "bf16" and cuda and not sharded_launch()


def peak_flops(cfg: TrainConfig) -> float:
    if cfg.peak_tflops > 0:
        return cfg.peak_tflops * 1e12
    if torch.cuda.is_available() and any(g in torch.cuda.get_device_name() for g in ("H100", "H200")):
        return 989e12  # H100 / H200 SXM dense bf16 (same tensor cores)
    return 0.0  # unknown: MFU is not reported


def step_flops(text_cfg, mbs: list[list[D.Sample]]) -> float:
    """Model FLOPs of one optimizer step (formula in modeling.flops_per_token)."""
    total = 0.0
    for mb in mbs:
        for s in mb:
            n = len(s.input_ids)
            body, head = M.flops_per_token(text_cfg, (n + 1) / 2)
            total += body * n + head * s.n_target
    return total


class Run:
    """Everything one training run holds; `train()` is the loop."""

    def __init__(self, cfg: TrainConfig, accelerator, full, lm, samples, text_cfg, family: str):
        self.cfg, self.acc, self.full, self.samples, self.text_cfg, self.family = (
            cfg, accelerator, full, samples, text_cfg, family)
        self.out = Path(cfg.output_dir)
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.spe = D.steps_per_epoch(len(samples), cfg.per_device_batch, cfg.grad_accum, self.world)
        self.total = cfg.max_steps if cfg.max_steps > 0 else cfg.epochs * self.spe
        warmup = math.ceil(cfg.warmup_ratio * self.total)
        # bf16 weights only where the trained module is not sharded (FSDP / ZeRO-3 bring their own)
        self.master = bf16_weights(cfg, accelerator.device.type == "cuda") and \
            accelerator.distributed_type.name not in ("FSDP", "DEEPSPEED")
        if self.master:  # masters live where the params will: move before the optimizer clones them
            lm.to(accelerator.device)
        optimizer = build_optimizer(cfg, lm, master=self.master)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, self.total, warmup, cfg.scheduler, cfg.min_lr_ratio))
        # the scheduler is stepped by us once per optimizer step (not prepared: accelerate would
        # step it once per process), and checkpointed with the rest of the state
        self.lm, self.opt = accelerator.prepare(lm, optimizer)
        self.history: list[dict] = []
        self.start = 0
        self.peak = peak_flops(cfg)

    # ---------------------------------------------------------------- one optimizer step
    def train_step(self, step: int) -> dict:
        cfg, acc = self.cfg, self.acc
        epoch, k = divmod(step, self.spe)
        order = D.epoch_order(len(self.samples), cfg.seed, epoch)
        mbs = D.step_micro_batches(self.samples, order, k, cfg.per_device_batch, cfg.grad_accum, self.world)
        n_target = sum(s.n_target for mb in mbs for s in mb)  # whole window, all ranks
        mine = [mbs[a * self.world + self.rank] for a in range(cfg.grad_accum)]
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=acc.device)
        for a, mb in enumerate(mine):
            b = D.pack(mb, dummy=self.samples[0])
            sync = nullcontext() if a == cfg.grad_accum - 1 else acc.no_sync(self.lm)
            with sync:
                ce = self.lm(b["input_ids"].to(acc.device), b["targets"].to(acc.device),
                             b["position_ids"].to(acc.device), b["cu_seqlens"].to(acc.device), b["max_seqlen"])
                ce = ce * b["weight"]
                # gradients are averaged over ranks, hence * world
                acc.backward(ce * self.world / n_target)
            loss_sum += ce.detach()
        if self.master:  # norm in fp32 over the bf16 grads; clipping applied to the fp32 grads
            from trainer.optim import grad_norm as total_norm

            grad_norm = total_norm(self.lm.parameters())
            if cfg.max_grad_norm > 0:
                self.opt.optimizer.clip_factor = (cfg.max_grad_norm / (grad_norm + 1e-6)).clamp(max=1.0)
        elif cfg.max_grad_norm > 0:
            grad_norm = acc.clip_grad_norm_(self.lm.parameters(), cfg.max_grad_norm)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.lm.parameters() if p.grad is not None])
        lr = self.scheduler.get_last_lr()[0]
        self.opt.step()
        self.scheduler.step()
        self.opt.zero_grad(set_to_none=True)
        loss = (acc.reduce(loss_sum, "sum") / n_target).item()
        dt = time.perf_counter() - t0
        tokens = sum(len(s.input_ids) for mb in mbs for s in mb)
        rec = {"step": step + 1, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": float(grad_norm),
               "tokens": tokens, "target_tokens": n_target, "step_s": dt, "tokens_per_s": tokens / dt}
        if self.peak:
            rec["mfu"] = step_flops(self.text_cfg, mbs) / dt / (self.peak * self.world)
        return rec

    # ---------------------------------------------------------------- the loop
    def train(self) -> list[dict]:
        cfg, acc = self.cfg, self.acc
        from tqdm.auto import tqdm

        log_path = self.out / "train_log.jsonl"
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(log_path, "w") as f:  # rewritten from the checkpoint's history on resume
                f.writelines(json.dumps(r) + "\n" for r in self.history)
        bar = tqdm(total=self.total, initial=self.start, disable=not (acc.is_main_process and cfg.progress_bar),
                   desc="train", dynamic_ncols=True)
        self.lm.train()
        for step in range(self.start, self.total):
            rec = self.train_step(step)
            self.history.append(rec)
            if acc.is_main_process:
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            if acc.trackers:
                acc.log({k: v for k, v in rec.items() if k != "step"}, step=rec["step"])
            bar.update(1)
            if (step + 1) % cfg.log_every == 0:
                bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}", tok_s=f"{rec['tokens_per_s']:.0f}")
            if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < self.total:
                self.save_checkpoint(step + 1)
        bar.close()
        return self.history

    # ---------------------------------------------------------------- crash-safe checkpoints
    def save_checkpoint(self, step: int):
        """Write to checkpoints/.tmp-step-N, fsync, rename to step-N, then point `last` at it."""
        acc, ck = self.acc, self.out / "checkpoints"
        tmp, final = ck / f".tmp-step-{step}", ck / f"step-{step}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        C.save(acc, tmp, self.lm, self.opt, self.scheduler, step, self.history,
               lambda path: save_config(self.cfg, path))
        if acc.is_main_process:
            M.fsync_tree(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
            pointer = ck / ".last.tmp"
            pointer.write_text(final.name)
            with open(pointer, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(pointer, ck / C.POINTER)
            C.fsync_dir(ck)
            for old in C.step_folders(ck)[self.cfg.keep_checkpoints:]:
                shutil.rmtree(old)
        acc.wait_for_everyone()

    def load_checkpoint(self):
        """Resume from checkpoints/last (or resume_from): safetensors + JSON only, never pickle."""
        ck = self.out / "checkpoints"
        path = C.resolve(ck, self.cfg.resume_from)
        C.check_intact(path, ck)
        saved = load_config(str(path / "config.yaml"))
        for key in ("train_file", "per_device_batch", "grad_accum", "seed", "max_length", "epochs", "max_steps"):
            if getattr(saved, key) != getattr(self.cfg, key):
                raise ValueError(f"--resume: config key '{key}' is {getattr(self.cfg, key)!r} but the checkpoint "
                                 f"{path} was trained with {getattr(saved, key)!r}; the data order would differ")
        state = C.load(self.acc, path, ck, self.lm, self.opt, self.scheduler)
        self.start, self.history = state["step"], state["history"]
        if state["ignored"]:
            self.acc.print(f"[resume] ignored files not written by the trainer (never opened): "
                           f"{', '.join(state['ignored'])} in {path}")
        self.acc.print(f"[resume] from {path} at step {self.start}")

    # ---------------------------------------------------------------- export
    def export(self) -> Path:
        acc, cfg = self.acc, self.cfg
        out = self.out / "model"
        sharded = acc.distributed_type.name in ("FSDP", "DEEPSPEED")
        if self.master:  # export the fp32 master weights, not their bf16 rounding
            self.opt.optimizer.restore_fp32()
        state = acc.get_state_dict(self.lm) if sharded else None
        if acc.is_main_process:
            full = self.full
            if sharded:  # the trained module is sharded: put the gathered weights in a fresh copy
                full, _ = M.load_for_training(cfg.model, self.family, gradient_checkpointing=False)
            M.export(full.cpu(), self.family, cfg.model, out, state)
            save_config(cfg, out / "flex_train_config.yaml")
        acc.wait_for_everyone()
        return out


def plot_loss(history: list[dict], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in history], [r["loss"] for r in history], marker="o", ms=2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per target token")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# The decoder layer of each family's trained text module: FSDP wraps (shards) one of these at a time.


def fsdp_plugin(family: str):
    """Under an FSDP launch: accelerate's FSDP plugin with the trained family's decoder layer as the
    class to wrap, the rest of its settings read by the plugin from the launch (`accelerate launch`
    exports the config file's fsdp_config as FSDP_* variables). accelerate refuses a wrap list that
    names a class the model does not have, so one accelerate config cannot list both families'
    layers: the plugin object overrides the config's list. None outside an FSDP launch."""
    if not sharded_launch(("FSDP",)):
        return None
    from accelerate.utils import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(transformer_cls_names_to_wrap=[FAMILY[family].decoder_layer])


def make_accelerator(cfg: TrainConfig, family: str = "vl"):
    import importlib.util

    from accelerate import Accelerator

    trackers = []
    for t in cfg.trackers:
        if importlib.util.find_spec("tensorboard" if t == "tensorboard" else "wandb") is None:
            print(f"[trackers] {t} is not installed; logging to train_log.jsonl only", file=sys.stderr)
        else:
            trackers.append(t)
    mp = "bf16" if cfg.precision == "bf16" and not bf16_weights(cfg) else "no"  # bf16 weights: no autocast
    acc = Accelerator(mixed_precision=mp, log_with=trackers or None, project_dir=cfg.output_dir,
                      fsdp_plugin=fsdp_plugin(family))
    if trackers:
        acc.init_trackers("flex-judge", config={k: str(v) for k, v in config_dict(cfg).items()})
    return acc


def _at(cfg: TrainConfig, key: str) -> str:
    """'file.yaml:LINE: config key 'k'' when the key came from a YAML file, else "config key 'k' (--k)"."""
    where = cfg.where(key)
    return f"{where}: config key '{key}'" if ":" in where else f"config key '{key}' ({where})"


def preflight(cfg: TrainConfig) -> str:
    """Checks that need no weights: the output folder, the data file, the model (-> its family).
    Errors name the setting and, for keys set in a YAML file, its file and line."""
    out, ck = Path(cfg.output_dir), Path(cfg.output_dir) / "checkpoints"
    finished = out / "model" / "flex_train_config.yaml"
    if not cfg.resume and not cfg.overwrite:
        if finished.exists():
            raise ConfigError(f"{_at(cfg, 'output_dir')}: {out} already holds a finished run ({finished}); "
                              "pass --overwrite to train again there (its model/ and checkpoints/ are deleted) "
                              "or choose another output_dir", "output_dir")
        if (ck / C.POINTER).exists() or C.step_folders(ck):
            raise ConfigError(f"{_at(cfg, 'output_dir')}: {out} holds checkpoints of an unfinished run ({ck}); "
                              "pass --resume to continue it or --overwrite to start over", "output_dir")
    if cfg.save_every or cfg.resume:
        kind = "DeepSpeed" if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true") else None
        if kind:
            raise ConfigError(f"{_at(cfg, 'save_every')}: checkpoints under DeepSpeed are not supported (its format "
                              "is pickle); use trainer/configs/accelerate_fsdp.yaml for resumable runs", "save_every")
    if not Path(cfg.train_file).is_file():
        raise ConfigError(f"{_at(cfg, 'train_file')}: {cfg.train_file} is not a file", "train_file")
    model = Path(cfg.model).expanduser()
    if model.exists() and not (model / "config.json").is_file():
        raise ConfigError(f"{_at(cfg, 'model')}: {model} has no config.json (not a Hugging Face checkpoint folder)")
    if not model.exists() and (cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") != 1):
        raise ConfigError(f"{_at(cfg, 'model')}: {cfg.model} does not exist (neither a local checkpoint folder "
                          "nor a hub id 'org/name')")
    try:
        return M.detect_family(cfg.model, cfg.family)
    except (OSError, CheckpointError) as e:
        if isinstance(e, CheckpointError) and "not a supported family" in str(e):
            raise ConfigError(f"{_at(cfg, 'model')}: {e}") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{_at(cfg, 'model')}: cannot load {cfg.model!r}: not a local checkpoint folder and "
                          f"not found on the hub or in its cache ({first})") from None


def _clear_output(out: Path):
    """--overwrite: remove what an earlier run left (only the files the trainer writes)."""
    for sub in ("model", "checkpoints"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for f in ("train_log.jsonl", "loss.png"):
        (out / f).unlink(missing_ok=True)


def run(cfg: TrainConfig) -> dict:
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    finished = Path(cfg.output_dir) / "model" / "flex_train_config.yaml"
    if cfg.resume and finished.exists():  # nothing to continue: never retrain over a finished model/
        print(f"[resume] {cfg.output_dir} holds a finished run ({finished}); nothing to resume, not training. "
              "Pass --overwrite (instead of --resume) to train again there.", file=sys.stderr)
        return {"history": [], "model_dir": str(finished.parent), "family": None, "finished": True}
    family = preflight(cfg)  # config, data-file, model and output-folder errors before any weights load
    acc = make_accelerator(cfg, family)
    set_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    samples = D.load_samples(cfg.train_file, tokenizer, cfg.max_length, cfg.bad_rows, cfg.append_eos, log=acc.print)
    if cfg.overwrite and acc.is_main_process:  # only once the data is known to be good
        _clear_output(Path(cfg.output_dir))
    acc.wait_for_everyone()
    full, lm = M.load_for_training(cfg.model, family, cfg.attn_implementation,
                                   gradient_checkpointing=cfg.gradient_checkpointing, chunk=cfg.loss_chunk_tokens,
                                   checkpoint_layers=cfg.checkpoint_layers, compile_layers=cfg.compile_layers)
    run_ = Run(cfg, acc, full, lm, samples, full.config.get_text_config(), family)
    if acc.is_main_process:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        save_config(cfg, Path(cfg.output_dir) / "config.yaml")
    if cfg.resume:
        run_.load_checkpoint()
    acc.print(f"[train] {family}: {len(samples)} samples, {run_.spe} steps/epoch, {run_.total} steps, "
              f"{sum(p.numel() for p in lm.parameters() if p.requires_grad):,} trained params, world {run_.world}")
    history = run_.train()
    model_dir = run_.export()
    if acc.is_main_process and cfg.plot and history:
        plot_loss(history, Path(cfg.output_dir) / "loss.png")
    for tracker in acc.trackers:  # not acc.end_training(): that also destroys the process group,
        tracker.finish()          # which may belong to someone else (an in-process vLLM engine)
    return {"history": history, "model_dir": str(model_dir), "family": family}


def build_parser() -> argparse.ArgumentParser:
    """`flex-judge train` / `python -m trainer`: --config and every config key with its type, default
    and doc (generated from TrainConfig, trainer/config.py)."""
    parser = argparse.ArgumentParser(
        prog="flex-judge train", usage="%(prog)s [--config YAML] [--KEY VALUE ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Flex-Judge SFT (accelerate). Settings: defaults <- --config YAML <- --key value "
        "(or --key=value; a bare --flag means true; lists as YAML/JSON, e.g. --adam_betas [0.9,0.95]).",
        epilog="examples:\n  flex-judge train --config trainer/configs/flex_vl.yaml --model DIR --train_file "
        "train.jsonl\n  flex-judge train --config ... --resume     # continue from output_dir/checkpoints/last"
        "\n  flex-judge train --config ... --overwrite  # start over in an output_dir holding an earlier run")
    parser.add_argument("--config", metavar="YAML", help="YAML file with config keys (default: none; the keys' "
                        "defaults are the Flex-Judge recipe)")
    add_key_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        build_parser().print_help()
        return 0
    # argparse only finds --config here: the keys are parsed (strictly, with origins) by load_config
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config")
    args, overrides = config.parse_known_args(argv)
    try:
        cfg = load_config(args.config, overrides)
        run(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
