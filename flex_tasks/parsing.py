"""Answer parsers: pure functions from a judge's raw output to a verdict.

Every parser returns a :class:`Parsed` holding the value the paper's scripts would use
(their fallback applied for parity) and ``ok``: whether the output actually contained a
parsable answer. Callers count ``ok=False`` as a parse failure and report it.
"""
from __future__ import annotations

import re
import string
from typing import Any, NamedTuple, Optional

_INT_ANSWER = re.compile(r"<answer>(\d+)</answer>")
_FLOAT_ANSWER = re.compile(r"<answer>(\d+\.?\d*)</answer>")
_BRACKET_ANSWER = re.compile(r"<answer>(\[\[.*?\]\])</answer>")
_SCORE_PHRASE = re.compile(r"(?:score|rating)(?:\s+is|\s*[:=]\s*)?\s*(\d+\.?\d*)", re.IGNORECASE)
_BARE_MOS = re.compile(r"\b[1-5](?:\.\d*)?\b")

GENAI_LABELS = ("leftvote", "rightvote", "tievote", "bothbad_vote")
GENAI_NONE = "none"


class Parsed(NamedTuple):
    value: Any
    ok: bool
    how: str = "answer"  # "answer" | "fallback" | a fallback rule's name


def answer_ints(text: str) -> list[int]:
    """All integers written as ``<answer>N</answer>``, in order."""
    return [int(x) for x in _INT_ANSWER.findall(text or "")]


def pairwise_scores(text: str) -> Parsed:
    """First two ``<answer>N</answer>`` integers -> ``(s1, s2)``; fewer than two -> ``None``."""
    ints = answer_ints(text)
    if len(ints) < 2:
        return Parsed(None, False, "fallback")
    return Parsed((ints[0], ints[1]), True)


def vlrb_better(text: str) -> Parsed:
    """VL-RewardBench: index (0/1) of the presented answer judged better; equal or
    unparsable -> ``None`` (counted wrong). ``ok`` is False only when unparsable."""
    p = pairwise_scores(text)
    if not p.ok:
        return Parsed(None, False, "fallback")
    s1, s2 = p.value
    return Parsed(0 if s1 > s2 else 1 if s1 < s2 else None, True)


def mj_pref(text: str, swapped: bool = False) -> Parsed:
    """MJ-Bench: 0 = first image (image0) preferred, 1 = second, 2 = tie / unparsable.
    With ``swapped`` the images were shown in reverse order and the verdict is mapped back."""
    p = pairwise_scores(text)
    if not p.ok:
        return Parsed(2, False, "fallback")
    s1, s2 = p.value
    pred = 0 if s1 > s2 else 1 if s1 < s2 else 2
    if swapped and pred != 2:
        pred = 1 - pred
    return Parsed(pred, True)


def mllm_pair(text: str) -> Parsed:
    """MLLM-as-a-Judge pair: 'A' (first better), 'B', or 'C' (tie; also the fallback)."""
    p = pairwise_scores(text)
    if not p.ok:
        return Parsed("C", False, "fallback")
    s1, s2 = p.value
    return Parsed("A" if s1 > s2 else "B" if s1 < s2 else "C", True)


def mllm_score(text: str) -> Parsed:
    """MLLM-as-a-Judge score: first ``<answer>N</answer>`` integer; unparsable -> -1."""
    ints = answer_ints(text)
    if not ints:
        return Parsed(-1, False, "fallback")
    return Parsed(ints[0], True)


def mllm_batch(text: str, n_answers: Optional[int] = None) -> Parsed:
    """MLLM-as-a-Judge batch: letters A, B, ... (one per parsed score) sorted by score
    descending, ties broken by the later letter first (the reference script sorts
    (score, letter) pairs in reverse). ``ok`` requires one score per answer when
    ``n_answers`` is given."""
    ints = answer_ints(text)
    labels = string.ascii_uppercase[: len(ints)]
    ranking = "".join(label for _, label in sorted(zip(ints, labels), reverse=True))
    ok = bool(ints) and (n_answers is None or len(ints) == n_answers)
    return Parsed(ranking, ok, "answer" if ok else "fallback")


def genai_vote(text: str) -> Parsed:
    """GenAI-Bench: first ``<answer>[[...]]</answer>`` -> a vote_type; no match -> 'none'."""
    m = _BRACKET_ANSWER.search(text or "")
    if not m:
        return Parsed(GENAI_NONE, False, "fallback")
    verdict = m.group(1)
    if verdict in ("[[A>B]]", "[[B<A]]"):
        return Parsed("leftvote", True)
    if verdict in ("[[A<B]]", "[[B>A]]"):
        return Parsed("rightvote", True)
    if verdict == "[[A=B=Good]]":
        return Parsed("tievote", True)
    return Parsed("bothbad_vote", True)


def answer_float(text: str, default: float) -> Parsed:
    """First ``<answer>X</answer>`` number as float; otherwise ``default`` (NISQA 3.0,
    SOMOS 3.0, VoxSim 3.5)."""
    m = _FLOAT_ANSWER.search(text or "")
    if not m:
        return Parsed(float(default), False, "fallback")
    return Parsed(float(m.group(1)), True)


def bvcc_mos(text: str) -> Parsed:
    """BVCC: ``<answer>X</answer>``; else 'score/rating is|:|= X'; else the first bare
    number 1-5; else 0.0. Only the first rule counts as parsed."""
    text = text or ""
    m = _FLOAT_ANSWER.search(text)
    if m:
        return Parsed(float(m.group(1)), True)
    m = _SCORE_PHRASE.search(text)
    if m:
        return Parsed(float(m.group(1)), False, "score_phrase")
    m = _BARE_MOS.search(text)
    if m:
        return Parsed(float(m.group(0)), False, "bare_number")
    return Parsed(0.0, False, "fallback")


PARSERS = {
    "vlrb_better": vlrb_better,
    "mj_pref": mj_pref,
    "mllm_pair": mllm_pair,
    "mllm_score": mllm_score,
    "mllm_batch": mllm_batch,
    "genai_vote": genai_vote,
    "answer_float": answer_float,
    "bvcc_mos": bvcc_mos,
}

# How many <answer> tags each parser reads: 2 (one score per response), "per_answer" (one score
# per answer of a batch) or 1. `flex-judge demo` uses it to say why an output did not parse.
ANSWER_TAGS = {
    "vlrb_better": 2,
    "mj_pref": 2,
    "mllm_pair": 2,
    "mllm_score": 1,
    "mllm_batch": "per_answer",
    "genai_vote": 1,
    "answer_float": 1,
    "bvcc_mos": 1,
}
