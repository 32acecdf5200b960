"""Check an installed environment against the lock: every locked package at its locked version.

usage: python scripts/check_env.py requirements/cpu.lock.txt
Exit 1 (listing the differences) when a locked package is missing or at another version, so an
install that drifted fails at install time, not in the middle of a run.
"""
from __future__ import annotations

import sys
from importlib import metadata

from packaging.utils import canonicalize_name

# removed on purpose by scripts/install.sh (CUDA builds that break imports beside torch+cpu)
REMOVED = {"torchaudio", "torchcodec"}


def read_lock(path: str) -> dict[str, str]:
    pins = {}
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"{path}:{n}: not a 'name==version' pin: {line!r}")
        pins[canonicalize_name(name)] = version.strip()
    return pins


def main(argv: list[str]) -> int:
    lock = argv[0] if argv else "requirements/cpu.lock.txt"
    pins = read_lock(lock)
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    bad = []
    for name, want in sorted(pins.items()):
        if name in REMOVED:
            continue
        got = installed.get(name)
        if got != want:
            bad.append(f"  {name}: locked {want}, installed {got or 'nothing'}")
    if bad:
        print(f"environment differs from {lock}:\n" + "\n".join(bad), file=sys.stderr)
        return 1
    import flex_models  # noqa: F401
    import lm_eval  # noqa: F401
    import lmms_eval  # noqa: F401
    import torchvision  # noqa: F401
    import vllm  # noqa: F401
    from lmms_eval import evaluator  # noqa: F401  (imports filelock._api in 0.7.3)

    print(f"environment ok: {len(pins) - len(REMOVED & set(pins))} packages at their locked versions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
