"""`python -m flex_judge.serving CKPT ...` = `flex-judge judge serve CKPT ...`."""
from flex_judge.serving.cli import main

if __name__ == "__main__":  # the engine core process is spawned: this guard keeps it from re-running main
    raise SystemExit(main())
