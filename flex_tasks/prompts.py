"""Protocol user templates -> interleaved chat content (contract 1).

A template is split at its media placeholders *before* fields are filled, so text from the
data can never be mistaken for a placeholder. Text parts are exactly the protocol string with
the placeholders cut out; empty text parts are dropped.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from flex_models.errors import FlexJudgeError
from flex_tasks import benchmarks
from flex_tasks.protocol import PLACEHOLDERS, TaskSpec

_PH_RE = re.compile("(" + "|".join(re.escape(p) for p in PLACEHOLDERS) + ")")


class SlotError(FlexJudgeError, ValueError):
    """Media that do not fit a template's media slots; ``slots`` and ``media`` are the counts
    (callers word it for their input: a judging-API call, a judged file's row)."""

    def __init__(self, slots: int, media: int):
        super().__init__(f"the template has {slots} media slots, got {media} media")
        self.slots, self.media = slots, media


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


def fill_slots(parts: Sequence[tuple[str, str]], media_kinds: Sequence[str], *, when_no_slot: str = "error",
               when_no_media: str = "drop") -> list[tuple[str, str]]:
    """Put a caller's media, given by kind, into the template's media slots: the parts ready for
    `interleave`, each media part ``(kind of that media, "")`` (the media's kind, not the slot's:
    an image may fill a video slot).

    - one slot takes any number of media there, in order (none: the slot goes);
    - several slots need exactly that many media, one each in order;
    - no slot: media are a SlotError (``when_no_slot="error"``) or go first, before the text, as
      the protocols place them (``"prepend"``);
    - no media: every slot goes (``when_no_media="drop"``: text-only judging), or zero counts like
      any other number (``"count"``: several slots then want their media).

    The lmms-eval tasks need none of this: their docs' media match the template one to one
    (`messages`)."""
    if when_no_slot not in ("error", "prepend") or when_no_media not in ("drop", "count"):
        raise ValueError(f"fill_slots: when_no_slot={when_no_slot!r}, when_no_media={when_no_media!r}")
    slots = [i for i, (kind, _) in enumerate(parts) if kind != "text"]
    if not media_kinds and when_no_media == "drop":
        return [p for p in parts if p[0] == "text"]
    filled = [(kind, "") for kind in media_kinds]
    if not slots:
        if filled and when_no_slot == "error":
            raise SlotError(0, len(filled))
        return filled + list(parts)
    if len(slots) == 1:
        return list(parts[:slots[0]]) + filled + list(parts[slots[0] + 1:])
    if len(filled) != len(slots):
        raise SlotError(len(slots), len(filled))
    kinds = iter(media_kinds)
    return [(next(kinds), "") if kind != "text" else (kind, text) for kind, text in parts]


def interleave(parts: Sequence[tuple[str, str]], media: Sequence[Any]) -> list[dict]:
    """Replace each media part, in order, with ``{"type": kind, "url": media[i]}``."""
    n_media = sum(1 for kind, _ in parts if kind != "text")
    if n_media != len(media):
        raise SlotError(n_media, len(media))
    out, it = [], iter(media)
    for kind, text in parts:
        out.append({"type": "text", "text": text} if kind == "text" else {"type": kind, "url": next(it)})
    return out


def messages(spec: TaskSpec, doc: dict, media: Sequence[Any]) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": spec.system}]},
        {"role": "user", "content": interleave(user_parts(spec, doc), media)},
    ]
