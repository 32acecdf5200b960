"""Answer parsing: the one ``<think>...</think><answer>...</answer>`` splitter and the shared
readers every benchmark's parser is built from.

A parser (declared by its benchmark module, :class:`flex_tasks.benchmarks.Parser`) is a pure
function from a judge's raw output to a :class:`Parsed` holding the value the paper's scripts
would use (their fallback applied for parity) and ``ok``: whether the output actually contained
a parsable answer. Callers count ``ok=False`` as a parse failure and report it.
``PARSERS`` (name -> function) and ``ANSWER_TAGS`` (name -> how many ``<answer>`` tags it
reads) are read off the benchmark registry.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

# An <answer> span: the shortest text up to </answer> that holds no other <answer> (so a stray
# opening tag before the real answer does not swallow it).
_ANSWER_SPAN = re.compile(r"<answer>((?:(?!<answer>).)*?)</answer>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_INT = re.compile(r"\d+")
_FLOAT = re.compile(r"\d+\.?\d*")


class Parsed(NamedTuple):
    value: Any
    ok: bool
    how: str = "answer"  # "answer" | "fallback" | a fallback rule's name


class AnswerSplit(NamedTuple):
    answer: str  # every <answer> span joined by a space; else the text after </think>; else the whole text
    reasoning: str  # inside <think>...</think> (to the end when unclosed); else the text before the first <answer>


def answer_spans(text: str) -> list[str]:
    """The contents of every ``<answer>...</answer>``, in order, exactly as written."""
    return _ANSWER_SPAN.findall(text or "")


def reasoning_of(text: str) -> str:
    """The judge's reasoning, stripped: inside ``<think>...</think>`` (to the end when the tag
    is not closed); else, with only a closing tag (the prompt ended in the ``<think>`` assistant
    prefix, so the output starts inside it), the text before ``</think>``; else the text before
    the first ``<answer>``."""
    text = text or ""
    m = _THINK.search(text)
    if m:
        return m.group(1).strip()
    if "</think>" in text:
        return text.split("</think>", 1)[0].strip()
    return text.split("<answer>")[0].strip()


def split_answer(text: str) -> AnswerSplit:
    """``(answer, reasoning)`` of a Flex-Judge output, the one splitter of the project.

    ``answer``: the ``<answer>`` spans (stripped) joined by a space; with none, the text after
    ``</think>``; with neither, the whole text. ``reasoning``: :func:`reasoning_of`, except
    that an output with neither tag has no reasoning (it is all answer). The pieces the parsers,
    the server and the training-data filter need separately are :func:`answer_spans` (spans as
    written), :func:`reasoning_of` and ``"</think>" in text``."""
    text = text or ""
    reasoning = reasoning_of(text)
    spans = [a.strip() for a in answer_spans(text)]
    if spans:
        return AnswerSplit(" ".join(spans), reasoning)
    if "</think>" in text:
        return AnswerSplit(text.split("</think>", 1)[1].strip(), reasoning)
    return AnswerSplit(text.strip(), reasoning if _THINK.search(text) else "")


def answer_ints(text: str) -> list[int]:
    """All integers written as ``<answer>N</answer>`` (digits only, nothing around them), in order."""
    return [int(x) for x in answer_spans(text) if _INT.fullmatch(x)]


def answer_floats(text: str) -> list[float]:
    """All numbers written as ``<answer>X</answer>`` (``3``, ``3.``, ``3.8``), in order."""
    return [float(x) for x in answer_spans(text) if _FLOAT.fullmatch(x)]


def pairwise_scores(text: str) -> Parsed:
    """First two ``<answer>N</answer>`` integers -> ``(s1, s2)``; fewer than two -> ``None``."""
    ints = answer_ints(text)
    if len(ints) < 2:
        return Parsed(None, False, "fallback")
    return Parsed((ints[0], ints[1]), True)


def answer_float(text: str, default: float) -> Parsed:
    """First ``<answer>X</answer>`` number as float; otherwise ``default`` (NISQA 3.0,
    SOMOS 3.0, VoxSim 3.5)."""
    xs = answer_floats(text)
    if not xs:
        return Parsed(float(default), False, "fallback")
    return Parsed(xs[0], True)




def __getattr__(name: str):
    # PARSERS / ANSWER_TAGS are the registry's (the benchmark modules import this module, so
    # the tables are read off the registry on first use, not at import)
    if name in ("PARSERS", "ANSWER_TAGS"):
        from flex_tasks import benchmarks

        parsers = benchmarks.parsers()
        return {n: (p.fn if name == "PARSERS" else p.tags) for n, p in parsers.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
