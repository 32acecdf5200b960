#!/usr/bin/env bash
# Where the suite's decode time goes, on one H200, as one background session (started with setsid by
# the first device call, like suite_session.sh). Stages, in this order (STAGES picks):
#   sampler  vLLM's top-p kernel alone on flat vs peaked logits (suite_gpu.py --sampler-bench)
#   profile  the VL family of the suite at SCALE, raw then flex pass, every engine step logged
#            (gpu/steplog.py), py-spy on the engine processes and the engine's torch profile of 10
#            steps (after DELAY_STEPS) during the raw pass; the first engine of the session: cold compile
#   rawstart a bare vLLM script's launch -> LLM() ready with flex's engine arguments (warm compile cache)
#   variants VARIANTS (JSON list of [name, engine defaults]), raw pass only with the step log, each a
#            fresh engine (warm compile cache), so each shows launch -> FlexJudge ready warm as well
# Results: /root/results (R); session.log says what ran when.
set -u
R=${R:-/root/results}; mkdir -p $R
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-sampler profile rawstart variants}
SCALE=${SCALE:-0.025}
DELAY_STEPS=${DELAY_STEPS:-300}
log() { echo "$(date -u +%FT%T) $*" | tee -a $R/session.log; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
export FLEXBENCH_MACHINE=nvidia-h200
source benchmarks/gpu/device_env.sh || { log "device_env failed"; exit 1; }
export VLLM_CACHE_ROOT=/root/cache/vllm TORCHINDUCTOR_CACHE_DIR=/root/cache/inductor TRITON_CACHE_DIR=/root/cache/triton
export PATH=$PATH:/root/bench-site/bin
log "start: stages $STAGES scale $SCALE"
for i in $(seq 600); do [ -d /root/vllm-site/vllm ] && break; sleep 2; done
[ -d /root/vllm-site/vllm ] || { log "vLLM never staged"; exit 1; }
log "vllm staged"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv > $R/gpu.txt 2>&1
if has sampler; then
  python3 benchmarks/suite_gpu.py --sampler-bench --out-json $R/sampler.json > $R/sampler.out 2>&1
  log "sampler done rc=$?"
fi
if has profile; then
  mkdir -p /root/torchprof
  PC="{\"profiler_config\": {\"profiler\": \"torch\", \"torch_profiler_dir\": \"/root/torchprof\", \"torch_profiler_with_stack\": false, \"delay_iterations\": $DELAY_STEPS, \"max_iterations\": 10}}"
  python3 benchmarks/suite_gpu.py --mode gpu --scale $SCALE --families vl --passes raw,flex --workdir /root/prof \
    --steplog on --profile-pass raw --pyspy-delay ${PYSPY_DELAY:-30} --pyspy-s ${PYSPY_S:-12} --torch-profile /root/torchprof \
    --engine-defaults "$PC" --timeout 600 --out-json $R/profile.json > $R/profile.out 2>&1
  log "profile done rc=$?"
  cp /root/prof/worker_vl.log $R/profile_worker.log; cp /root/prof/steps_vl.jsonl $R/profile_steps.jsonl 2>/dev/null
  cp /root/prof/pyspy-*.txt $R/ 2>/dev/null; cp /root/torchprof/profiler_out_*.txt $R/ 2>/dev/null
fi
if has rawstart; then
  for i in $(seq ${RAWSTART_N:-1}); do
    python3 benchmarks/gpu/raw_startup.py --ckpt /root/prof/ckpt/vl-7b --t-launch "$(date +%s.%N)" \
      --out-json $R/rawstart_$i.json > $R/rawstart_$i.out 2>&1
    log "rawstart $i done rc=$?"
  done
fi
if has variants; then
  VARIANTS=${VARIANTS:-'[["defaults", {}], ["graphs_1024", {"compilation_config": {"max_cudagraph_capture_size": 1024}}], ["seqs_512", {"max_num_seqs": 512}]]'}
  while IFS=$'\t' read -r -u 3 name defs; do
    passes=${VARIANT_PASSES:-raw}; [ "$name" = defaults ] && passes=raw,flex  # the unprofiled flex/raw pair
    python3 benchmarks/suite_gpu.py --mode gpu --scale $SCALE --families vl --passes $passes \
      --ckpt-dir /root/prof/ckpt --steplog on --engine-defaults "$defs" --workdir /root/var_$name --timeout 400 \
      --out-json $R/variant_$name.json > $R/variant_$name.out 2>&1
    log "variant $name done rc=$?"
    cp /root/var_$name/worker_vl.log $R/variant_${name}_worker.log 2>/dev/null
  done 3< <(variants "$VARIANTS")
fi
log "all done"
touch $R/DONE
