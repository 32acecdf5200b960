#!/usr/bin/env bash
# Here (CPU machine, repo root): fetch the wheels of benchmarks/gpu/wheels.txt for the GPU
# machine's Python 3.12 into .bench-whl/ (git-excluded), and prepare the 7B checkpoint folder
# (config, tokenizer, processor; no weights) in .bench-ckpt/. Both are carried by the device calls.
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in /.bench-whl/ /.bench-ckpt/; do grep -qxF "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
PY=${PY:-.venv/bin/python}
grep -v '^#' benchmarks/gpu/wheels.txt | xargs "$PY" -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .bench-whl
"$PY" -c "import sys; sys.path.insert(0, 'benchmarks/gpu'); import checkpoint, pathlib; print(checkpoint.build('7b', pathlib.Path('.bench-ckpt'), weights=False))"
du -sh .bench-whl .bench-ckpt
