"""Python judging API: a Flex-Judge checkpoint as a batched judge object.

    from flex_judge.judging.api import Judge
    judge = Judge.from_pretrained("jongwooko/Flex-VL-7B", backend="vllm")
    v = judge.compare("What is in the image?", "A cat.", "A dog.", images=["cat.jpg"])
    v.winner, v.scores, v.reasoning, v.ok

One place per concept: prompts are the flex tasks' protocol templates (flex_tasks.protocol /
prompts / media), outputs are parsed into the same per-(item, run) records the lmms-eval
tasks log (flex_tasks.record.Record, built by flex_tasks.lmms.make_record), and rendering,
media decoding, sampling settings and the vLLM / transformers backends are those of the
`flex` lmms-eval model (flex_models.model.FlexJudge).
So for the same inputs and seeds the API and an lmms-eval run of the `flex` model give the same
text and the same verdict. Each call's requests go to the engine in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from flex_models.errors import FlexJudgeError
from flex_tasks import benchmarks, parsing, prompts
from flex_tasks import media as task_media
from flex_tasks.lmms import make_record
from flex_tasks.protocol import TASKS, TaskSpec
from flex_tasks.record import Record

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg"}
# What each verb accepts (task names; the "flex_" prefix may be left out), as the benchmark
# modules declare it (flex_tasks.benchmarks: Benchmark.api); the first is the verb's default.
COMPARE_TASKS = benchmarks.api_tasks("compare")  # two text responses
COMPARE_MEDIA_TASKS = benchmarks.api_tasks("compare_media")  # two images / videos
SCORE_TASKS = benchmarks.api_tasks("score")
RANK_TASKS = benchmarks.api_tasks("rank")


class JudgeInputError(FlexJudgeError, ValueError):
    """Inputs that do not fit the chosen protocol (media count, unknown protocol, ...)."""


@dataclass
class Verdict:
    task: str
    text: str  # the judge's raw output, reasoning included
    ok: bool  # the output held a parsable answer (else the protocol's fallback is in `value`)
    how: str  # "answer" | "fallback" | a fallback rule's name
    value: Any  # the parsed value as the lmms-eval task records it ("pred")
    reasoning: str = ""  # inside <think>...</think>, else the text before the first <answer>
    scores: list = field(default_factory=list)  # every <answer>N</answer> number, in order
    winner: Optional[str] = None  # compare: "A" | "B" | "tie" | "both_bad"; None when unparsed
    score: Optional[float] = None  # score: the parsed score (None when unparsed)
    ranking: Optional[str] = None  # rank: letters best first, e.g. "BCA"
    record: Optional[Record] = None  # the per-(item, run) record the lmms-eval tasks log (flex_tasks.record)


@dataclass
class JudgeRequest:
    spec: TaskSpec
    doc: dict
    messages: list
    gen_kwargs: dict = field(default_factory=dict)  # per-request overrides (over the judge's)


def task_name(protocol: str, allowed: Sequence[str]) -> str:
    name = protocol if protocol.startswith("flex_") else f"flex_{protocol}"
    name = benchmarks.aliases().get(name, name)  # a benchmark's short names (Benchmark.aliases)
    if name not in allowed:
        short = ", ".join(a.removeprefix("flex_") for a in allowed)
        raise JudgeInputError(f"protocol {protocol!r} is not available here; allowed: {short}")
    return name


def _kind(value) -> str:
    if isinstance(value, dict) and "array" in value:
        return "audio"
    if isinstance(value, (str, Path)):
        suffix = Path(str(value)).suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return "video"
        if suffix in AUDIO_SUFFIXES:
            return "audio"
    return "image"


def _load(spec: TaskSpec, value, where: str) -> tuple[str, Any]:
    """(kind, value ready for the chat message): images resized per protocol, audio at 16 kHz,
    videos as paths (frames are sampled by the model, with the protocol's fps hints). A path
    that does not exist is a JudgeInputError naming it."""
    kind = _kind(value)
    if isinstance(value, (str, Path)) and not Path(value).expanduser().is_file():
        raise JudgeInputError(f"{where}: {kind} file not found: {str(value)!r}")
    if kind == "image":
        return kind, task_media.load_image(str(value) if isinstance(value, Path) else value, spec.image_size, where)
    if kind == "audio":
        return kind, value if isinstance(value, dict) else task_media.load_audio(str(value), where)
    return kind, str(value)


def as_list(value, name: str) -> list:
    """A list argument given as a list/tuple; one path, string or image alone is an error (a
    string would otherwise be read character by character)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise JudgeInputError(f"{name} must be a list (e.g. [{value!r:.60}]), got {type(value).__name__} {value!r:.60}")


def build_messages(spec: TaskSpec, doc: dict, media: Sequence) -> list:
    """The protocol's chat messages for ``doc`` with the user's media in the template's media
    slots. No media: the slots are dropped (text-only judging). Templates with one slot take
    any number of media there; templates with several need exactly that many."""
    try:
        parts = prompts.fill_slots(prompts.user_parts(spec, doc), [_kind(m) for m in media])
    except prompts.SlotError as e:
        raise JudgeInputError(f"{spec.task}: the protocol template has {e.slots} media slots, got {e.media} media") from None
    loaded = [_load(spec, m, f"{spec.task} media {i}") for i, m in enumerate(media)]
    content = prompts.interleave(parts, [v for _, v in loaded])
    return [{"role": "system", "content": [{"type": "text", "text": spec.system}]},
            {"role": "user", "content": content}]


class Judge:
    """A Flex-Judge checkpoint behind the `flex` lmms-eval model's own machinery."""

    def __init__(self, model, gen_kwargs: Optional[dict] = None):
        self.model = model  # flex_models.model.FlexJudge
        self.gen_kwargs = dict(gen_kwargs or {})

    @classmethod
    def from_pretrained(cls, path, backend: str = "vllm", gen_kwargs: Optional[dict] = None, **model_args) -> "Judge":
        """Build from a checkpoint (hub id or folder). ``model_args`` are the `flex` model's
        (flex_models.args.FlexArgs: dtype, max_new_tokens, seed, kv_cache_memory_bytes, ...).
        ``gen_kwargs`` override the protocol's sampling settings for every request."""
        from flex_models.model import FlexJudge

        return cls(FlexJudge(pretrained=str(path), backend=backend, **model_args), gen_kwargs)

    # ------------------------------------------------------------ requests
    def request(self, task: str, fields: dict, media: Sequence = (), *, run: int = 0, swap: bool = False,
                gen_kwargs: Optional[dict] = None) -> JudgeRequest:
        """One request of flex task ``task``: ``fields`` fill the protocol template, ``media``
        its media slots; run k samples with the protocol's seed for run k."""
        spec = TASKS[task]
        doc = dict(fields, flex_task=task, flex_item=fields.get("flex_item", "api"), flex_run=run,
                   flex_seed=spec.seed(run), flex_swap=swap, gold=None)
        if spec.video:
            doc["flex_video"] = dict(spec.video)
        return JudgeRequest(spec, doc, build_messages(spec, doc, as_list(media, "media")), dict(gen_kwargs or {}))

    def compare_request(self, question: str, response_a: str, response_b: str, images: Sequence = (), *,
                        protocol: Optional[str] = None, run: int = 0, gen_kwargs: Optional[dict] = None) -> JudgeRequest:
        task = task_name(protocol or COMPARE_TASKS[0], COMPARE_TASKS)
        fields = benchmarks.of(TASKS[task]).compare_fields(question, response_a, response_b)
        return self.request(task, fields, as_list(images, "images"), run=run, gen_kwargs=gen_kwargs)

    def compare_media_request(self, prompt: str, a, b, *, protocol: Optional[str] = None, run: int = 0,
                              swap: bool = False, gen_kwargs: Optional[dict] = None) -> JudgeRequest:
        """``swap`` shows b first (MJ-Bench's odd runs); the verdict is mapped back, so
        winner "A" always means ``a``."""
        task = task_name(protocol or COMPARE_MEDIA_TASKS[0], COMPARE_MEDIA_TASKS)
        return self.request(task, {"caption": prompt, "prompt": prompt}, [b, a] if swap else [a, b], run=run, swap=swap,
                            gen_kwargs=gen_kwargs)

    def score_request(self, question: str = "", response: str = "", media: Sequence = (), *,
                      protocol: Optional[str] = None, run: int = 0, gen_kwargs: Optional[dict] = None) -> JudgeRequest:
        task = task_name(protocol or SCORE_TASKS[0], SCORE_TASKS)
        return self.request(task, {"instruction": question, "answer": response}, as_list(media, "media"), run=run,
                            gen_kwargs=gen_kwargs)

    def rank_request(self, question: str, responses: Sequence[str], images: Sequence = (), *, run: int = 0,
                     gen_kwargs: Optional[dict] = None) -> JudgeRequest:
        responses = as_list(responses, "responses")
        if len(responses) < 2:
            raise JudgeInputError(f"rank needs at least two responses, got {len(responses)}")
        return self.request(RANK_TASKS[0], {"instruction": question, "answers": responses}, as_list(images, "images"),
                            run=run, gen_kwargs=gen_kwargs)

    # ------------------------------------------------------------ generation
    def run(self, requests: Sequence[JudgeRequest], progress: bool = False) -> list[Verdict]:
        """Generate every request in one engine batch and parse each output."""
        prepared = []
        for i, r in enumerate(requests):
            gk = {**r.spec.generation_kwargs(), **self.gen_kwargs, **r.gen_kwargs}
            prepared.append(self.model.prepare(r.messages, where=f"api request {i} ({r.spec.task})", doc=r.doc,
                                               gen_kwargs=gk))
        outputs = self.model.generate_prepared(prepared, progress=progress)
        return [self._verdict(r, o.texts[0]) for r, o in zip(requests, outputs)]

    def _verdict(self, r: JudgeRequest, text: str) -> Verdict:
        rec = make_record(r.spec, r.doc, text)
        v = Verdict(task=r.spec.task, text=text, ok=rec.ok, how=rec.how, value=rec.pred,
                    reasoning=parsing.reasoning_of(text), scores=parsing.answer_floats(text), record=rec)
        parser = benchmarks.parser_of(r.spec)  # what the value is: the benchmark module says
        if parser.kind == "verdict":
            v.winner = parser.winner.get(rec.pred) if rec.ok else None
        elif parser.kind == "ranking":
            v.ranking = rec.pred if rec.ok else None
        else:
            v.score = float(rec.pred) if rec.ok else None
        return v

    # ------------------------------------------------------------ one-call verbs
    def compare(self, question: str, response_a: str, response_b: str, images: Sequence = (), **kw) -> Verdict:
        """Pairwise judgement of two text responses (VL-RewardBench or MLLM-as-a-Judge pair protocol)."""
        return self.run([self.compare_request(question, response_a, response_b, images, **kw)])[0]

    def compare_media(self, prompt: str, a, b, **kw) -> Verdict:
        """Which of two generated images / videos fits ``prompt`` better (MJ-Bench / GenAI-Bench)."""
        return self.run([self.compare_media_request(prompt, a, b, **kw)])[0]

    def score(self, question: str = "", response: str = "", media: Sequence = (), **kw) -> Verdict:
        """Single-answer score (MLLM-as-a-Judge 1-5) or audio quality (``protocol`` one of SCORE_TASKS)."""
        return self.run([self.score_request(question, response, media, **kw)])[0]

    def rank(self, question: str, responses: Sequence[str], images: Sequence = (), **kw) -> Verdict:
        """Batch ranking of several responses (MLLM-as-a-Judge batch): ``ranking`` = letters, best first."""
        return self.run([self.rank_request(question, responses, images, **kw)])[0]

    def compare_many(self, rows: Sequence[dict]) -> list[Verdict]:
        return self.run([self.compare_request(**r) for r in rows])

    def compare_media_many(self, rows: Sequence[dict]) -> list[Verdict]:
        return self.run([self.compare_media_request(**r) for r in rows])

    def score_many(self, rows: Sequence[dict]) -> list[Verdict]:
        return self.run([self.score_request(**r) for r in rows])

    def rank_many(self, rows: Sequence[dict]) -> list[Verdict]:
        return self.run([self.rank_request(**r) for r in rows])
