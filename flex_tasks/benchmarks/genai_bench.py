"""GenAI-Bench: a prompt (editing: source / target / instruction prompts) and two generated
images or videos, in the data's order; the verdict is an [[A>B]]-style vote."""
from flex_tasks.benchmarks import Benchmark

_EDITING_FIELDS = ("source_prompt", "target_prompt", "instruct_prompt")


def fields(spec, doc) -> dict:
    if spec.variant == "image_edition":
        return {k: doc[k] for k in _EDITING_FIELDS}
    return {"prompt": doc["prompt"]}


BENCHMARK = Benchmark("genai_bench", fields=fields)
