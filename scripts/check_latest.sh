#!/usr/bin/env bash
# Install flex-judge WITHOUT the lock into a scratch venv (newest releases pyproject.toml allows)
# and run the fast tests (not the e2e ones). A failure here = an upstream release broke us:
# tighten pyproject.toml and/or refresh the lock (docs/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pins.sh
SCRATCH=${CHECK_LATEST_VENV:-$(mktemp -d)/venv}
python3 -m venv "$SCRATCH"
PY="$SCRATCH/bin/python"
"$PY" -m pip install -q --upgrade pip setuptools
"$PY" -m pip install -q "${TOP_LEVEL[@]}" -e ".[$EXTRAS]"
"$PY" -m pip uninstall -q -y torchaudio torchcodec 2>/dev/null || true
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp scripts/cpu_torchvision_shim.py "$SITE/_flex_cpu_torchvision_shim.py"
echo "import _flex_cpu_torchvision_shim" > "$SITE/_flex_cpu_torchvision_shim.pth"
echo "newest versions that differ from the lock:"
"$PY" -m pip freeze --exclude-editable | LC_ALL=C sort -f | diff <(grep '==' requirements/cpu.lock.txt | LC_ALL=C sort -f) - | grep '^>' || echo "  (none)"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$PY" -m pytest -x -q -m "not e2e" tests
