"""CPU-venv shim: PyPI's torchvision is a CUDA build whose C++ ops do not load beside torch+cpu.

Qwen2.5-VL/Omni processors import torchvision but never call nms; registering the two op
schemas lets ``import torchvision`` succeed. Installed as a .pth hook by scripts/install.sh
(only in the CPU development/CI venv; never imported by the package itself).
"""
try:
    import torch

    _lib = torch.library.Library("torchvision", "FRAGMENT")
    for _name in ("nms", "qnms"):
        try:
            _lib.define(f"{_name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except RuntimeError:  # already defined (a real torchvision build is present)
            pass
except Exception:  # never break interpreter start-up
    pass
