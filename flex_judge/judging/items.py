"""One user item of `flex-judge judge`: row -> requests -> one judged record; records -> summary.

Modes and the protocol each one reuses (prompt, sampling, parser: flex_tasks.protocol):
  pair   question + two responses      MLLM-as-a-Judge pair  (or VL-RewardBench)  verdict "A" | "B" | "tie"
  score  question + one response       MLLM-as-a-Judge score (or NISQA/BVCC/SOMOS) verdict = mean score
  batch  question + 2..26 responses    MLLM-as-a-Judge batch                      verdict = ranking "BCA"
Each of the N samples is one request with the protocol's seed for run k (the paper's runs);
with both orders every sample is also asked with the responses reversed, and the verdict is
mapped back to the row's order. Unparsed samples never vote; an item none of whose samples
parsed gets verdict None and counts as a parse failure.
"""
from __future__ import annotations

import dataclasses
import hashlib
import string
from pathlib import Path
from typing import Any, Optional

from flex_judge.judging.api import (
    COMPARE_TASKS,
    RANK_TASKS,
    SCORE_TASKS,
    Judge,
    JudgeInputError,
    JudgeRequest,
    _kind,
    _load,
    task_name,
)
from flex_models.errors import FlexJudgeError
from flex_tasks import benchmarks, metrics, parsing, prompts
from flex_tasks.protocol import TASKS, TaskSpec

MODES = benchmarks.JUDGE_MODES
# mode -> the task it uses unless --pair-protocol / --score-protocol say otherwise (the benchmark
# modules declare it: Benchmark.judge_defaults)
DEFAULT_PROTOCOL = benchmarks.judge_defaults()
MEDIA_KEYS = ("images", "videos", "audios")
_FLIP = {"A": "B", "B": "A", "tie": "tie", None: None}
_GOLD_PAIR = {"a": "A", "b": "B", "tie": "tie", "c": "tie", "1": "A", "2": "B"}


class RowError(FlexJudgeError, ValueError):
    """A row that cannot be judged; the message names what is wrong (the caller adds the line)."""


@dataclasses.dataclass(frozen=True)
class Template:
    """A user prompt template: ``system`` + ``user`` with {question}, {response}, {response_a},
    {response_b}, {responses} (numbered answer blocks) or any string field of the row, and
    optionally the protocol's media placeholder(s); ``mode`` limits it to one mode."""
    system: str
    user: str
    mode: Optional[str] = None

    @classmethod
    def load(cls, path: Path) -> "Template":
        import yaml

        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"--template {path}: cannot read ({e})") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("user"), str):
            raise ValueError(f"--template {path}: expected a JSON/YAML object with a 'user' string (and 'system')")
        extra = set(raw) - {"system", "user", "mode"}
        if extra or raw.get("mode") not in (None, *MODES):
            raise ValueError(f"--template {path}: allowed keys system, user, mode ({'|'.join(MODES)}); got {sorted(raw)}")
        return cls(system=str(raw.get("system") or ""), user=raw["user"], mode=raw.get("mode"))

    def digest(self) -> str:
        return hashlib.sha256(f"{self.mode}\0{self.system}\0{self.user}".encode()).hexdigest()[:12]


@dataclasses.dataclass
class Settings:
    samples: Optional[int] = None  # None: the protocol's run count
    both_orders: bool = False
    protocols: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_PROTOCOL))
    template: Optional[Template] = None

    def n_samples(self, spec: TaskSpec) -> int:
        return self.samples or spec.runs

    def fingerprint(self) -> dict:
        """What a resumed output must have been written with."""
        return {"samples": self.samples, "both_orders": self.both_orders, "protocols": dict(self.protocols),
                "template": self.template.digest() if self.template else None}


def protocol_for(mode: str, name: str) -> str:
    allowed = {"pair": COMPARE_TASKS, "score": SCORE_TASKS, "batch": RANK_TASKS}[mode]
    return task_name(name, allowed)


# ------------------------------------------------------------------ rows
def _text(row: dict, key: str) -> str:
    v = row.get(key)
    if not isinstance(v, str):
        raise RowError(f"field {key!r} must be a string, got {type(v).__name__}")
    return v


def row_mode(row: dict, default: str) -> str:
    mode = row.get("mode", default)
    if mode == "auto":
        mode = "pair" if "response_a" in row else "score" if "response" in row else "batch" if "responses" in row else None
        if mode is None:
            raise RowError("cannot tell the mode: give 'response' (score), 'response_a' + 'response_b' (pair) "
                           "or 'responses' (batch), or a 'mode' field")
    if mode not in MODES:
        raise RowError(f"mode {mode!r}; allowed: {', '.join(MODES)}")
    return mode


