"""CPU-venv shim: PyPI's torchvision is a CUDA build whose C++ ops do not load beside torch+cpu.

Qwen2.5-VL/Omni processors import torchvision but never call nms; registering the two op
schemas lets ``import torchvision`` succeed. Installed as a .pth hook by scripts/install.sh
(only in the CPU development/CI venv; never imported by the package itself).

The hook is lazy: interpreter start-up only puts a finder on ``sys.meta_path`` (no torch import,
which cost ~3 s at every Python start); the schemas are registered the first time anything imports
torchvision, and the finder then takes itself off the path.
"""
import sys


def _register_ops():
    try:
        import torch

        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in ("nms", "qnms"):
            try:
                lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            except RuntimeError:  # already defined (a real torchvision build is present)
                pass
        _TorchvisionOps.lib = lib  # the fragment lives as long as the interpreter
    except Exception:  # never break an import
        pass


class _TorchvisionOps:
    lib = None

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "torchvision":
            try:
                sys.meta_path.remove(cls)
            except ValueError:
                pass
            _register_ops()
        return None  # the normal finders import torchvision itself


if _TorchvisionOps not in sys.meta_path:
    sys.meta_path.insert(0, _TorchvisionOps)
