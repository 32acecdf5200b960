#!/usr/bin/env bash
# The suite benchmark (benchmarks/suite_gpu.py) on one H200 as one background session, started with
# setsid by the first device call like h1_session.sh (README.md here, "One session"). Stages:
#   suite   the whole flex_all workload scaled by SCALE (VL then Omni engine, each cold-compiled), every
#           engine step logged (gpu/steplog.py), py-spy on the engine processes from PYSPY_DELAY s for
#           PYSPY_S s into each of PROFILE_PASSES (both of the raw/flex pair: the same perturbation), then
#           the upstream way run: one fresh process per benchmark script on the same requests
#   sweep   the flex model's engine defaults: VARIANTS (JSON list of {name, defaults}), flex pass only,
#           on SWEEP_TASKS at SWEEP_SCALE, each on a fresh engine (compile caches warm from the suite)
# Results: /root/results (R); session.log says what ran when.
set -u
R=${R:-/root/results}; mkdir -p $R
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-suite sweep}
SCALE=${SCALE:-0.025}
log() { echo "$(date -u +%FT%T) $*" | tee -a $R/session.log; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
export FLEXBENCH_MACHINE=nvidia-h200
source benchmarks/gpu/device_env.sh || { log "device_env failed"; exit 1; }
export PATH=$PATH:/root/bench-site/bin  # py-spy
export VLLM_CACHE_ROOT=/root/cache/vllm TORCHINDUCTOR_CACHE_DIR=/root/cache/inductor TRITON_CACHE_DIR=/root/cache/triton
log "start: stages $STAGES scale $SCALE"
for i in $(seq 600); do [ -d /root/vllm-site/vllm ] && break; sleep 2; done
[ -d /root/vllm-site/vllm ] || { log "vLLM never staged"; exit 1; }
log "vllm staged"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv > $R/gpu.txt 2>&1
if has suite; then
  python3 benchmarks/suite_gpu.py --mode gpu --scale $SCALE --workdir /root/suite --timeout 900 \
    --steplog on --upstream-run --profile-pass ${PROFILE_PASSES:-raw,flex} --pyspy-delay ${PYSPY_DELAY:-30} \
    --pyspy-s ${PYSPY_S:-12} --out-json $R/suite.json --out-md $R/suite.md > $R/suite.out 2>&1
  log "suite done rc=$?"
  cd /root/suite && cp worker_*.log upstream_*.json upstream_*.log pyspy-*.txt $R/ 2>/dev/null
  for f in steps_*.jsonl; do gzip -c $f > $R/$f.gz; done; cd - > /dev/null
fi
if has sweep; then
  VARIANTS=${VARIANTS:-'[["defaults", {}], ["seqs_512", {"max_num_seqs": 512}], ["graphs_1024", {"compilation_config": {"max_cudagraph_capture_size": 1024}}]]'}
  SWEEP_TASKS=${SWEEP_TASKS:-flex_vl_rewardbench,flex_genai_bench_image,flex_mllm_judge_pair}
  while IFS=$'\t' read -r -u 3 name defs; do
    python3 benchmarks/suite_gpu.py --mode gpu --scale ${SWEEP_SCALE:-$SCALE} --families vl --tasks $SWEEP_TASKS \
      --passes flex --engine-defaults "$defs" --workdir /root/sweep_$name --timeout 400 \
      --out-json $R/sweep_$name.json > $R/sweep_$name.out 2>&1
    log "sweep $name done rc=$?"
    cp /root/sweep_$name/worker_vl.log $R/sweep_${name}_worker.log 2>/dev/null
  done 3< <(variants "$VARIANTS")
fi
log "all done"
touch $R/DONE
