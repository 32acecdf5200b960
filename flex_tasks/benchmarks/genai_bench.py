"""GenAI-Bench: a prompt (editing: source / target / instruction prompts) and two generated
images or videos, in the data's order; the verdict is an [[A>B]]-style vote."""
from pathlib import Path

import numpy as np

from flex_tasks import metrics as M
from flex_tasks.reports import NAN, bootstrap_ci, common_details, first_record, item_run_matrix, quiet, record_grid, runwise_mean
import re

from flex_tasks.benchmarks import Benchmark, Column, Parser, Section
from flex_tasks.parsing import Parsed
from flex_tasks.protocol import TaskSpec, sampling
from flex_tasks.benchmarks import _demo_text as dt
from flex_tasks.benchmarks import _fixture_media as fx
from flex_tasks.data import HUB, DataError, existing, load_hub_copy, require_columns, source_dataset, text_rows, within

_EDITING_FIELDS = ("source_prompt", "target_prompt", "instruct_prompt")


def fields(spec, doc) -> dict:
    if spec.variant == "image_edition":
        return {k: doc[k] for k in _EDITING_FIELDS}
    return {"prompt": doc["prompt"]}


VOTES = ("leftvote", "rightvote", "tievote", "bothbad_vote")
NONE = "none"
# the first <answer>[[...]]</answer> (the released script's pattern)
_BRACKET_ANSWER = re.compile(r"<answer>(\[\[.*?\]\])</answer>")


def genai_vote(text: str) -> Parsed:
    """GenAI-Bench: first ``<answer>[[...]]</answer>`` -> a vote_type; no match -> 'none'."""
    m = _BRACKET_ANSWER.search(text or "")
    if not m:
        return Parsed(NONE, False, "fallback")
    verdict = m.group(1)
    if verdict in ("[[A>B]]", "[[B<A]]"):
        return Parsed("leftvote", True)
    if verdict in ("[[A<B]]", "[[B>A]]"):
        return Parsed("rightvote", True)
    if verdict == "[[A=B=Good]]":
        return Parsed("tievote", True)
    return Parsed("bothbad_vote", True)




def load(spec, source) -> list[dict]:
    config = spec.variant
    # a local folder may hold only videos/ and leave the metadata to the hub
    meta = source
    if source != HUB and config == "video_generation":
        try:
            load_hub_copy(Path(source), config, spec.hub[2])
        except DataError:
            meta = HUB
    ds = source_dataset(spec, meta)
    where = f"{spec.task} ({meta})"
    media_cols = {"image_generation": ["left_image", "right_image"],
                  "image_edition": ["source_image", "left_output_image", "right_output_image"],
                  "video_generation": ["left_video", "right_video"]}[config]
    text_cols = ["source_prompt", "target_prompt", "instruct_prompt"] if config == "image_edition" else ["prompt"]
    require_columns(ds, text_cols + media_cols + ["vote_type"], where)
    read = text_cols + ["vote_type"] + (media_cols if config == "video_generation" else [])
    items = []
    for i, r in enumerate(text_rows(ds, read)):
        if r["vote_type"] not in VOTES:
            raise DataError(f"{where} row {i}: vote_type {r['vote_type']!r} not in {VOTES}")
        item = {"data_id": f"{config}-{i}", **{c: r[c] for c in text_cols}, "gold": r["vote_type"], "row": i}
        if config == "video_generation":
            if source == HUB:
                raise DataError(f"{spec.task}: videos are not in the hub parquet; set {spec.env} to a folder "
                                f"with videos/<file name of left_video/right_video>")
            item["media"] = [existing(within(source, Path(source) / "videos", Path(str(r[c])).name, where, i, spec.env),
                                          where, i, spec.env) for c in media_cols]
        else:
            item["media"] = [f"row:{c}" for c in media_cols]
        items.append(item)
    for it in items:
        it["source"] = meta
    return items



