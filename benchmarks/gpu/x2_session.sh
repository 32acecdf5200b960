#!/usr/bin/env bash
# The whole nvidia-h200-x2 measurement as one background session, started with setsid by the first
# device call so that it outlives each call's 10-minute limit (see README.md here, "One session").
# Runs from a private copy of the tree (/root/src: later calls re-sync the checkout under it).
#   1. trainer: flex (compiled layers) on GPU 0 beside trl's SFTTrainer on GPU 1, same 3B shapes,
#      weights, samples and order; the random 7B inference weights written meanwhile; then the full
#      7B trainer with FSDP over both GPUs, then 7B on one GPU (only while vLLM is not staged yet)
#   2. once /root/vllm-site holds vLLM (the second call stages it): flex through lmms-eval on GPU 0
#      beside vLLM alone on GPU 1 (1024 requests), data parallel 2, `flex-judge judge` on GPU 0 beside
#      vLLM alone on GPU 1 (the same 1024-request workload), tensor parallel 2
# Results: /root/results (R); session.log says what ran when. STAGES picks a subset (default all).
set -u
R=${R:-/root/results}; mkdir -p $R
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-train fsdp one dp2 judge tp2 train7b1}
log() { echo "$(date -u +%FT%T) $*" | tee -a $R/session.log; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
export FLEXBENCH_MACHINE=nvidia-h200-x2
source benchmarks/gpu/device_env.sh || { log "device_env failed"; exit 1; }
TR="python3 benchmarks/train_gpu.py --out $R/train.jsonl"
log "start: stages $STAGES"
if has train; then
  CUDA_VISIBLE_DEVICES=0 timeout 420 $TR --shape 3b --runs flex --compile --ckpt-layers -2 --steps 8 --warmup 3 \
    --tag "3b flex compile, GPU 0 beside trl" > $R/train_flex.log 2>&1 &
  a=$!
  CUDA_VISIBLE_DEVICES=1 timeout 420 $TR --shape 3b --runs trl --steps 8 --warmup 3 \
    --tag "3b trl SFTTrainer, GPU 1 beside flex" > $R/train_trl.log 2>&1
  log "trl done rc=$?"
  CUDA_VISIBLE_DEVICES=1 timeout 300 python3 benchmarks/inference_gpu.py --mode gpu --parts , --workdir /root/flexbench \
    --log-dir $R/ckpt --out-json $R/ckpt.json > $R/ckpt.log 2>&1
  log "7b inference weights rc=$?"
  wait $a; log "flex 3b done rc=$?"
fi
if has fsdp; then
  timeout 400 python3 -m accelerate.commands.launch --config_file trainer/configs/accelerate_fsdp.yaml --num_processes 2 \
    benchmarks/train_gpu.py --out $R/train.jsonl --shape 7b --runs flex --steps 6 --warmup 2 \
    --tag "7b FSDP2 full shard, 2 GPUs" > $R/train_fsdp.log 2>&1
  log "fsdp 7b done rc=$?"
fi
if has train7b1 && [ ! -d /root/vllm-site/vllm ]; then  # fills the wait for vLLM only
  CUDA_VISIBLE_DEVICES=0 timeout 240 $TR --shape 7b --runs flex --steps 4 --warmup 2 --tag "7b, 1 GPU" > $R/train_7b1.log 2>&1
  log "7b one GPU done rc=$?"
fi
for i in $(seq 600); do [ -d /root/vllm-site/vllm ] && break; sleep 2; done
[ -d /root/vllm-site/vllm ] || { log "vLLM never staged"; exit 1; }
log "vllm staged"
export OUT=$R
if has one; then SWEEPS= RAW_RUNS=main T_ONE=400 bash benchmarks/gpu/x2_call.sh one > $R/one.out 2>&1; log "one done"; fi
if has dp2; then T_DP=300 bash benchmarks/gpu/x2_call.sh dp2 > $R/dp2.out 2>&1; log "dp2 done"; fi
if has judge; then
  python3 examples/judge_speed_workload.py --n 1024 --out /root/jw > $R/judge_workload.log 2>&1
  VLLM_CACHE_ROOT=/root/vc-raw CUDA_VISIBLE_DEVICES=1 python3 benchmarks/inference_gpu.py --mode gpu --n 1024 \
    --workdir /root/flexbench --machine-kind nvidia-h200-x2 --parts raw --raw-runs main --part-timeout 400 --tag _beside_judge \
    --log-dir $R/judge_raw --out-json $R/x2_raw_beside_judge.json > $R/judge_raw.out 2>&1 &
  b=$!
  rm -rf /root/jw/out
  /usr/bin/time -v -o $R/judge_time.txt env VLLM_CACHE_ROOT=/root/vc-judge CUDA_VISIBLE_DEVICES=0 timeout 420 \
    python3 -m flex_judge.cli judge /root/jw/items.jsonl --out /root/jw/out/judged.jsonl --model /root/flexbench/ckpt-7b \
    --backend vllm --pair-protocol vl_rewardbench --samples 1 --max-new-tokens 512 --batch-size 1024 \
    --model-args "limit_mm_per_prompt=image:1;video:0" --no-progress > $R/judge.log 2>&1
  log "judge done rc=$?"
  cp /root/jw/out/judged.summary.json $R/judge_summary.json 2>/dev/null
  wait $b; log "raw beside judge done"
fi
if has tp2; then T_TP=300 bash benchmarks/gpu/x2_call.sh tp2 > $R/tp2.out 2>&1; log "tp2 done"; fi
log "all done"
touch $R/DONE
