"""`--help` of every flex-judge subcommand lists every option that takes a value with its default
(or says it is required / what happens when it is left out), read from the real help output."""
import re
import subprocess
import sys

import pytest

# eval and lm-eval print lmms-eval's / lm-eval's own help after flex's (tests/test_eval_api.py);
# train and data: tests/test_trainer_cli.py
COMMANDS = [["judge"], ["judge", "serve"], ["compare"], ["leaderboard"], ["report"], ["make-tiny"], ["demo"]]


def option_blocks(text: str) -> dict[str, str]:
    """'--name' -> its whole help block, for options that take a value (a metavar or choices)."""
    body = text.split("options:", 1)[-1]
    blocks, name, buf = {}, None, []
    for line in body.splitlines():
        m = re.match(r"^  (-\w, )?(--[\w-]+)( [A-Z_{][^ ]*)?", line)
        if m:
            if name:
                blocks[name] = " ".join(buf)
            name, buf = (m.group(2), [line]) if m.group(3) else (None, [])
        elif name:
            buf.append(line.strip())
    if name:
        blocks[name] = " ".join(buf)
    return blocks


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_value_option_states_its_default(cmd):
    p = subprocess.run([sys.executable, "-m", "flex_judge.cli", *cmd, "--help"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    blocks = option_blocks(p.stdout)
    assert blocks, p.stdout  # the parser found the options (the check is not vacuous)
    silent = [n for n, b in blocks.items() if not re.search(r"default|required|\(none|unset|omitted", b, re.I)]
    assert silent == [], f"{' '.join(cmd)} --help: options without a stated default: {silent}"
