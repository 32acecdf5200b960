"""The per-(item, run) record: one judge output, parsed, with everything needed to score,
compare and audit it. Built once per doc by :func:`flex_tasks.lmms.make_record`; read by the
reports (as plain dicts), ``flex-judge compare`` (from the samples file) and the Python API.

In lmms-eval's samples file each line holds the record once, under the task's first metric
(``TaskSpec.metric_names()[0]``); the other metrics of the line hold a short reference to it
(:class:`RecordRef`, written as ``"@<first metric>"``). lmms-eval hands every metric's
aggregation its own list of those values; :func:`as_dicts` turns either kind back into the
record.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

# item fields that group items in a benchmark's report (VL-RewardBench category, MLLM-as-a-Judge
# original dataset, NISQA test set, BVCC / SOMOS system and its MOS)
GROUP_KEYS = ("category", "dataset", "set", "system", "system_gt")


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
    group: dict = field(default_factory=dict)  # the GROUP_KEYS the item has
    data_id: Optional[str] = None  # the data's own id (may repeat across items)

    def as_dict(self) -> dict:
        """Flat JSON-ready dict: the fields, with ``group``'s keys at the top level."""
        d = asdict(self)
        d.update(d.pop("group"))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        names = set(cls.__dataclass_fields__) - {"group"}
        return cls(**{k: d.get(k) for k in names if k in d},
                   group={k: d[k] for k in GROUP_KEYS if k in d})


class RecordRef:
    """The record of a sample line, referred to from its other metrics (written short)."""

    __slots__ = ("record", "key")

    def __init__(self, record: dict, key: str):
        self.record = record
        self.key = key

    def __str__(self) -> str:  # lmms-eval's JSON fallback for unknown objects
        return f"@{self.key}"

    __repr__ = __str__


def as_dicts(values) -> list[dict]:
    """Record dicts of an aggregation's inputs (record dicts, RecordRefs or Records)."""
    out = []
    for v in values:
        if isinstance(v, RecordRef):
            v = v.record
        elif isinstance(v, Record):
            v = v.as_dict()
        out.append(v)
    return out
