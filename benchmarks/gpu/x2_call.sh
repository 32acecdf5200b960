#!/usr/bin/env bash
# On nvidia-h200-x2 (repo root, vLLM staged, device_env.sh sourced): one GPU against two.
#   x2_call.sh one   flex through lmms-eval on GPU 0 and vLLM alone on GPU 1, side by side (same N requests)
#   x2_call.sh dp2   flex with data_parallel_size=2 (persistent engines, one per GPU)
#   x2_call.sh warm1 flex on GPU 0 alone, on dp2's warm compile cache (dp2's 1-GPU baseline)
#   x2_call.sh tp2   flex with tensor_parallel_size=2
# Results: $OUT/x2_<run>.json; logs tarred into $OUT/x2_<run>_logs.tgz. Each process gets its own vLLM
# compile cache for the 1-GPU runs (both start cold, and never write one cache at once); dp2 reuses
# flex's (warm: same engine config), tp2 compiles its own.
set -u
SWEEPS=${SWEEPS-1}  # empty: no engine sweeps after the 1-GPU runs
SWEEP0=${SWEEP0:-'[{"name": "no_async", "async_scheduling": false}]'}
N=${N:-1024}; W=/root/flexbench; L=/root/x2logs; mkdir -p $L
common="--mode gpu --n $N --workdir $W --machine-kind nvidia-h200-x2"
for run in "$@"; do
  case $run in
    one)
      # GPU 1: vLLM alone (flex's exact SamplingParams, then ignore_eos=True), then the sweep's baseline
      VLLM_CACHE_ROOT=/root/vc-raw CUDA_VISIBLE_DEVICES=1 python3 benchmarks/inference_gpu.py $common --parts raw${SWEEPS:+,sweep} \
        --raw-runs ${RAW_RUNS:-main,ignore_eos} --sweep '[{"name": "defaults"}]' --sweep-n 256 --sweep-budget-s ${SB1:-440} \
        --part-timeout ${T_ONE:-330} --log-dir $L/raw --out-json $OUT/x2_raw.json > $L/raw.out 2>&1 &
      # GPU 0: flex through lmms-eval, then engine variants on the same 256-request shape
      VLLM_CACHE_ROOT=/root/vc-flex CUDA_VISIBLE_DEVICES=0 python3 benchmarks/inference_gpu.py $common --parts flex${SWEEPS:+,sweep} \
        --sweep "$SWEEP0" --sweep-n 256 --sweep-budget-s ${SB0:-400} \
        --part-timeout ${T_ONE:-330} --log-dir $L/flex --out-json $OUT/x2_flex.json > $L/flex.out 2>&1
      wait ;;
    dp2)
      VLLM_CACHE_ROOT=/root/vc-flex python3 benchmarks/inference_gpu.py $common --parts flex --tag _dp2 \
        --flex-arg data_parallel_size=2 --part-timeout ${T_DP:-240} --log-dir $L/dp2 --out-json $OUT/x2_dp2.json > $L/dp2.out 2>&1 ;;
    warm1)  # one GPU on dp2's warm cache: the 1-GPU baseline for dp_speedup (both start warm)
      VLLM_CACHE_ROOT=/root/vc-flex CUDA_VISIBLE_DEVICES=0 python3 benchmarks/inference_gpu.py $common --parts flex --tag _warm1 \
        --part-timeout ${T_WARM:-300} --log-dir $L/warm1 --out-json $OUT/x2_warm1.json > $L/warm1.out 2>&1 ;;
    tp2)
      VLLM_CACHE_ROOT=/root/vc-tp2 python3 benchmarks/inference_gpu.py $common --parts flex --tag _tp2 \
        --flex-arg tensor_parallel_size=2 --part-timeout ${T_TP:-280} --log-dir $L/tp2 --out-json $OUT/x2_tp2.json > $L/tp2.out 2>&1 ;;
  esac
  tail -n 30 $L/*.out 2>/dev/null | grep -v "^$" | tail -n 40
  tar czf $OUT/x2_${run}_logs.tgz -C $L . 2>/dev/null
done
ls -la $OUT
