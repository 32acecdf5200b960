"""The per-(item, run) record: one judge output, parsed, with everything needed to score,
compare and audit it. Built once per doc by :func:`flex_tasks.lmms.make_record`; read as a
:class:`Record` (attributes, never keys) by the benchmarks' reports, ``flex-judge compare`` /
``leaderboard`` / ``report`` (from the samples file) and the Python API.

Dicts only at the JSON edges: :meth:`Record.as_dict` is what a samples line holds (flat, the
group fields at the top level), :meth:`Record.from_dict` reads one back and is strict (a
missing field or one of the wrong type is a :class:`RecordError` naming where it came from).

In lmms-eval's samples file each line holds the record once, under the task's first metric
(``TaskSpec.metric_names()[0]``); the other metrics of the line hold a short reference to it
(:class:`RecordRef`, written as ``"@<first metric>"``). lmms-eval hands every metric's
aggregation its own list of those values; :func:`as_records` turns either kind back into the
record.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from flex_models.errors import FlexJudgeError

# item fields that group items in a benchmark's report (VL-RewardBench category, MLLM-as-a-Judge
# original dataset, NISQA test set, BVCC / SOMOS system and its MOS)
GROUP_KEYS = ("category", "dataset", "set", "system", "system_gt")


class RecordError(FlexJudgeError, ValueError):
    """A per-(item, run) record (a samples line, a record dict) that is not a flex record."""


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# field -> (check, what it must be); pred and gold are the benchmark's values (any JSON value)
_CHECKS = {
    "task": (lambda v: isinstance(v, str), "a string"),
    "item": (lambda v: _int(v) or isinstance(v, str), "an integer (row position) or a string"),
    "run": (_int, "an integer"),
    "seed": (_int, "an integer"),
    "swap": (lambda v: isinstance(v, bool), "true or false"),
    "raw": (lambda v: isinstance(v, str), "a string"),
    "pred": (lambda v: True, ""),
    "ok": (lambda v: isinstance(v, bool), "true or false"),
    "how": (lambda v: isinstance(v, str), "a string"),
    "gold": (lambda v: True, ""),
    "data_id": (lambda v: v is None or isinstance(v, str), "a string or null"),
}
OPTIONAL = {"raw": "", "data_id": None}  # absent in a record dict: written so (older samples lines)


@dataclass(frozen=True)
class Record:
    task: str
    item: Any  # the item's row position in the loaded data (never a data id)
    run: int
    seed: int  # the run's sampling seed (protocol seed of run k)
    swap: bool  # shown in swapped order (VL-RewardBench responses, MJ-Bench images)
    raw: str  # the judge's output as given to the task
    pred: Any  # parsed value, in the original order (the protocol's fallback when not ok)
    ok: bool  # the output held a parsable answer
    how: str  # "answer" | "fallback" | the fallback rule used
    gold: Any
    group: dict = field(default_factory=dict)  # the GROUP_KEYS the item has (read with .grouped(key))
    data_id: Optional[str] = None  # the data's own id (may repeat across items)

    def grouped(self, key: str):
        """A group field of the item (``"category"``, ``"dataset"``, ``"set"``, ``"system"``,
        ``"system_gt"``); a RecordError naming the record when the item has none."""
        if key not in GROUP_KEYS:
            raise KeyError(f"{key!r} is not a group field ({', '.join(GROUP_KEYS)})")
        try:
            return self.group[key]
        except KeyError:
            raise RecordError(f"{self.task} item {self.item!r} run {self.run}: the record has no {key!r} "
                              f"(the task's data gives none)") from None

    def as_dict(self) -> dict:
        """Flat JSON-ready dict: the fields, with ``group``'s keys at the top level."""
        d = asdict(self)
        d.update(d.pop("group"))
        return d

    @classmethod
    def from_dict(cls, d, where: str = "record") -> "Record":
        """The record of a flat dict (:meth:`as_dict`'s form). Strict: a missing field or a
        field of the wrong type is a RecordError naming ``where`` (``<file>:<line>``) and the field."""
        if not isinstance(d, dict):
            raise RecordError(f"{where}: a record must be a JSON object, got {type(d).__name__}")
        missing = [k for k in _CHECKS if k not in d and k not in OPTIONAL]
        if missing:
            raise RecordError(f"{where}: the record lacks {', '.join(missing)}")
        vals = {k: d.get(k, OPTIONAL.get(k)) for k in _CHECKS}
        for k, (ok, what) in _CHECKS.items():
            if not ok(vals[k]):
                raise RecordError(f"{where}: record field {k!r} must be {what}, got {vals[k]!r}")
        return cls(**vals, group={k: d[k] for k in GROUP_KEYS if k in d})


class RecordRef:
    """The record of a sample line, referred to from its other metrics (written short)."""

    __slots__ = ("record", "key")

    def __init__(self, record, key: str):
        self.record = record  # the Record, or the dict the line holds
        self.key = key

    def __str__(self) -> str:  # lmms-eval's JSON fallback for unknown objects
        return f"@{self.key}"

    __repr__ = __str__


def as_record(value, where: str = "record") -> Record:
    """One Record of a Record, a RecordRef or a record dict (strictly parsed)."""
    if isinstance(value, RecordRef):
        value = value.record
    return value if isinstance(value, Record) else Record.from_dict(value, where)


def as_records(values, where: str = "records") -> list[Record]:
    """Records of an aggregation's inputs (Records, RecordRefs or record dicts)."""
    return [as_record(v, f"{where}[{i}]") for i, v in enumerate(values)]
