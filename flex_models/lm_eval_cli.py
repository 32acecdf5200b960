"""`python -m flex_models.lm_eval_cli <lm-eval args>`: lm-eval's CLI with the flex model registered
and the flex lm-eval task folder (yaml_tasks/lm_eval, task `flex_judgelm`) on the include path.

Example:
  python -m flex_models.lm_eval_cli --model flex \\
      --model_args pretrained=jongwooko/Flex-VL-7B,max_new_tokens=4096 --tasks flex_judgelm
A user `--include_path` replaces the default folder (lm-eval's CLI takes one path).
"""
from __future__ import annotations

import sys
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parents[1] / "yaml_tasks" / "lm_eval"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from flex_models.extras import require

    require("lm_eval", "`flex-judge lm-eval`")
    import flex_models.lm_eval_model  # noqa: F401  (registers `flex`)
    from lm_eval.__main__ import cli_evaluate

    if argv and argv[0] not in ("run", "ls", "validate", "-h", "--help") and len(argv) > 1:
        argv.insert(0, "run")
    if argv[:1] == ["run"] and not any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        argv += ["--include_path", str(TASKS_DIR)]
    old = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = old
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
