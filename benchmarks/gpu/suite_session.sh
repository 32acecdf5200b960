#!/usr/bin/env bash
# The suite benchmark (benchmarks/suite_gpu.py) on one H200 as one background session, started with
# setsid by the first device call like h1_session.sh (README.md here, "One session"). Stages:
#   suite   the whole flex_all workload scaled by SCALE (FAMILY_SCALE per family, e.g. omni=0.1; VL then
#           Omni engine, each cold-compiled; FAMILIES=vl for one), the PASSES with PAIRS raw/flex pairs in ABBA order, every
#           engine step logged (gpu/steplog.py); py-spy on the engine processes from PYSPY_DELAY s for
#           PYSPY_S s (0: none) into each of PROFILE_PASSES (both of a raw/flex pair: the same
#           perturbation); with UPSTREAM=1 the upstream way run (one fresh process per benchmark script
#           on the same requests); with WARM=1 each family's start-up again on warm caches, flex and a
#           bare vLLM script (suite_gpu.py --warm-startup)
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
export FLEXBENCH_MACHINE=${FLEXBENCH_MACHINE:-nvidia-h200}
source benchmarks/gpu/device_env.sh || { log "device_env failed"; exit 1; }
export PATH=$PATH:/root/bench-site/bin  # py-spy
export VLLM_CACHE_ROOT=/root/cache/vllm TORCHINDUCTOR_CACHE_DIR=/root/cache/inductor TRITON_CACHE_DIR=/root/cache/triton
log "start: stages $STAGES scale $SCALE"
for i in $(seq 600); do [ -d /root/vllm-site/vllm ] && break; sleep 2; done
[ -d /root/vllm-site/vllm ] || { log "vLLM never staged"; exit 1; }
log "vllm staged"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv > $R/gpu.txt 2>&1
if has suite; then
  extra=()
  [ "${UPSTREAM:-1}" = 1 ] && extra+=(--upstream-run)
  [ "${WARM:-0}" = 1 ] && extra+=(--warm-startup)
  python3 benchmarks/suite_gpu.py --mode gpu --scale $SCALE --family-scale "${FAMILY_SCALE:-}" --workdir /root/suite ${FAMILIES:+--families $FAMILIES} \
    --timeout 900 --passes ${PASSES:-raw,flex,runmajor} --pairs ${PAIRS:-1} --steplog on "${extra[@]}" \
    --profile-pass ${PROFILE_PASSES:-raw,flex} --pyspy-delay ${PYSPY_DELAY:-30} --pyspy-s ${PYSPY_S:-12} \
    --out-json $R/suite.json --out-md $R/suite.md > $R/suite.out 2>&1
  log "suite done rc=$?"
  cd /root/suite && cp worker_*.log upstream_*.json upstream_*.log warm_*.json warm_*.log pyspy-*.txt $R/ 2>/dev/null
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
