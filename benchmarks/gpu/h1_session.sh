#!/usr/bin/env bash
# The single-H200 measurement of round 3 as one background session (started with setsid by the
# first device call, like x2_session.sh; README.md here, "One session"). Stages, in order:
#   weights  random 7B weights + the HBM/matmul probe (no vLLM needed: runs while vLLM is staged)
#   pyc      byte-compile the staged vLLM and wheels, as `pip install` does on a user's machine
#   imports  `python -X importtime -c "import vllm"` (where vLLM's ~20 s import goes)
#   raw      vLLM alone, 1024 requests (flex's SamplingParams), then a prefill-only run
#   flex     flex through lmms-eval on the same 1024 requests, after raw, on the same GPU
#   flexold  the same flex run from another commit's tree (/root/old.tgz, carried by a later call:
#            `git archive COMMIT | gzip`), e.g. the commit before a change to compare with in one session
#   serve    `flex-judge judge serve` under benchmarks/serve_gpu.py's client, the raw run's requests
#   hostprof image vs text-only requests of the same length on one engine, py-spy on both processes
#   sweep    engine variants for the image workload (256 requests each), while time is left
# raw and flex each compile from empty vLLM / inductor / triton caches (a fair start-up comparison);
# hostprof and sweep reuse flex's (SHARED_CACHE=name: one cache for all, when start-up is not measured). Results: /root/results (R); session.log says what ran when.
set -u
R=${R:-/root/results}; mkdir -p $R
cd "$(dirname "$0")/../.."
STAGES=${STAGES:-weights pyc imports raw flex hostprof sweep}
N=${N:-1024}; W=/root/flexbench
log() { echo "$(date -u +%FT%T) $*" | tee -a $R/session.log; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
export FLEXBENCH_MACHINE=nvidia-h200 FLEXBENCH_LOG_STATS=1 VLLM_LOG_STATS_INTERVAL=2
source benchmarks/gpu/device_env.sh || { log "device_env failed"; exit 1; }
common="--mode gpu --workdir $W --machine-kind nvidia-h200"
caches() { local c=${SHARED_CACHE:-$1}; export VLLM_CACHE_ROOT=/root/cache-$c/vllm TORCHINDUCTOR_CACHE_DIR=/root/cache-$c/inductor TRITON_CACHE_DIR=/root/cache-$c/triton; }
log "start: stages $STAGES"
if has weights; then
  timeout 400 python3 benchmarks/inference_gpu.py $common --parts hw --log-dir $R/hw --out-json $R/h1_hw.json > $R/hw.out 2>&1
  log "weights + hw probe rc=$?"
fi
for i in $(seq 600); do [ -d /root/vllm-site/vllm ] && break; sleep 2; done
[ -d /root/vllm-site/vllm ] || { log "vLLM never staged"; exit 1; }
log "vllm staged"
if has pyc; then
  t0=$(date +%s.%N)
  python3 -m compileall -q -j 16 /root/vllm-site /root/bench-site > $R/pyc.log 2>&1
  log "byte-compiled rc=$? in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
fi
if has imports; then
  python3 -X importtime -c "import vllm" 2> $R/importtime_vllm.txt
  python3 -X importtime -c "import lmms_eval.__main__, flex_judge.lmms_main" 2> $R/importtime_lmms.txt
  log "import times written"
fi
if has raw; then
  caches raw
  python3 benchmarks/inference_gpu.py $common --n $N --parts raw --raw-runs main,prefill_only --part-timeout 560 \
    --log-dir $R/raw --out-json $R/h1_raw.json > $R/raw.out 2>&1
  log "raw done rc=$?"
fi
if has flex; then
  caches flex
  python3 benchmarks/inference_gpu.py $common --n $N --parts flex --part-timeout 560 \
    --log-dir $R/flex --out-json $R/h1_flex.json > $R/flex.out 2>&1
  log "flex done rc=$?"
fi
if has flexold; then
  for i in $(seq 300); do [ -f /root/old.tgz ] && break; sleep 2; done
  if [ -f /root/old.tgz ]; then
    rm -rf /root/old && mkdir -p /root/old && tar -xzf /root/old.tgz -C /root/old
    caches flex
    (cd /root/old && PYTHONPATH=/root/old:/root/vllm-site:/root/bench-site python3 benchmarks/inference_gpu.py $common --n $N \
      --parts flex --part-timeout 560 --log-dir $R/flexold --out-json $R/h1_flexold.json > $R/flexold.out 2>&1)
    log "flexold done rc=$?"
  else
    log "flexold: /root/old.tgz never arrived"
  fi
fi
if has serve; then
  caches flex
  timeout 600 python3 benchmarks/serve_gpu.py --workdir $W --n $N --raw-json $R/h1_raw.json --log-dir $R/serve \
    --out-json $R/h1_serve.json > $R/serve.out 2>&1
  log "serve done rc=$?"
fi
if has hostprof; then
  caches flex
  python3 benchmarks/inference_gpu.py $common --n 256 --parts hostprof ${HOSTPROF_ARGS:-} --part-timeout 400 \
    --log-dir $R/hostprof --out-json $R/h1_hostprof.json > $R/hostprof.out 2>&1
  log "hostprof done rc=$?"
fi
if has sweep; then
  caches flex
  SW=${SWEEP_VARIANTS:-'[{"name": "defaults"}, {"name": "no_async", "async_scheduling": false}, {"name": "seqs_256", "max_num_seqs": 256}, {"name": "batched_tokens_64k", "max_num_batched_tokens": 65536}]'}
  python3 benchmarks/inference_gpu.py $common --n 256 --parts sweep --sweep "$SW" --sweep-budget-s ${SWEEP_BUDGET_S:-420} \
    --log-dir $R/sweep --out-json $R/h1_sweep.json > $R/sweep.out 2>&1
  log "sweep done rc=$?"
fi
log "all done"
touch $R/DONE
