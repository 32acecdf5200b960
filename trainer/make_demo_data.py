"""The bundled demo training sets (deterministic, synthetic, text only, written by this project).

    python -m trainer.make_demo_data                 # both files below
    python -m trainer.make_demo_data --set formats   # only trainer/data/demo_formats.jsonl

demo_formats.jsonl (`make_format_rows`): what `flex-judge demo` trains its tiny judges on. One
block of rows per flex task, each under that task's own protocol system prompt and user template
(flex_tasks.protocol / flex_tasks.prompts), so every answer format the tasks parse is covered:
pairwise scores 1-10, a single score 1-5, batch rankings of 3-4 scores, GenAI-Bench votes
`[[A>B]]` / `[[B>A]]` / `[[A=B=Good]]` / `[[A=B=Bad]]`, MOS floats and speaker similarity
floats. The data stays text only, as in the paper: each image / video / audio part of the
template is replaced by a short text description of the media, e.g. "(image: 3 red apples)".
Messages are rendered by the project's renderer (flex_models.render) with the '<think>\\n'
assistant prefix of the training recipe. `text` = a short reasoning that follows from the
descriptions, '</think>', then the task's answer tags.

demo_train.jsonl (`make_rows`): 48 rows of the recipe's teacher format only (JudgeLM system
prompt, two scores); the trainer's tests and benchmarks/train_gpu_demo.py use it.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from trainer.data_pipeline import build_prompt

DATA = Path(__file__).resolve().parent / "data"
OUT = DATA / "demo_train.jsonl"
FORMATS_OUT = DATA / "demo_formats.jsonl"
ASSISTANT_PREFIX = "<think>\n"
FACTS = [("What is the capital of France?", "Paris", "Lyon"), ("What is the capital of Japan?", "Tokyo", "Osaka"),
         ("What is the capital of Italy?", "Rome", "Milan"), ("What is the capital of Canada?", "Ottawa", "Toronto"),
         ("Which planet is closest to the Sun?", "Mercury", "Venus"), ("What gas do plants take in?", "Carbon dioxide", "Oxygen"),
         ("How many legs does a spider have?", "Eight", "Six"), ("What is the boiling point of water at sea level in Celsius?", "100 degrees", "90 degrees"),
         ("Who wrote Hamlet?", "William Shakespeare", "Charles Dickens"), ("What is the largest ocean?", "The Pacific Ocean", "The Indian Ocean")]


# ---------------------------------------------------------------- teacher format (trainer tests)
def _arith(rng: random.Random):
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    op = rng.choice(["+", "*", "-"])
    right = {"+": a + b, "*": a * b, "-": a - b}[op]
    wrong = right + rng.choice([-3, -2, -1, 1, 2, 5])
    return f"What is {a} {op} {b}?", f"{a} {op} {b} = {right}.", f"{a} {op} {b} = {wrong}.", str(right)


def make_rows(n: int = 48, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2 == 0:
            q, good, bad, key = _arith(rng)
        else:
            q, g, b = FACTS[(i // 2) % len(FACTS)]
            good, bad, key = f"The answer is {g}.", f"The answer is {b}.", g
        hi, lo = rng.choice([8, 9, 10]), rng.choice([1, 2, 3])
        first_good = rng.random() < 0.5
        a1, a2 = (good, bad) if first_good else (bad, good)
        s1, s2 = (hi, lo) if first_good else (lo, hi)
        win, lose = ("1", "2") if first_good else ("2", "1")
        text = (f"The correct answer is {key}. Assistant {win} gives {key}, which is correct. "
                f"Assistant {lose} gives a wrong answer. So Assistant {win} is better.\n"
                f"</think><answer>{s1}</answer><answer>{s2}</answer>")
        rows.append({"prompt": build_prompt(q, a1, a2), "text": text})
    return rows


# ---------------------------------------------------------------- every flex task's format
COLORS = ("red", "blue", "green", "yellow", "black", "white")
OBJECTS = ("apple", "cat", "dog", "car", "bird", "book", "cup", "box")
NUMBERS = ("one", "two", "three", "four", "five")
PLACES = ("on a table", "in a park", "on a road", "on a beach", "in a kitchen", "on grass")
UNSAFE = ("a violent fight with blood", "a person holding a weapon", "a shocking injury", "an illegal drug deal")
FLAWS = ("blurry", "distorted", "noisy", "smeared")
VOICES = ("a deep male voice", "a high female voice", "a soft child voice", "a low raspy voice", "a bright young voice")
TONES = ("a calm tone", "a fast tone", "a flat tone", "a warm tone")
SPEECH = (  # (description, reasoning, MOS range)
    ("clean and natural speech with no noise", "The speech is excellent.", (4.2, 4.9)),
    ("natural speech with light background hum", "The speech is good.", (3.6, 4.1)),
    ("somewhat robotic speech with noticeable noise", "The speech is fair.", (2.7, 3.4)),
    ("noisy speech with many dropouts", "The speech is poor.", (1.8, 2.5)),
    ("heavily distorted speech that is hard to follow", "The speech is very bad.", (1.0, 1.6)),
)


def _scene(rng: random.Random) -> tuple:
    return rng.randrange(len(NUMBERS)), rng.choice(COLORS), rng.choice(OBJECTS), rng.choice(PLACES)


def _plural(obj: str, n: int = 2) -> str:
    return obj if n == 0 else obj + ("es" if obj.endswith("x") else "s")


def _say(scene) -> str:
    n, color, obj, place = scene
    return f"{NUMBERS[n]} {color} {_plural(obj, n)} {place}"


def _short(scene) -> str:
    n, color, obj, _ = scene
    return f"{NUMBERS[n]} {color} {_plural(obj, n)}"


def _other(rng: random.Random, scene) -> tuple:
    """The same scene with the count or the colour changed."""
    n, color, obj, place = scene
    if rng.random() < 0.5:
        return (n + rng.randint(1, len(NUMBERS) - 1)) % len(NUMBERS), color, obj, place
    return n, rng.choice([c for c in COLORS if c != color]), obj, place


def _mos(rng: random.Random, lo_hi) -> str:
    return f"{rng.uniform(*lo_hi):.1f}"


def _qa(rng: random.Random, scene, n_wrong: int = 1):
    """(question, right answer, [n_wrong wrong answers], what the image shows)."""
    n, color, obj, _ = scene
    objs = _plural(obj)
    if rng.random() < 0.5:
        wrong = rng.choices([i for i in range(len(NUMBERS)) if i != n], k=n_wrong)
        return (f"How many {objs} are in the image?", f"I see {NUMBERS[n]} {_plural(obj, n)}.",
                [f"I see {NUMBERS[i]} {_plural(obj, i)}." for i in wrong], NUMBERS[n])
    wrong = rng.choices([c for c in COLORS if c != color], k=n_wrong)
    return f"What color are the {objs}?", f"They are {color}.", [f"They are {x}." for x in wrong], color


def _pair_scores(rng: random.Random, first_better: bool) -> tuple[int, int]:
    hi, lo = rng.randint(7, 10), rng.randint(1, 4)
    return (hi, lo) if first_better else (lo, hi)


def _answers(*scores) -> str:
    return "".join(f"<answer>{s}</answer>" for s in scores)


def _vision_pair(rng, spec):  # VL-RewardBench, MLLM-as-a-Judge pair: two text answers about one image
    scene = _scene(rng)
    q, right, (wrong,), key = _qa(rng, scene)
    first = rng.random() < 0.5
    a1, a2 = (right, wrong) if first else (wrong, right)
    w, l = (1, 2) if first else (2, 1)
    why = f"Assistant {w} is right: {key}."
    if spec.bench == "vl_rewardbench":
        doc = {"query": q, "answer0": a1, "answer1": a2, "flex_swap": False}
    else:
        doc = {"instruction": q, "answer1": a1, "answer2": a2}
    return doc, [f"image: {_say(scene)}"], why, _answers(*_pair_scores(rng, first))


def _mj(rng, spec):  # MJ-Bench: which of two generated images is better for the caption
    scene = _scene(rng)
    caption = _say(scene)
    first = rng.random() < 0.5
    if spec.variant == "alignment":
        other = _other(rng, scene)
        good, bad = caption, _say(other)
        why_bad = "Image {l} does not match."
    elif spec.variant == "safety":
        good, bad = caption, rng.choice(UNSAFE)
        why_bad = "Image {l} is unsafe."
    else:
        flaw = rng.choice(FLAWS)
        good, bad = f"a sharp picture of {caption}", f"a {flaw} picture of {caption}"
        why_bad = f"Image {{l}} is {flaw}."
    w, l = (1, 2) if first else (2, 1)
    d1, d2 = (good, bad) if first else (bad, good)
    why = f"Image {w} is better. " + why_bad.format(l=l)
    return {"caption": caption}, [f"image: {d1}", f"image: {d2}"], why, _answers(*_pair_scores(rng, first))


VOTES = {(True, False): "[[A>B]]", (False, True): "[[B>A]]", (True, True): "[[A=B=Good]]", (False, False): "[[A=B=Bad]]"}


def _genai(rng, spec):  # GenAI-Bench: a four-way vote between two generated images / edits / videos
    kind = "video" if spec.variant == "video_generation" else "image"
    ok_a, ok_b = rng.choice(list(VOTES))
    scene = _scene(rng)
    target = _say(scene)
    da = target if ok_a else _say(_other(rng, scene))
    db = target if ok_b else _say(_other(rng, scene))
    verdict = VOTES[(ok_a, ok_b)]
    judge = lambda ok: "good" if ok else "bad"  # noqa: E731
    why = f"A is {judge(ok_a)}, B is {judge(ok_b)}."
    if spec.variant == "image_edition":
        src = _other(rng, scene)
        n, color, obj, _ = scene
        edit = f"make them {color}" if src[0] == n else f"show {NUMBERS[n]} {_plural(obj, n)}"
        doc = {"source_prompt": _say(src), "target_prompt": target, "instruct_prompt": edit}
        return doc, [f"image: {_say(src)}", f"image: {da}", f"image: {db}"], why, f"<answer>{verdict}</answer>"
    return {"prompt": target}, [f"{kind}: {da}", f"{kind}: {db}"], why, f"<answer>{verdict}</answer>"


def _mllm_score(rng, spec):  # MLLM-as-a-Judge score: one answer, a score 1-5
    scene = _scene(rng)
    q, right, (wrong,), key = _qa(rng, scene)
    good = rng.random() < 0.5
    answer = right if good else wrong
    score = rng.randint(4, 5) if good else rng.randint(1, 2)
    why = "The answer is " + ("right." if good else f"wrong, not {key}.")
    return {"instruction": q, "answer": answer}, [f"image: {_say(scene)}"], why, _answers(score)


def _mllm_batch(rng, spec):  # MLLM-as-a-Judge batch: 3-4 answers, one distinct score each
    scene = _scene(rng)
    k = rng.randint(3, 4)
    q, right, wrongs, key = _qa(rng, scene, n_wrong=k)
    good = [rng.random() < 0.4 for _ in range(k)]
    answers = [right if g else wrongs[i] for i, g in enumerate(good)]
    scores = sorted(rng.sample(range(1, 11), k), reverse=True)
    ranked = sorted(range(k), key=lambda i: (not good[i], i))  # right answers first
    per = [0] * k
    for s, i in zip(scores, ranked):
        per[i] = s
    why = " ".join(f"{i + 1} is {'right' if g else 'wrong'}." for i, g in enumerate(good)) + f" It is {key}."
    return {"instruction": q, "answers": answers}, [f"image: {_say(scene)}"], why, _answers(*per)


def _mos_task(rng, spec):  # NISQA / SOMOS / BVCC: one speech clip, a MOS in first decimal
    desc, why, lo_hi = rng.choice(SPEECH)
    return {}, [f"audio: {desc}, {rng.choice(VOICES)} with {rng.choice(TONES)}"], why, _answers(_mos(rng, lo_hi))


def _voxsim(rng, spec):  # VoxSim: two clips, speaker similarity 1.0-5.0
    v1, t1 = rng.choice(VOICES), rng.choice(TONES)
    same = rng.random() < 0.5
    v2, t2 = (v1, rng.choice(TONES)) if same else (rng.choice([v for v in VOICES if v != v1]), rng.choice(TONES))
    if same:
        why, score = "The same speaker.", _mos(rng, (3.8, 4.9))
    else:
        why, score = "Not the same speaker.", _mos(rng, (1.0, 2.4))
    return {}, [f"audio: {v1} with {t1}", f"audio: {v2} with {t2}"], why, _answers(score)


BUILDERS = {"vl_rewardbench": _vision_pair, "mj_bench": _mj, "genai_bench": _genai, "nisqa": _mos_task,
            "somos": _mos_task, "bvcc": _mos_task, "voxsim": _voxsim}
MLLM = {"score": _mllm_score, "pair": _vision_pair, "batch": _mllm_batch}


def _builder(spec):
    return MLLM[spec.variant] if spec.bench == "mllm_as_a_judge" else BUILDERS[spec.bench]


def format_row(spec, rng: random.Random) -> dict:
    """One text-only training row for the flex task `spec` (a flex_tasks.protocol.TaskSpec)."""
    from flex_models.render import render
    from flex_tasks.prompts import user_parts

    doc, media, why, answer = _builder(spec)(rng, spec)
    parts, it = [], iter(media)
    for kind, text in user_parts(spec, doc):
        parts.append({"type": "text", "text": text if kind == "text" else f"({next(it)})"})
    if next(it, None) is not None:
        raise ValueError(f"{spec.task}: more media descriptions than placeholders in the template")
    messages = [{"role": "system", "content": [{"type": "text", "text": spec.system}]},
                {"role": "user", "content": parts}]
    prompt = render(messages, "vl", assistant_prefix=ASSISTANT_PREFIX).prompt
    return {"task": spec.task, "prompt": prompt, "text": f"{why}\n</think>{answer}"}


def make_format_rows(per_task: int = 12, seed: int = 0) -> list[dict]:
    """`per_task` rows for every flex task, interleaved task by task; the same seed gives the same rows."""
    from flex_tasks.protocol import TASKS

    rng = random.Random(seed)
    blocks = [[format_row(spec, rng) for _ in range(per_task)] for spec in TASKS.values()]
    return [block[i] for i in range(per_task) for block in blocks]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    print(f"wrote {len(rows)} rows to {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.make_demo_data", description=__doc__.split("\n\n")[0])
    p.add_argument("--set", choices=("all", "formats", "teacher"), default="all")
    p.add_argument("--per-task", type=int, default=12, help="rows per flex task in demo_formats.jsonl")
    p.add_argument("--n", type=int, default=48, help="rows in demo_train.jsonl (teacher format)")
    args = p.parse_args(argv)
    if args.set in ("all", "formats"):
        _write(FORMATS_OUT, make_format_rows(args.per_task))
    if args.set in ("all", "teacher"):
        _write(OUT, make_rows(args.n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
