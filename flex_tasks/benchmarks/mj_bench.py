"""MJ-Bench: a caption and two generated images; odd runs show the images swapped, and the
preference is mapped back to the original order by the parser."""
from flex_tasks.benchmarks import Benchmark
from flex_tasks.parsing import PARSERS


def fields(spec, doc) -> dict:
    return {"caption": doc["caption"]}


def media_order(spec, doc, refs: list) -> list:
    return refs[::-1] if doc["flex_swap"] else refs


def parse(spec, doc, text: str):
    return PARSERS["mj_pref"](text, swapped=bool(doc["flex_swap"]))


BENCHMARK = Benchmark("mj_bench", fields=fields, media_order=media_order, parse=parse)
