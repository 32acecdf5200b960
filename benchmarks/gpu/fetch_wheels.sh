#!/usr/bin/env bash
# Here (CPU machine, repo root): fetch the locked wheels of benchmarks/gpu/wheels.lock (pins +
# sha256, made by lock_wheels.sh) for the GPU machine's Python 3.12 into $WHL (default .bench-whl/),
# and prepare the 7B checkpoint folder (config, tokenizer, processor; no weights) in $CKPT
# (default .bench-ckpt/). Both are carried by the device calls (git-excluded when in a checkout).
set -euo pipefail
cd "$(dirname "$0")/../.."
WHL=${WHL:-.bench-whl}; CKPT=${CKPT:-.bench-ckpt}
if [ -d .git ]; then for d in "/$WHL/" "/$CKPT/"; do grep -qxF "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done; fi
PY=${PY:-.venv/bin/python}
"$PY" -m pip download -q --no-deps --only-binary=:all: --require-hashes -r benchmarks/gpu/wheels.lock \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHL"
"$PY" -c "import sys; sys.path.insert(0, 'benchmarks/gpu'); import checkpoint, pathlib; print(checkpoint.build('7b', pathlib.Path('$CKPT'), weights=False))"
du -sh "$WHL" "$CKPT"