def row_responses(row: dict, mode: str) -> list[str]:
    if mode == "score":  # the audio-quality protocols judge media alone: no response needed
        return [_text(row, "response") if "response" in row else ""]
    if mode == "pair" and "response_a" in row:
        return [_text(row, "response_a"), _text(row, "response_b")]
    rs = row.get("responses")
    if not isinstance(rs, list) or not all(isinstance(r, str) for r in rs):
        raise RowError(f"{mode} needs " + ("'response_a' and 'response_b' or " if mode == "pair" else "")
                       + "'responses' as a list of strings")
    want = "exactly 2" if mode == "pair" else f"2 to {len(string.ascii_uppercase)}"
    if (mode == "pair" and len(rs) != 2) or not 2 <= len(rs) <= len(string.ascii_uppercase):
        raise RowError(f"{mode} needs {want} responses, got {len(rs)}")
    return list(rs)


def row_media(row: dict, folder: Path) -> list[str]:
    """Media paths (images, then videos, then audios), relative to the JSONL's folder; a missing file is named."""
    out = []
    for key in MEDIA_KEYS:
        v = row.get(key) or []
        for p in [v] if isinstance(v, str) else v:
            if not isinstance(p, str):
                raise RowError(f"{key} must hold file paths, got {type(p).__name__}")
            path = (folder / p).expanduser()
            if not path.is_file():
                raise RowError(f"{key[:-1]} file not found: {path}")
            out.append(str(path.resolve()))
    return out


def parse_gold(mode: str, gold: Any, n: int) -> Any:
    if gold is None:
        return None
    if mode == "pair":
        g = _GOLD_PAIR.get(str(gold).strip().lower())
        if g is None:
            raise RowError(f"gold {gold!r} for a pair: allowed A, B, tie (or C)")
        return g
    if mode == "score":
        try:
            return float(gold)
        except (TypeError, ValueError):
            raise RowError(f"gold {gold!r} for a score: expected a number") from None
    g = str(gold).strip().upper()
    if sorted(g) != sorted(string.ascii_uppercase[:n]):
        raise RowError(f"gold {gold!r} for a batch of {n}: expected a ranking of the letters {string.ascii_uppercase[:n]}")
    return g


# ------------------------------------------------------------------ requests
def _blocks(responses: list[str]) -> str:
    return "\n\n".join(f"[Assistant {i + 1}'s Answer]\n{r}" for i, r in enumerate(responses))


def template_request(t: Template, spec: TaskSpec, row: dict, question: str, responses: list[str], media: list,
                     mode: str) -> JudgeRequest:
    fields = {k: v for k, v in row.items() if isinstance(v, str)}
    fields.update(question=question, responses=_blocks(responses))
    if mode == "score":
        fields["response"] = responses[0]
    else:
        fields.update(response_a=responses[0], response_b=responses[1])
    try:
        parts = prompts.template_parts(t.user, fields)
    except KeyError as e:
        raise RowError(f"template field {e} is not in the row") from None
    try:  # no placeholder: media first, as the protocols place them
        parts = prompts.fill_slots(parts, [_kind(m) for m in media], when_no_slot="prepend", when_no_media="count")
    except prompts.SlotError as e:
        raise RowError(f"the template has {e.slots} media slots, the row {e.media} media") from None
    loaded = [_load(spec, m, f"template {mode} request, media {i}") for i, m in enumerate(media)]
    spec = dataclasses.replace(spec, system=t.system, user=t.user)
    doc = {"flex_task": spec.task, "flex_item": "template", "flex_run": 0, "flex_seed": spec.seed(0),
           "flex_swap": False, "gold": None, "answers": responses}
    messages = [{"role": "system", "content": [{"type": "text", "text": t.system}]},
                {"role": "user", "content": prompts.interleave(parts, [v for _, v in loaded])}]
    return JudgeRequest(spec, doc, messages)


def item_requests(judge: Judge, s: Settings, mode: str, row: dict, media: list) -> list[tuple[bool, JudgeRequest]]:
    """[(reversed order?, request)] for every sample; media errors surface here, per row."""
    task = s.protocols[mode]
    question = row.get("question", "")
    if not isinstance(question, str):
        raise RowError("field 'question' must be a string")
    responses = row_responses(row, mode)
    orders = [False, True] if s.both_orders and mode != "score" else [False]
    out = []
    for rev in orders:
        shown = responses[::-1] if rev else responses
        try:
            if s.template and s.template.mode in (None, mode):
                base = template_request(s.template, TASKS[task], row, question, shown, media, mode)
            elif mode == "pair":
                base = judge.compare_request(question, shown[0], shown[1], media, protocol=task)
            elif mode == "score":
                base = judge.score_request(question, shown[0], media, protocol=task)
            else:
                base = judge.rank_request(question, shown, media)
        except (JudgeInputError, OSError, ValueError) as e:
            raise RowError(str(e)) from None
        for k in range(s.n_samples(base.spec)):
            out.append((rev, dataclasses.replace(base, doc={**base.doc, "flex_run": k, "flex_seed": base.spec.seed(k)})))
    return out


