#!/usr/bin/env bash
# The whole nvidia-h200-x2 measurement as one background session, started with setsid by the first
# device call so that it outlives each call's 10-minute limit (see README.md here, "One session").
# Runs from a private copy of the tree (/root/src: later calls re-sync the checkout under it).
# STAGES runs in the order given (default: round 2's). Stages:
#   weights   the random 7B inference weights (GPU 1; no vLLM needed: runs while vLLM is staged)
#   train     flex (compiled layers) on GPU 0 beside trl's SFTTrainer on GPU 1: same 3B shapes, weights,
#             samples and order (TRAIN_ARGS adds flags to both, e.g. --profile); then the weights as above
#   fsdp      the full 7B trainer with FSDP over both GPUs
#   train7b1  7B on one GPU (only while vLLM is not staged yet)
#   -- the stages below wait for /root/vllm-site (the second call stages vLLM) --
#   one       flex through lmms-eval on GPU 0 beside vLLM alone on GPU 1 (N requests; RAW_RUNS)
#   dp2       flex with data_parallel_size=2 (reuses one's warm compile cache)
#   warm1     flex on one GPU on that same warm cache (dp2's fair 1-GPU baseline) on GPU 0, beside
#             `flex-judge judge` (per-request seeds, as the protocol) on GPU 1
#   judge     `flex-judge judge` on GPU 0 beside vLLM alone on GPU 1 (the same workload)
#   tp2       flex with tensor_parallel_size=2
# Round 2: STAGES="train fsdp one dp2 judge tp2 train7b1".
# Round 4: STAGES="weights one dp2 warm1 train" RAW_RUNS=main TRAIN_ARGS=--profile
# Results: /root/results (R); session.log says what ran when.
set -u
R=${R:-/root/results}; mkdir -p $R
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-train fsdp one dp2 judge tp2 train7b1}
log() { echo "$(date -u +%FT%T) $*" | tee -a $R/session.log; }
export FLEXBENCH_MACHINE=nvidia-h200-x2
source benchmarks/gpu/device_env.sh || { log "device_env failed"; exit 1; }
TR="python3 benchmarks/train_gpu.py --out $R/train.jsonl"
export OUT=$R

stage_weights() {
  CUDA_VISIBLE_DEVICES=1 timeout 300 python3 benchmarks/inference_gpu.py --mode gpu --parts , --workdir /root/flexbench \
    --log-dir $R/ckpt --out-json $R/ckpt.json > $R/ckpt.log 2>&1
  log "7b inference weights rc=$?"
}
need_vllm() {
  for i in $(seq 600); do [ -d /root/vllm-site/vllm ] && break; sleep 2; done
  [ -d /root/vllm-site/vllm ] || { log "vLLM never staged"; exit 1; }
}
judge_workload() { [ -f /root/jw/items.jsonl ] || python3 examples/judge_speed_workload.py --n 1024 --out /root/jw > $R/judge_workload.log 2>&1; }
run_judge() {  # GPU $1, compile cache $2
  rm -rf /root/jw/out
  /usr/bin/time -v -o $R/judge_time.txt env VLLM_CACHE_ROOT=$2 CUDA_VISIBLE_DEVICES=$1 timeout 420 \
    python3 -m flex_judge.cli judge /root/jw/items.jsonl --out /root/jw/out/judged.jsonl --model /root/flexbench/ckpt-7b \
    --backend vllm --pair-protocol vl_rewardbench --samples 1 --max-new-tokens 512 --batch-size 1024 \
    --model-args "limit_mm_per_prompt=image:1;video:0" --no-progress > $R/judge.log 2>&1
  log "judge done rc=$?"
  cp /root/jw/out/judged.summary.json $R/judge_summary.json 2>/dev/null
}

stage_train() {
  CUDA_VISIBLE_DEVICES=0 timeout 420 $TR --shape 3b --runs flex --compile --ckpt-layers -2 --steps 8 --warmup 3 ${TRAIN_ARGS:-} \
    --tag "3b flex compile, GPU 0 beside trl" > $R/train_flex.log 2>&1 &
  local a=$!
  CUDA_VISIBLE_DEVICES=1 timeout 420 $TR --shape 3b --runs trl --steps 8 --warmup 3 ${TRAIN_ARGS:-} \
    --tag "3b trl SFTTrainer, GPU 1 beside flex" > $R/train_trl.log 2>&1
  log "trl done rc=$?"
  [ -d /root/flexbench/ckpt-7b ] || stage_weights
  wait $a; log "flex 3b done rc=$?"
}
stage_fsdp() {
  timeout 400 python3 -m accelerate.commands.launch --config_file trainer/configs/accelerate_fsdp.yaml --num_processes 2 \
    benchmarks/train_gpu.py --out $R/train.jsonl --shape 7b --runs flex --steps 6 --warmup 2 \
    --tag "7b FSDP2 full shard, 2 GPUs" > $R/train_fsdp.log 2>&1
  log "fsdp 7b done rc=$?"
}
stage_train7b1() {
  [ -d /root/vllm-site/vllm ] && return  # fills the wait for vLLM only
  CUDA_VISIBLE_DEVICES=0 timeout 240 $TR --shape 7b --runs flex --steps 4 --warmup 2 --tag "7b, 1 GPU" > $R/train_7b1.log 2>&1
  log "7b one GPU done rc=$?"
}
stage_one() { need_vllm; SWEEPS= RAW_RUNS=${RAW_RUNS:-main} T_ONE=400 bash benchmarks/gpu/x2_call.sh one > $R/one.out 2>&1; log "one done"; }
stage_dp2() { need_vllm; T_DP=300 bash benchmarks/gpu/x2_call.sh dp2 > $R/dp2.out 2>&1; log "dp2 done"; }
stage_warm1() {
  need_vllm; judge_workload
  T_WARM=300 bash benchmarks/gpu/x2_call.sh warm1 > $R/warm1.out 2>&1 &
  local a=$!
  run_judge 1 /root/vc-judge
  wait $a; log "warm1 done"
}
stage_judge() {
  need_vllm; judge_workload
  VLLM_CACHE_ROOT=/root/vc-raw CUDA_VISIBLE_DEVICES=1 python3 benchmarks/inference_gpu.py --mode gpu --n 1024 \
    --workdir /root/flexbench --machine-kind nvidia-h200-x2 --parts raw --raw-runs main --part-timeout 400 --tag _beside_judge \
    --log-dir $R/judge_raw --out-json $R/x2_raw_beside_judge.json > $R/judge_raw.out 2>&1 &
  local b=$!
  run_judge 0 /root/vc-judge
  wait $b; log "raw beside judge done"
}
stage_tp2() { need_vllm; T_TP=300 bash benchmarks/gpu/x2_call.sh tp2 > $R/tp2.out 2>&1; log "tp2 done"; }

log "start: stages $STAGES"
for st in $STAGES; do
  declare -F stage_$st > /dev/null || { log "unknown stage $st"; continue; }
  log "stage $st"; stage_$st
done
log "all done"
touch $R/DONE
