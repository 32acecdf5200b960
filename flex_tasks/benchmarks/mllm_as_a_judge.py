"""MLLM-as-a-Judge: score (one answer), pair (two answers) and batch (a ranking of N answers,
one '[Assistant i's Answer]' block each); one image per item."""
from pathlib import Path
import os

from flex_tasks.benchmarks import Benchmark
from flex_tasks.data import DataError, read_jsonl, within
from flex_tasks.parsing import PARSERS
from flex_tasks.protocol import FAMILY_PLACEHOLDERS


def batch_template(n_answers: int) -> str:
    """The batch layout: one '[Assistant i's Answer]' block per answer, joined by blank lines
    (the reference script strips the whole string at the end)."""
    blocks = "".join(f"[Assistant {i + 1}'s Answer]\n{{a{i + 1}}}\n\n" for i in range(n_answers))
    return FAMILY_PLACEHOLDERS["vl"]["image"] + "\n\n[Question]\n{instruction}\n\n" + blocks


def fields(spec, doc) -> dict:
    if spec.variant == "pair":
        return {"instruction": doc["instruction"], "answer1": doc["answer1"], "answer2": doc["answer2"]}
    if spec.variant == "batch":
        return {"instruction": doc["instruction"], **{f"a{i + 1}": a for i, a in enumerate(doc["answers"])}}
    return {"instruction": doc["instruction"], "answer": doc["answer"]}


def user_parts(spec, doc) -> list:
    from flex_tasks.prompts import template_parts

    if spec.variant != "batch":
        return template_parts(spec.user, fields(spec, doc))
    parts = template_parts(batch_template(len(doc["answers"])), fields(spec, doc))
    if parts and parts[-1][0] == "text":  # .strip() of the whole user string
        stripped = parts[-1][1].rstrip()
        parts = parts[:-1] + ([("text", stripped)] if stripped else [])
    return parts


def parse(spec, doc, text: str):
    if spec.variant == "batch":
        return PARSERS["mllm_batch"](text, n_answers=len(doc["answers"]))
    return PARSERS[spec.parser](text)


def _dirs(root: Path, env: str) -> tuple[Path, Path]:
    for bench in (root / "Dataset" / "Benchmark", root / "Benchmark", root):
        if (bench / "pair.jsonl").exists() or (bench / "score.jsonl").exists() or (bench / "batch.jsonl").exists():
            return bench, bench.parent
    raise DataError(f"{env}={root}: expected Dataset/Benchmark/{{pair,score,batch}}.jsonl (or Benchmark/...) under it")


def _image(source: Path, data_dir: Path, rel: str, where: str, row: int, env: str) -> str:
    root = Path(os.path.commonpath([os.path.abspath(source), os.path.abspath(data_dir)]))
    inside = []
    for base in (data_dir / "image", data_dir / "images", data_dir, data_dir.parent):
        try:
            inside.append(within(root, base, rel, where, row, env))
        except DataError as e:
            refused = e
    if not inside:
        raise refused
    for cand in inside:
        if cand.exists():
            return str(cand)
    raise DataError(f"{where} row {row}: image {rel!r} not found under {data_dir}/image, {data_dir}/images or {data_dir} (setting {env})")


def load(spec, source) -> list[dict]:
    bench_dir, data_dir = _dirs(Path(source), spec.env)
    path = bench_dir / f"{spec.variant}.jsonl"
    items = []
    for i, r in enumerate(read_jsonl(path)):
        where = f"{path} row {i}"
        try:
            base = {"data_id": str(r.get('id', r.get('score_id', r.get('pair_id', i)))),
                    "dataset": str(r["original_dataset"]), "instruction": r["instruction"],
                    "media": [_image(Path(source), data_dir, r["image_path"], str(path), i, spec.env)]}
            if spec.variant == "pair":
                gold = str(r["human"]).strip().upper()
                if gold not in ("A", "B", "C"):
                    raise DataError(f"{where}: human must be A, B or C, got {r['human']!r}")
                base.update(answer1=r["answer1"]["answer"], answer2=r["answer2"]["answer"], gold=gold)
            elif spec.variant == "score":
                try:
                    base.update(answer=r["answer"], gold=int(float(str(r["human"]).strip())))
                except ValueError:
                    raise DataError(f"{where}: human score {r['human']!r} is not a number") from None
            else:
                human = r.get("human_answer", r.get("human"))
                if human is None:
                    raise DataError(f"{where}: no ranking in 'human_answer' or 'human'")
                ranking = "".join(ch for ch in str(human).upper() if ch.isalpha())
                base.update(answers=[a["answer"] for a in r["answers"]], gold=ranking)
        except KeyError as e:
            raise DataError(f"{where}: missing field {e}") from None
        items.append(base)
    if not items:
        raise DataError(f"{path}: no rows")
    return items


BENCHMARK = Benchmark("mllm_as_a_judge", load=load, fixtures="mllm_judge", fields=fields, user_parts=user_parts, parse=parse)