# ------------------------------------------------------------------ aggregation
def _unflip(mode: str, rev: bool, v):
    """A sample's verdict in the row's order."""
    if not rev:
        return v
    if mode == "pair":
        return _FLIP.get(v, v)
    return list(v)[::-1]  # batch: per-response scores


def _vote(mode: str, votes: list):
    if not votes:
        return None
    if mode == "pair":
        s = sum({"A": -1, "B": 1}.get(v, 0) for v in votes)  # the MLLM-as-a-Judge sign majority
        return "A" if s < 0 else "B" if s > 0 else "tie"
    if mode == "score":
        return sum(votes) / len(votes)
    n = len(votes[0])
    means = [sum(v[i] for v in votes) / len(votes) for i in range(n)]
    letters = string.ascii_uppercase[:n]
    return "".join(c for _, c in sorted(zip(means, letters), reverse=True))  # the protocol's tie order


def record(mode: str, row_id: str, line: int, gold, samples: list[tuple[bool, Any]], settings: Settings,
           n_responses: int) -> dict:
    """One output record from the item's [(reversed?, Verdict)]."""
    votes = {False: [], True: []}
    out_samples = []
    for rev, v in samples:
        if mode == "pair":
            value = v.winner
        elif mode == "score":
            value = v.score
        else:  # batch: the integers the protocol's parser ranked, one per response
            value = parsing.answer_ints(v.text)[:n_responses] if v.ok else None
        if v.ok and value is not None:
            votes[rev].append(_unflip(mode, rev, value))
        out_samples.append({"order": "reversed" if rev else "given", "run": v.record.run, "ok": v.ok,
                            "how": v.how, "verdict": _unflip(mode, rev, value) if v.ok else None,
                            "reasoning": v.reasoning, "text": v.text})
    verdict = _vote(mode, votes[False] + votes[True])
    n_ok = sum(s["ok"] for s in out_samples)
    first_ok = next((s for s in out_samples if s["ok"]), None)
    rec = {"id": row_id, "line": line, "mode": mode, "protocol": settings.protocols[mode], "verdict": verdict,
           "parse_ok": verdict is not None, "n_samples": len(out_samples), "n_parsed": n_ok,
           "reasoning": first_ok["reasoning"] if first_ok else "", "gold": gold, "settings": settings.fingerprint()}
    if settings.both_orders and mode != "score":
        a, b = _vote(mode, votes[False]), _vote(mode, votes[True])
        rec["verdict_given_order"], rec["verdict_reversed_order"] = a, b
        rec["position_consistent"] = (a == b) if a is not None and b is not None else None
    rec["samples"] = out_samples
    return rec


# ------------------------------------------------------------------ summary
def _mean(xs) -> Optional[float]:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def summarize(records: list[dict]) -> dict:
    """Per mode: items, parse failures, agreement with gold, position consistency."""
    out = {}
    for mode in MODES:
        rs = [r for r in records if r["mode"] == mode]
        if not rs:
            continue
        n_s = sum(r["n_samples"] for r in rs)
        m = {"items": len(rs), "samples": n_s,
             "sample_parse_failure_rate": (n_s - sum(r["n_parsed"] for r in rs)) / n_s if n_s else None,
             "item_parse_failures": sum(not r["parse_ok"] for r in rs)}
        gold = [r for r in rs if r["gold"] is not None]
        m["with_gold"] = len(gold)
        if gold and mode == "pair":
            m["agreement"] = _mean(r["verdict"] == r["gold"] for r in gold)  # unparsed items count as wrong
            no_tie = [r for r in gold if r["gold"] != "tie"]
            m["agreement_wo_tie"] = _mean(r["verdict"] == r["gold"] for r in no_tie)
        elif gold and mode == "score":
            ok = [r for r in gold if r["verdict"] is not None]
            pred, g = [r["verdict"] for r in ok], [r["gold"] for r in ok]
            m["scored_with_gold"] = len(ok)
            m["pearson"] = metrics.pearson(pred, g) if len(ok) > 1 else None
            m["spearman"] = metrics.spearman(pred, g) if len(ok) > 1 else None
            m["mae"] = _mean(abs(p - q) for p, q in zip(pred, g))
        elif gold:
            m["exact_match"] = _mean(r["verdict"] == r["gold"] for r in gold)
            m["norm_levenshtein"] = _mean(metrics.norm_levenshtein(r["verdict"] or "", r["gold"]) for r in gold)
        both = [r["position_consistent"] for r in rs if r.get("position_consistent") is not None]
        if any("position_consistent" in r for r in rs):
            m["position_consistency"] = _mean(both)
            m["position_checked"] = len(both)
        out[mode] = m
    return out
