"""One module per benchmark: what differs between the judge benchmarks, and only that. Every
other part of the project (the protocol table, the YAML generator, the CLI, the judging API,
`flex-judge judge`, compare, the leaderboard, the demo) asks this registry; no benchmark or
task name is written anywhere else (tests/test_benchmark_registry.py greps for them).

Each module defines ``BENCHMARK``, a :class:`Benchmark` named by its ``protocols.json`` key:
its tasks (``tasks``: protocols.json -> TaskSpecs, with names, variants, run counts, order
swaps, parser, scale, metrics, data settings), its lmms-eval groups, its parsers
(:class:`Parser`: function, kind of verdict, labels, how many ``<answer>`` tags), the
judging-API verbs its tasks serve and the `flex-judge judge` modes they are the default of,
its leaderboard section(s) (:class:`Section` of :class:`Column`; the paper's rows are read from
``protocols.json`` ``paper_results_v4`` under the section's key), how its data files / hub rows
become items (``load``, with the shared readers and checks of
``flex_tasks.data``), its folder of bundled fixtures and how they are written (``write_fixtures``,
run by ``python -m flex_tasks.make_fixtures``), the template fields of a doc (with the
presentation order applied), the order its media are shown in, its user-message layout when the
protocol's single template is not enough, how an output is parsed back into the ORIGINAL order,
its report (records -> corpus metrics, with the shared machinery of ``flex_tasks.reports``) and
its text-only demo training example (``demo_example``, run by ``python -m trainer.make_demo_data``)
and, for pairwise text benchmarks, the doc of an API compare request (``compare_fields``).
Everything else is shared (``flex_tasks.protocol`` TaskSpec: prompts, sampling, runs,
metric names). The modules with a leading underscore are shared helpers, not benchmarks.
Adding a benchmark = a module here + its entry in ``_MODULES`` and ``SUITES`` + its
protocols.json entry + the regenerated YAML (``python -m yaml_tasks.generate``) and fixtures
(``python -m flex_tasks.make_fixtures``); tests/test_benchmark_registry.py fails while any
part is missing.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Optional

from flex_tasks import parsing
from flex_tasks.parsing import Parsed
from flex_tasks.record import as_records

# What a task's parsed value is: a pairwise / multi-way verdict label, a score, or a ranking.
KINDS = ("verdict", "score", "ranking")
# Judging-API verbs (flex_judge.judging.api.Judge) and `flex-judge judge` modes.
API_VERBS = ("compare", "compare_media", "score", "rank")
JUDGE_MODES = ("pair", "score", "batch")


@dataclass(frozen=True)
class Parser:
    """A parse rule: ``fn(text, ...) -> Parsed``, what its value is (``kind``), how many
    ``<answer>`` tags it reads (``tags``: 1, 2 or "per_answer"; `flex-judge demo` says why an
    output did not parse from it), the numbers it reads (``numbers``: checked against the
    task's scale) and, for verdicts, ``winner``: value -> the API's "A" | "B" | "tie" |
    "both_bad". ``headline`` names the form of the task's headline metric that `flex-judge
    compare`'s paired test recomputes on resampled items (flex_judge.analysis.compare.headline_stat):
    one of HEADLINE_FORMS."""
    fn: Callable
    kind: str
    tags: Any = 1
    numbers: Callable = parsing.answer_ints
    winner: Optional[dict] = None
    headline: str = "mos_pearson"


# The headline forms compare's paired test knows (what each computes: compare.headline_stat).
HEADLINE_FORMS = ("runwise_accuracy", "mos_pearson", "dataset_majority_accuracy", "dataset_median_pearson",
                  "dataset_worst_levenshtein")


ANSWER_FLOAT = Parser(parsing.answer_float, "score", 1, numbers=parsing.answer_floats)


@dataclass(frozen=True)
class Column:
    name: str  # the paper's column name (paper_results_v4 "columns")
    task: str
    metric: str
    second: Optional[str] = None  # audio cells hold (LCC, SRCC)
    # the metric computed the way the paper's numbers were (used when paper rows are printed)
    as_released: Optional[str] = None


@dataclass(frozen=True)
class Section:
    """A leaderboard table. Benchmarks that share a table (the audio corpora) each declare it
    with their own columns; the registry joins them in suite order. A key that is not in
    ``paper_results_v4`` has no paper rows (say so in the title: "not in the paper")."""
    key: str  # paper_results_v4 key
    title: str
    columns: tuple[Column, ...]
    scale: float = 1.0  # the paper prints accuracies in percent
    mean_column: Optional[str] = None  # a column that is the mean of the others (an overall)
    majority: bool = False  # also a '<row>_majority' line (acc_majority)


def no_tasks(P: dict) -> list:
    raise NotImplementedError("flex_tasks.benchmarks: a benchmark declares its tasks")


def no_fields(spec, doc) -> dict:
    return {}


def shown_order(spec, doc, refs: list) -> list:
    return refs


def parse_with_protocol_parser(spec, doc, text: str) -> Parsed:
    """The task's parser; protocols with a fallback value (audio MOS) pass it."""
    fn = parser_of(spec).fn
    return fn(text) if spec.parser_default is None else fn(text, spec.parser_default)


def no_loader(spec, source) -> list:
    raise NotImplementedError(f"flex_tasks.benchmarks: no loader for {spec.bench!r}")


def no_report(spec, records, **kwargs) -> dict:
    raise NotImplementedError(f"flex_tasks.benchmarks: no report for {spec.bench!r}")


def no_fixtures(root) -> None:
    raise NotImplementedError(f"flex_tasks.benchmarks: no fixture writer for {root}")


def no_demo_example(rng, spec) -> tuple:
    raise NotImplementedError(f"flex_tasks.benchmarks: no demo example for {spec.bench!r}")


@dataclass(frozen=True)
class Benchmark:
    name: str  # key in protocols.json (TaskSpec.bench)
    tasks: Callable = no_tasks  # (protocols.json as a dict) -> [TaskSpec], in the order they are listed
    parsers: dict = field(default_factory=dict)  # TaskSpec.parser name -> Parser
    groups: dict = field(default_factory=dict)  # lmms-eval group -> its member tasks
    group_aggregates: dict = field(default_factory=dict)  # group -> metrics lmms-eval averages over members
    leaderboard: tuple = ()  # its Section(s)
    api: dict = field(default_factory=dict)  # API verb -> the tasks it may use (the first is the verb's default)
    aliases: dict = field(default_factory=dict)  # other spellings of a task name -> the task (API `protocol=`)
    judge_defaults: dict = field(default_factory=dict)  # `flex-judge judge` mode -> the task used by default
    in_paper: bool = True  # False: a benchmark the Flex-Judge paper does not report (no paper rows, not in flex_all)
    load: Callable = no_loader  # (spec, source folder or data.HUB) -> items (flex_tasks.data.load_items)
    fixtures: str = ""  # folder under flex_tasks/fixtures/ (default: name)
    fields: Callable = no_fields  # (spec, doc) -> template fields, presentation order applied
    media_order: Callable = shown_order  # (spec, doc, media refs in data order) -> refs as shown
    parse: Callable = parse_with_protocol_parser  # (spec, doc, text) -> Parsed, value in ORIGINAL order
    user_parts: Optional[Callable] = None  # (spec, doc) -> [(kind, text)] when spec.user is not enough
    report: Callable = no_report  # (spec, [Record], *, iters, seed) -> flat dict of metrics + protocol.DETAIL_KEYS
    write_fixtures: Callable = no_fixtures  # (folder) -> writes the bundled mini copy in the real layout
    demo_example: Callable = no_demo_example  # (random.Random, spec) -> (doc, media descriptions, reasoning, answer tags)
    compare_fields: Optional[Callable] = None  # (question, response_a, response_b) -> doc fields (flex_judge.judging.api compare_request)

    def __post_init__(self):
        if not self.fixtures:
            object.__setattr__(self, "fixtures", self.name)
        if self.report is not no_report:
            object.__setattr__(self, "report", _typed_report(self.report))


def _typed_report(fn: Callable) -> Callable:
    """A report hook that takes records as Records, RecordRefs or record dicts (parsed strictly
    once, flex_tasks.record.as_records): the module's own function only ever sees Records."""
    @functools.wraps(fn)
    def report(spec, records, **kwargs):
        return fn(spec, as_records(records, f"{spec.task} records"), **kwargs)

    return report


# protocols.json key -> module of this package (registry order: the order of flex_tasks.protocol.TASKS)
_MODULES = {
    "vl_rewardbench": "vl_rewardbench", "mj_bench": "mj_bench", "genai_bench": "genai_bench",
    "mllm_as_a_judge": "mllm_as_a_judge", "nisqa": "nisqa", "bvcc": "bvcc", "somos": "somos", "voxsim": "voxsim",
    "multimodal_rewardbench": "multimodal_rewardbench",
}
# lmms-eval suites (groups of benchmarks) -> their benchmarks, in the order the suite lists them
# (and the leaderboard prints them); `flex_all` is every suite.
SUITES = {
    "flex_vision": ("mllm_as_a_judge", "vl_rewardbench", "mj_bench", "genai_bench"),
    "flex_audio": ("nisqa", "bvcc", "somos", "voxsim"),
    "flex_beyond_paper": ("multimodal_rewardbench",),  # benchmarks the paper does not report
}
ALL_SUITE = "flex_all"  # the paper's suites


@lru_cache(maxsize=None)
def get(bench: str) -> Benchmark:
    try:
        module = _MODULES[bench]
    except KeyError:
        raise KeyError(f"no benchmark module for {bench!r}; known: {', '.join(sorted(_MODULES))}") from None
    b = importlib.import_module(f"{__name__}.{module}").BENCHMARK
    if b.name != bench:
        raise RuntimeError(f"flex_tasks.benchmarks.{module} defines benchmark {b.name!r}, expected {bench!r}")
    return b


def of(spec) -> Benchmark:
    """The benchmark of a TaskSpec."""
    return get(spec.bench)


def registered() -> list[Benchmark]:
    """Every benchmark, in registry order."""
    return [get(bench) for bench in _MODULES]


def parsers() -> dict[str, Parser]:
    """Every parse rule by name (the TaskSpec.parser names)."""
    out: dict[str, Parser] = {}
    for b in registered():
        for name, p in b.parsers.items():
            if out.get(name, p) is not p:
                raise RuntimeError(f"parser {name!r} is declared twice, differently ({b.name})")
            out[name] = p
    return out


def parser_of(spec) -> Parser:
    try:
        return parsers()[spec.parser]
    except KeyError:
        raise KeyError(f"task {spec.task}: no benchmark declares parser {spec.parser!r}") from None


def out_of_scale(spec, text: str) -> bool:
    """Whether a number the task's parser read lies outside the protocol's scale
    (``TaskSpec.scale``, from protocols.json): e.g. a 6 on MLLM-as-a-Judge's 1-5 scale."""
    if spec.scale is None:
        return False
    p = parser_of(spec)
    nums = p.numbers(text)
    if p.tags != "per_answer":
        nums = nums[: int(p.tags)]
    lo, hi = spec.scale
    return any(not lo <= x <= hi for x in nums)


def parse(spec, doc, text: str) -> Parsed:
    """A doc's output parsed by its benchmark (value in the ORIGINAL order). A number outside the
    protocol's scale is a parse failure (``how="out_of_scale"``) with the protocol's fallback
    value, as when there is no answer at all."""
    b = of(spec)
    p = b.parse(spec, doc, text)
    if p.ok and out_of_scale(spec, text):
        return Parsed(b.parse(spec, doc, "").value, False, "out_of_scale")
    return p


def suite_members(suite: str) -> list[str]:
    """A suite's members: each benchmark's group (one per benchmark with groups) or its task."""
    out = []
    for name in SUITES[suite]:
        b = get(name)
        out += list(b.groups) if b.groups else [t.task for t in b.tasks(_protocols())]
    return out


def groups() -> dict[str, list[str]]:
    """Every lmms-eval group -> members: the benchmarks' own groups, the suites, `flex_all`."""
    out = {g: list(members) for b in registered() for g, members in b.groups.items()}
    out.update({suite: suite_members(suite) for suite in SUITES})
    out[ALL_SUITE] = paper_suites()
    return out


def paper_suites() -> list[str]:
    """The suites of the paper's benchmarks (the members of `flex_all`)."""
    return [s for s, names in SUITES.items() if all(get(n).in_paper for n in names)]


def demo_tasks() -> list:
    """The TaskSpecs the demo's format rows are made for (`python -m trainer.make_demo_data`):
    the paper's benchmarks' tasks, in registry order."""
    P = _protocols()
    return [spec for b in registered() if b.in_paper for spec in b.tasks(P)]


def group_aggregates() -> dict[str, tuple[str, ...]]:
    return {g: tuple(m) for b in registered() for g, m in b.group_aggregates.items()}


def leaderboard_sections() -> tuple[Section, ...]:
    """The leaderboard's tables in suite order; sections of one key are joined column-wise."""
    order = [name for suite in SUITES.values() for name in suite]
    order += [b.name for b in registered() if b.name not in order]
    joined: dict[str, Section] = {}
    for name in order:
        for sec in get(name).leaderboard:
            if sec.key in joined:
                first = joined[sec.key]
                if (first.title, first.scale) != (sec.title, sec.scale):
                    raise RuntimeError(f"leaderboard section {sec.key!r}: {name} declares another title or scale")
                sec = Section(first.key, first.title, first.columns + sec.columns, first.scale, first.mean_column,
                              first.majority)
            joined[sec.key] = sec
    return tuple(joined.values())


def api_tasks(verb: str) -> tuple[str, ...]:
    """The tasks a judging-API verb may use, in registry order."""
    if verb not in API_VERBS:
        raise KeyError(f"unknown API verb {verb!r}; known: {', '.join(API_VERBS)}")
    return tuple(t for b in registered() for t in b.api.get(verb, ()))


def aliases() -> dict[str, str]:
    return {a: t for b in registered() for a, t in b.aliases.items()}


def judge_defaults() -> dict[str, str]:
    """`flex-judge judge` mode -> its default task."""
    out = {}
    for b in registered():
        for mode, task in b.judge_defaults.items():
            if mode in out:
                raise RuntimeError(f"two benchmarks are the default of judge mode {mode!r}")
            out[mode] = task
    return {m: out[m] for m in JUDGE_MODES if m in out}


def all_tasks() -> list:
    """Every TaskSpec, in registry order."""
    P = _protocols()
    return [spec for b in registered() for spec in b.tasks(P)]


def _protocols() -> dict:
    from flex_tasks.protocol import protocols

    return protocols()
