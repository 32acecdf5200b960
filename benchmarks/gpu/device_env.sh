# On the GPU machine, repo root, after the vLLM bundle's stage.sh: `source benchmarks/gpu/device_env.sh`.
# Installs the carried wheels once per machine, registers the flex model's lmms-eval entry point
# (the project itself is imported from the repo root), seeds the 7B checkpoint folder (weights
# are written there by the benchmark), and exports the environment the benchmark runs in.
FLEXBENCH_SITE=/root/bench-site
if [ ! -f $FLEXBENCH_SITE/.ok ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $FLEXBENCH_SITE .bench-whl/*.whl || return 1
  ep=$FLEXBENCH_SITE/flex_judge-0.1.0.dist-info
  mkdir -p $ep
  printf 'Metadata-Version: 2.1\nName: flex-judge\nVersion: 0.1.0\n' > $ep/METADATA
  printf '[lmms_eval.models]\nflex = flex_models.manifest:manifests\n' > $ep/entry_points.txt
  touch $FLEXBENCH_SITE/.ok
fi
mkdir -p /root/flexbench
# keep a folder already there: it may hold the weights written by an earlier call
[ -d .bench-ckpt/ckpt-7b ] && [ ! -d /root/flexbench/ckpt-7b ] && cp -r .bench-ckpt/ckpt-7b /root/flexbench/
export PYTHONPATH=$PWD:/root/vllm-site:$FLEXBENCH_SITE${PYTHONPATH:+:$PYTHONPATH}
export VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false FLEXBENCH_MACHINE=${FLEXBENCH_MACHINE:-nvidia-h100-x1}
# The engine variants of a session's sweep: VARIANTS (a JSON list of [name, {engine defaults}]) as
# "name<TAB>defaults JSON" lines; sessions loop over them with `while IFS=$'\t' read -r -u 3 name defs`.
variants() { python3 -c 'import json,sys; [print(n, json.dumps(d), sep="\t") for n, d in json.loads(sys.argv[1])]' "$1"; }
