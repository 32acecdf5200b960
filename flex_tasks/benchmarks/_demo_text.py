"""Shared vocabulary of the text-only demo training rows (``python -m trainer.make_demo_data``):
scenes, questions and speech descriptions stand in for the media, as short text. Each benchmark
module's ``demo_example(rng, spec)`` returns (doc, media descriptions, reasoning, answer tags)
in its own answer format; the RNG call order is part of the bundled file's identity."""
from __future__ import annotations

import random

COLORS = ("red", "blue", "green", "yellow", "black", "white")
OBJECTS = ("apple", "cat", "dog", "car", "bird", "book", "cup", "box")
NUMBERS = ("one", "two", "three", "four", "five")
PLACES = ("on a table", "in a park", "on a road", "on a beach", "in a kitchen", "on grass")
VOICES = ("a deep male voice", "a high female voice", "a soft child voice", "a low raspy voice", "a bright young voice")
TONES = ("a calm tone", "a fast tone", "a flat tone", "a warm tone")
SPEECH = (  # (description, reasoning, MOS range)
    ("clean and natural speech with no noise", "The speech is excellent.", (4.2, 4.9)),
    ("natural speech with light background hum", "The speech is good.", (3.6, 4.1)),
    ("somewhat robotic speech with noticeable noise", "The speech is fair.", (2.7, 3.4)),
    ("noisy speech with many dropouts", "The speech is poor.", (1.8, 2.5)),
    ("heavily distorted speech that is hard to follow", "The speech is very bad.", (1.0, 1.6)),
)


def scene(rng: random.Random) -> tuple:
    return rng.randrange(len(NUMBERS)), rng.choice(COLORS), rng.choice(OBJECTS), rng.choice(PLACES)


def plural(obj: str, n: int = 2) -> str:
    return obj if n == 0 else obj + ("es" if obj.endswith("x") else "s")


def say(scene) -> str:
    n, color, obj, place = scene
    return f"{NUMBERS[n]} {color} {plural(obj, n)} {place}"


def other(rng: random.Random, scene) -> tuple:
    """The same scene with the count or the colour changed."""
    n, color, obj, place = scene
    if rng.random() < 0.5:
        return (n + rng.randint(1, len(NUMBERS) - 1)) % len(NUMBERS), color, obj, place
    return n, rng.choice([c for c in COLORS if c != color]), obj, place


def mos_value(rng: random.Random, lo_hi) -> str:
    return f"{rng.uniform(*lo_hi):.1f}"


def qa(rng: random.Random, scene, n_wrong: int = 1):
    """(question, right answer, [n_wrong wrong answers], what the image shows)."""
    n, color, obj, _ = scene
    objs = plural(obj)
    if rng.random() < 0.5:
        wrong = rng.choices([i for i in range(len(NUMBERS)) if i != n], k=n_wrong)
        return (f"How many {objs} are in the image?", f"I see {NUMBERS[n]} {plural(obj, n)}.",
                [f"I see {NUMBERS[i]} {plural(obj, i)}." for i in wrong], NUMBERS[n])
    wrong = rng.choices([c for c in COLORS if c != color], k=n_wrong)
    return f"What color are the {objs}?", f"They are {color}.", [f"They are {x}." for x in wrong], color


def pair_scores(rng: random.Random, first_better: bool) -> tuple[int, int]:
    hi, lo = rng.randint(7, 10), rng.randint(1, 4)
    return (hi, lo) if first_better else (lo, hi)


def answers(*scores) -> str:
    return "".join(f"<answer>{s}</answer>" for s in scores)


def vision_pair(rng: random.Random) -> tuple:
    """Two text answers about one image (VL-RewardBench, MLLM-as-a-Judge pair):
    (question, answer 1, answer 2, media descriptions, reasoning, answer tags)."""
    sc = scene(rng)
    q, right, (wrong,), key = qa(rng, sc)
    first = rng.random() < 0.5
    a1, a2 = (right, wrong) if first else (wrong, right)
    w = 1 if first else 2
    why = f"Assistant {w} is right: {key}."
    return q, a1, a2, [f"image: {say(sc)}"], why, answers(*pair_scores(rng, first))


def mos_example(rng: random.Random, spec) -> tuple:
    """One speech clip, a MOS in first decimal (NISQA, SOMOS, BVCC)."""
    desc, why, lo_hi = rng.choice(SPEECH)
    return {}, [f"audio: {desc}, {rng.choice(VOICES)} with {rng.choice(TONES)}"], why, answers(mos_value(rng, lo_hi))
