"""`python -m flex_judge.lmms_main <lmms-eval args>`: lmms-eval's CLI with the flex task folder included.

lmms-eval 0.7.3 takes one `--include_path` string on its command line but its TaskManager accepts
a list, so the user's folder (if any) and the flex folder are both indexed.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from lmms_eval.__main__ import cli_evaluate, parse_eval_args

    from flex_judge.cli import tasks_path

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--model" not in argv:
        argv += ["--model", "flex"]
    sys.argv = ["lmms-eval", *argv]
    _, args = parse_eval_args()
    user = args.include_path
    args.include_path = [p for p in (user, str(tasks_path())) if p]
    cli_evaluate(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
