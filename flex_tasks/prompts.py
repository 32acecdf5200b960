"""Protocol user templates -> interleaved chat content (contract 1).

A template is split at its media placeholders *before* fields are filled, so text from the
data can never be mistaken for a placeholder. Text parts are exactly the protocol string with
the placeholders cut out; empty text parts are dropped.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from flex_tasks import benchmarks
from flex_tasks.protocol import PLACEHOLDERS, TaskSpec

_PH_RE = re.compile("(" + "|".join(re.escape(p) for p in PLACEHOLDERS) + ")")


def template_parts(template: str, fields: dict) -> list[tuple[str, str]]:
    """``[("text", filled text) | (media kind, placeholder)]`` in template order."""
    parts = []
    for piece in _PH_RE.split(template):
        if piece in PLACEHOLDERS:
            parts.append((PLACEHOLDERS[piece], piece))
        elif piece:
            parts.append(("text", piece.format(**fields)))
    return parts


def user_parts(spec: TaskSpec, doc: dict) -> list[tuple[str, str]]:
    """The doc's user message as parts: the benchmark's own layout, or the protocol template."""
    bench = benchmarks.of(spec)
    if bench.user_parts is not None:
        return bench.user_parts(spec, doc)
    return template_parts(spec.user, prompt_fields(spec, doc))


def prompt_fields(spec: TaskSpec, doc: dict) -> dict:
    """Template fields for one doc (order swaps applied)."""
    return benchmarks.of(spec).fields(spec, doc)


def interleave(parts: Sequence[tuple[str, str]], media: Sequence[Any]) -> list[dict]:
    """Replace each media part, in order, with ``{"type": kind, "url": media[i]}``."""
    n_media = sum(1 for kind, _ in parts if kind != "text")
    if n_media != len(media):
        raise ValueError(f"template has {n_media} media placeholders but {len(media)} media were given")
    out, it = [], iter(media)
    for kind, text in parts:
        out.append({"type": "text", "text": text} if kind == "text" else {"type": kind, "url": next(it)})
    return out


def messages(spec: TaskSpec, doc: dict, media: Sequence[Any]) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": spec.system}]},
        {"role": "user", "content": interleave(user_parts(spec, doc), media)},
    ]
