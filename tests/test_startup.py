"""Python start-up in the project venv stays light: the CPU torchvision shim (a .pth hook, see
scripts/cpu_torchvision_shim.py) must not import torch at interpreter start, and torchvision must
still import beside torch+cpu. Timings are benchmarks/startup_cpu.py's job, not this test's."""
import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True).stdout


def test_interpreter_start_does_not_import_torch():
    assert _run("import sys; print('torch' in sys.modules)").strip() == "False"


def test_cli_help_does_not_import_torch():
    code = ("import sys; from flex_judge.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    assert "TORCH False" in _run(code)


def test_torchvision_still_imports_beside_cpu_torch():
    out = _run("import torchvision, torch; print(torch.ops.torchvision.nms is not None)")
    assert out.strip().endswith("True")
