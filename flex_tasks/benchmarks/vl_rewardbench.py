"""VL-RewardBench: a query, an image and two responses shown in a per-run random order; the
judge scores both; the better one is mapped back to the original response index."""
from flex_tasks.benchmarks import Benchmark
from flex_tasks.parsing import PARSERS, Parsed


def fields(spec, doc) -> dict:
    a1, a2 = (doc["answer1"], doc["answer0"]) if doc["flex_swap"] else (doc["answer0"], doc["answer1"])
    return {"query": doc["query"], "answer1": a1, "answer2": a2}


def parse(spec, doc, text: str) -> Parsed:
    p = PARSERS["vlrb_better"](text)
    if p.value is not None and doc["flex_swap"]:
        return Parsed(1 - p.value, p.ok, p.how)  # presented order -> original response index
    return p


BENCHMARK = Benchmark("vl_rewardbench", fields=fields, parse=parse)