# ---------------------------------------------------------------- report
def accuracy_report(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    items, runs, grid = record_grid(records)
    correct = item_run_matrix(grid, lambda r: float(r.pred == r.gold))
    maj_correct = np.array(
        [float(M.majority_vote([r.pred for r in row if r is not None]) == first_record(row).gold) for row in grid]
    )

    def mean_acc(idx):
        return runwise_mean(correct, idx)

    def maj_acc(idx):
        return float(maj_correct[idx].mean()) if len(idx) else NAN

    all_idx = np.arange(len(items))
    out = {"acc_mean": mean_acc(all_idx), "acc_majority": maj_acc(all_idx)}
    out["acc_mean_ci95"] = bootstrap_ci(mean_acc, len(items), iters, seed)
    out["acc_majority_ci95"] = bootstrap_ci(maj_acc, len(items), iters, seed)
    out.update(common_details(records, items, runs, iters, seed))
    with quiet():
        out["breakdown"] = {"per_run_acc": [float(v) for v in np.nanmean(correct, axis=0)]}
    return out


def report(spec, records, **kwargs) -> dict:
    return accuracy_report(records, **kwargs)


# ---------------------------------------------------------------- bundled fixtures, demo rows
def write_fixtures(root: Path):
    """The hub repo's parquet per config (embedded images; videos as files under videos/)."""
    import datasets as d

    votes = ["leftvote", "rightvote", "tievote", "bothbad_vote"]
    img = {"image_generation": ["left_image", "right_image"],
           "image_edition": ["source_image", "left_output_image", "right_output_image"]}
    for c, (config, cols) in enumerate(img.items()):
        rows = []
        for n, v in enumerate(votes):
            row = {"left_model": "m1", "right_model": "m2", "vote_type": v, "tstamp": float(n), "judge": "arena"}
            row["prompt" if config == "image_generation" else "source_prompt"] = f"a red cube {n}"
            if config == "image_edition":
                row.update(target_prompt=f"a blue cube {n}", instruct_prompt=f"make the cube {n} blue")
            for k, col in enumerate(cols):
                row[col] = {"bytes": fx.png(400 + 50 * c + 5 * n + k), "path": None}
            rows.append(row)
        feats = d.Features({**{k: d.Value("string") for k in rows[0] if k not in cols and k != "tstamp"},
                            "tstamp": d.Value("float64"), **{col: d.Image() for col in cols}})
        fx.parquet(rows, feats, root / config / "test_v1-00000-of-00001.parquet")
    rows = []
    for n, v in enumerate(votes[:3]):
        left, right = f"clip_{n}_left.mp4", f"clip_{n}_right.mp4"
        fx.video(root / "videos" / left, 500 + 2 * n)
        fx.video(root / "videos" / right, 501 + 2 * n)
        rows.append({"prompt": f"a ball bouncing {n}", "left_model": "v1", "right_model": "v2", "vote_type": v,
                     "left_video": f"https://example.invalid/videos/{left}", "right_video": f"https://example.invalid/videos/{right}",
                     "tstamp": float(n), "judge": "arena"})
    feats = d.Features({k: (d.Value("float64") if k == "tstamp" else d.Value("string")) for k in rows[0]})
    fx.parquet(rows, feats, root / "video_generation" / "test_v1-00000-of-00001.parquet")


DEMO_VERDICTS = {(True, False): "[[A>B]]", (False, True): "[[B>A]]", (True, True): "[[A=B=Good]]", (False, False): "[[A=B=Bad]]"}


def demo_example(rng, spec):
    """A four-way vote between two generated images / edits / videos."""
    kind = "video" if spec.variant == "video_generation" else "image"
    ok_a, ok_b = rng.choice(list(DEMO_VERDICTS))
    scene = dt.scene(rng)
    target = dt.say(scene)
    da = target if ok_a else dt.say(dt.other(rng, scene))
    db = target if ok_b else dt.say(dt.other(rng, scene))
    verdict = DEMO_VERDICTS[(ok_a, ok_b)]
    judge = lambda ok: "good" if ok else "bad"  # noqa: E731
    why = f"A is {judge(ok_a)}, B is {judge(ok_b)}."
    if spec.variant == "image_edition":
        src = dt.other(rng, scene)
        n, color, obj, _ = scene
        edit = f"make them {color}" if src[0] == n else f"show {dt.NUMBERS[n]} {dt.plural(obj, n)}"
        doc = {"source_prompt": dt.say(src), "target_prompt": target, "instruct_prompt": edit}
        return doc, [f"image: {dt.say(src)}", f"image: {da}", f"image: {db}"], why, f"<answer>{verdict}</answer>"
    return {"prompt": target}, [f"{kind}: {da}", f"{kind}: {db}"], why, f"<answer>{verdict}</answer>"


# variant (task suffix) -> (hub config, media kind)
VARIANTS = {"image": ("image_generation", "Image"), "editing": ("image_edition", "Image"), "video": ("video_generation", "Video")}
VIDEO = {"fps": 1.0, "max_pixels": 224 * 224}


def tasks(P):
    g = P["genai_bench"]
    s = sampling(P, "genai_bench")
    out = []
    for variant, (config, kind) in VARIANTS.items():
        if variant == "editing":
            user = g["user_editing"]
        else:  # the protocol's one template for both, with its {Image|Video} and {placeholder} slots filled
            ph = "<|video_pad|>" if kind == "Video" else "<|image_pad|>"
            user = g["user_image_or_video"].replace("{Image|Video}", kind).replace("{placeholder}", ph)
        out.append(TaskSpec(
            task=f"flex_genai_bench_{variant}", bench="genai_bench", variant=config,
            system=g["system"][variant], user=user,
            temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
            order=None, parser="genai_vote", parser_default=None,
            headline=(("acc_mean", True), ("acc_majority", True)), extra_metrics=(),
            env="FLEX_GENAI_BENCH_PATH", hub=("TIGER-Lab/GenAI-Bench", config, "test_v1"),
            image_size=None if variant == "video" else 448, video=VIDEO if variant == "video" else None,
            multi_run=True, group="flex_genai_bench", limit_mm=g["limit_mm_per_prompt"]))
    return out


TASK_NAMES = tuple(f"flex_genai_bench_{v}" for v in VARIANTS)
LEADERBOARD = (Section("genai_bench", "GenAI-Bench (accuracy, %; mean over runs, and majority vote over runs)", (
    Column("image_gen", "flex_genai_bench_image", "acc_mean"),
    Column("image_edit", "flex_genai_bench_editing", "acc_mean"),
    Column("video_gen", "flex_genai_bench_video", "acc_mean"),
    Column("overall", "", "")), scale=100.0, mean_column="overall", majority=True),)
WINNER = {"leftvote": "A", "rightvote": "B", "tievote": "tie", "bothbad_vote": "both_bad"}

BENCHMARK = Benchmark("genai_bench", tasks=tasks,
                      parsers={"genai_vote": Parser(genai_vote, "verdict", 1, numbers=lambda text: [], winner=WINNER, headline="runwise_accuracy")},
                      groups={"flex_genai_bench": TASK_NAMES},
                      # the paper's overall column: lmms-eval's unweighted mean over the members
                      group_aggregates={"flex_genai_bench": ("acc_mean", "acc_majority")},
                      api={"compare_media": ("flex_genai_bench_image", "flex_genai_bench_video")},
                      leaderboard=LEADERBOARD, load=load, fields=fields, report=report, write_fixtures=write_fixtures,
                      demo_example=demo_example)
