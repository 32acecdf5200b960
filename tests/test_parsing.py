"""Parsers against the case table tests/data/parse_cases.jsonl (one row per odd output)."""
import json
from pathlib import Path

import pytest

from flex_tasks import parsing

CASES = [json.loads(l) for l in (Path(__file__).parent / "data" / "parse_cases.jsonl").read_text().splitlines() if l.strip()]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['parser']}:{c['note']}" for c in CASES])
def test_parse_case(case):
    fn = parsing.PARSERS[case["parser"]]
    got = fn(case["output"], *case.get("args", []), **case.get("kwargs", {}))
    assert got.value == case["value"]
    assert got.ok is case["ok"]
    if "how" in case:
        assert got.how == case["how"]


def test_every_parser_has_cases():
    assert {c["parser"] for c in CASES} == set(parsing.PARSERS)


def test_parsers_accept_none():
    for name, fn in parsing.PARSERS.items():
        args = [3.0] if name == "answer_float" else []
        assert fn(None, *args).ok is False
