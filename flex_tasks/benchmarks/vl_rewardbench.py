"""VL-RewardBench: a query, an image and two responses shown in a per-run random order; the
judge scores both; the better one is mapped back to the original response index."""
from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import DataError, require_columns, source_dataset, text_rows
from flex_tasks.parsing import PARSERS, Parsed


def fields(spec, doc) -> dict:
    a1, a2 = (doc["answer1"], doc["answer0"]) if doc["flex_swap"] else (doc["answer0"], doc["answer1"])
    return {"query": doc["query"], "answer1": a1, "answer2": a2}


def parse(spec, doc, text: str) -> Parsed:
    p = PARSERS["vlrb_better"](text)
    if p.value is not None and doc["flex_swap"]:
        return Parsed(1 - p.value, p.ok, p.how)  # presented order -> original response index
    return p


def load(spec, source) -> list[dict]:
    ds = source_dataset(spec, source)
    where = f"{spec.task} ({source})"
    require_columns(ds, ["id", "query", "response", "image", "human_ranking"], where)
    items = []
    for i, r in enumerate(text_rows(ds, ["id", "query", "response", "human_ranking"])):
        resp, rank = r["response"], r["human_ranking"]
        if not isinstance(resp, list) or len(resp) != 2 or not isinstance(rank, list) or len(rank) != 2 or rank[0] == rank[1]:
            raise DataError(f"{where} row {i} (id={r['id']}): expected response[2] and a strict human_ranking[2], "
                            f"got response={resp!r:.80} human_ranking={rank!r}")
        items.append({"data_id": str(r["id"]), "query": r["query"], "answer0": resp[0], "answer1": resp[1],
                      "gold": 0 if rank[0] < rank[1] else 1, "category": category(str(r["id"])),
                      "media": ["row:image"], "row": i})
    return items


_GROUPS = {"mathverse": "reasoning", "mmmu": "reasoning", "hallucination": "hallucination",
                "rlhf": "hallucination", "rlaif": "hallucination", "povid": "hallucination",
                "wildvision": "general", "vlfeedback": "general"}


def category(item_id: str) -> str:
    """VL-RewardBench category from the id prefix (text before the first '-' / '_')."""
    prefix = item_id.split("-")[0].split("_")[0].lower()
    return _GROUPS.get(prefix, "general")


BENCHMARK = Benchmark("vl_rewardbench", load=load, fields=fields, parse=parse)
