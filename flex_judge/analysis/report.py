"""`flex-judge report RUN [RUN ...] -o report.html`: one self-contained HTML page of lmms-eval runs
of flex tasks: the leaderboard's tables (values, 95% CIs, protocol flags and provenance), the
compare plots, and an item browser per task (what the judge was shown, with its media, each
judge's output, parsed verdict and parse status, and the gold label), filterable by task,
disagreement and parse failure.

Nothing is recomputed here: tables come from :func:`flex_judge.analysis.leaderboard.build`, plots
from :mod:`flex_judge.analysis.compare` / :mod:`flex_judge.analysis.plots`, per-item records from
:meth:`Run.records` (the samples jsonl). What the judge was shown is rebuilt from the run's own
data provenance (``flex_provenance``: fixtures, a local folder or the hub) with the task's own
prompt and media code (``flex_tasks.prompts`` / ``flex_tasks.media``), and used only when the
reloaded items hash to the ``items_sha256`` the run recorded; otherwise the item browser shows
the prompt text lmms-eval logged (``input``) and says why the media are missing.

The page works offline: no external asset. Items are one inline JSON blob rendered page by page
by a small vanilla-JS browser (``report_template.html``); every text is set with ``textContent``
(model outputs are untrusted). Each medium (downscaled JPEG thumbnail, video frames, audio as
Ogg Vorbis) is an inline data URI stored once in its own ``<script type="text/plain">`` element
and attached to the DOM only when a page showing it is rendered.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Optional

from flex_judge.analysis import leaderboard
from flex_judge.analysis.runs import Run, RunError, json_safe, load_runs, protocol_deviations
from flex_models import jsonl
from flex_models.args import HelpFormatter
from flex_tasks.protocol import TASKS
from flex_tasks.record import GROUP_KEYS, Record

TEMPLATE = Path(__file__).with_name("report_template.html")
DEFAULT_PAGE_SIZE = 50


# ---------------------------------------------------------------- media -> data URIs
class MediaStore:
    """Media as data URIs, each stored once (the same image serves every run and every judge)."""

    def __init__(self, thumb: int = 320, frames: int = 4, audio_seconds: float = 30.0):
        self.thumb, self.frames, self.audio_seconds = thumb, frames, audio_seconds
        self.uris: dict[str, str] = {}  # media id -> data URI
        self.by_key: dict = {}  # (source, ref) -> media entry
        self.bytes = 0

    def _add(self, uri: str) -> str:
        mid = f"m{len(self.uris)}"
        self.uris[mid] = uri
        self.bytes += len(uri)
        return mid

    def image(self, img) -> str:
        img = img.convert("RGB")
        img.thumbnail((self.thumb, self.thumb))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        return self._add("data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())

    def audio(self, audio: dict) -> tuple[str, str]:
        """(media id, note): 16 kHz mono as Ogg Vorbis (about 3 kB/s), cut at ``audio_seconds``."""
        import numpy as np
        import soundfile as sf

        arr = np.asarray(audio["array"], dtype=np.float32)
        sr = int(audio["sampling_rate"])
        note = f"{len(arr) / sr:.1f} s at {sr} Hz"
        if self.audio_seconds and len(arr) > self.audio_seconds * sr:
            arr = arr[: int(self.audio_seconds * sr)]
            note += f"; the first {self.audio_seconds:g} s here"
        buf = io.BytesIO()
        sf.write(buf, np.clip(arr, -1, 1), sr, format="OGG", subtype="VORBIS")
        return self._add("data:audio/ogg;base64," + base64.b64encode(buf.getvalue()).decode()), note

    def video(self, path: str) -> tuple[list[str], str]:
        """A few evenly spaced frames of the clip as thumbnails (the judge saw the protocol's frame
        sampling, flex_models.media.load_video; these are for the eye only)."""
        from PIL import Image

        from flex_models.media import _count_frames, _decode_frames

        total = _count_frames(path)
        n = max(1, min(self.frames, total))
        keep = sorted({round(i * (total - 1) / max(1, n - 1)) for i in range(n)}) if total > 1 else [0]
        frames, _ = _decode_frames(path, keep)
        ids = [self.image(Image.fromarray(frames[i])) for i in keep if i in frames]
        return ids, f"{len(ids)} of {total} frames"

    def entry(self, kind: str, key, value) -> dict:
        """The browser's media entry for one decoded medium (``media.resolve``'s output)."""
        if key in self.by_key:
            return self.by_key[key]
        try:
            if kind == "audio":
                mid, note = self.audio(value)
                out = {"kind": "audio", "ids": [mid], "note": note}
            elif kind == "video":
                ids, note = self.video(str(value))
                out = {"kind": "video", "ids": ids, "note": note}
            else:
                out = {"kind": "image", "ids": [self.image(value)], "note": "%dx%d" % value.size}
        except Exception as e:  # one unreadable medium must not lose the report: say which and why
            out = {"kind": kind, "ids": [], "note": f"could not embed: {type(e).__name__}: {e}"}
        self.by_key[key] = out
        return out


# ---------------------------------------------------------------- what the judge saw
def load_task_items(run: Run, task: str) -> tuple[Optional[list[dict]], str]:
    """(the task's items as the run loaded them, None) or (None, why not): the data named by the
    run's provenance, accepted only when it hashes to the run's ``items_sha256``."""
    from flex_tasks import benchmarks
    from flex_tasks.data import FIXTURES_DIR, HUB
    from flex_tasks.provenance import items_hash

    spec = TASKS[task]
    prov = (run.provenance.get("tasks") or {}).get(task)
    if not prov:
        return None, "the run has no data provenance (not run with `flex-judge eval`)"
    bench = benchmarks.of(spec)
    kind = prov.get("source")
    if kind == "fixtures":  # the bundled copy of this checkout, wherever the run was made
        source = str(FIXTURES_DIR / bench.fixtures)
    elif kind == "hub":
        source = HUB
    else:
        source = str(prov.get("path", ""))
        if not source or not Path(source).exists():
            return None, f"the run's data folder {source or '?'} is not on this machine"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items = bench.load(spec, source)
    except Exception as e:  # any loader failure means "no media", said in the page
        where = prov.get("hub_id", "the hub") if source == HUB else source
        return None, f"could not load the data from {where}: {type(e).__name__}: {e}"
    for i, it in enumerate(items):  # the keys flex_tasks.data.load_items gives (it reads the env setting; we use the run's)
        it["item"] = i
        it.setdefault("source", source)
        it.setdefault("row", -1)
    if items_hash(items, source) != prov.get("items_sha256"):
        return None, (f"the data at {source} is not the data the run judged (items hash differs from the "
                      f"run's {str(prov.get('items_sha256'))[:19]})")
    return items, ""


def judge_view(spec, item: dict, rec: Record, store: Optional[MediaStore]) -> dict:
    """The user message of one (item, run) as the judge got it (the system prompt is the task's,
    ``spec.system``, stored once per task): text parts and media entries in the order shown
    (presentation order applied)."""
    from flex_tasks import benchmarks, media, prompts

    doc = dict(item)
    doc.update(flex_task=spec.task, flex_item=rec.item, flex_run=rec.run, flex_seed=rec.seed,
               flex_swap=rec.swap, flex_target=str(item["gold"]))
    if spec.video:
        doc["flex_video"] = dict(spec.video)
    parts = prompts.user_parts(spec, doc)
    user = []
    if store is not None:
        refs = benchmarks.of(spec).media_order(spec, doc, list(doc["media"]))
        keys = [(doc["source"], int(doc.get("row", -1)) if r.startswith("row:") else -1, r) for r in refs]
        decoded = None
        if any(k not in store.by_key for k in keys):
            try:
                decoded = media.resolve(spec, doc)
            except Exception as e:
                decoded = e
        kinds = [k for k, _ in parts if k != "text"]
        entries = []
        for n, (key, kind) in enumerate(zip(keys, kinds)):
            if key in store.by_key:
                entries.append(store.by_key[key])
            elif isinstance(decoded, Exception):
                entries.append({"kind": kind, "ids": [], "note": f"could not decode: {type(decoded).__name__}: {decoded}"})
            else:
                entries.append(store.entry(kind, key, decoded[n]))
        it = iter(entries)
        for kind, text in parts:
            user.append(["text", text] if kind == "text" else ["media", next(it, {"kind": kind, "ids": [], "note": "missing"})])
    else:
        user = [["text", t] if k == "text" else ["media", {"kind": k, "ids": [], "note": "media left out (--no-media)"}]
                for k, t in parts]
    return {"user": user}


def logged_inputs(run: Run, task: str) -> dict:
    """(item, run) -> (lmms-eval's logged ``input`` text, ``input_media`` paths) of a samples file."""
    key = TASKS[task].metric_names()[0][0]
    out = {}
    for line in jsonl.read(run.samples_file(task), whole_file=True):
        if not isinstance(line.value, dict):  # Run.records has already refused a malformed line
            continue
        row = line.value
        logged = row.get(key) or {}  # the line's JSON (the record is parsed by Run.records)
        out[(logged.get("item"), int(logged.get("run", -1)))] = (row.get("input") or "", row.get("input_media") or [])
    return out


# ---------------------------------------------------------------- per-item browser data
def _label(kind: str, rec: Record) -> str:
    if kind == "verdict":
        from flex_judge.analysis.compare import verdict_label

        return verdict_label(rec)
    return json.dumps(rec.pred, default=str)


def _plain(v):
    """A JSON value for the page (records hold numbers, strings, None)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return json.dumps(v, default=str)


def build_items(runs: list[Run], with_media: bool = True, store: Optional[MediaStore] = None) -> dict:
    """The item browser's data: tasks, judges and one entry per (task, item) with every judge's
    record of every run (records of all runs, the union over judges; a judge without the record
    shows as absent)."""
    from flex_judge.analysis.compare import task_kind

    labels = [r.label for r in runs]
    if with_media and store is None:
        store = MediaStore()
    tasks_out, items_out, notes = [], [], []
    for task in dict.fromkeys(t for r in runs for t in r.tasks):
        spec = TASKS[task]
        kind = task_kind(task)
        per_judge: dict = {}  # judge index -> {(item, run): record}
        for j, run in enumerate(runs):
            if task not in run.tasks:
                continue
            try:
                per_judge[j] = {(r.item, r.run): r for r in run.records(task)}
            except RunError as e:
                notes.append(f"{task}, {run.label}: {e}")
        if not per_judge:
            continue
        data, why = None, "media left out (--no-media)"
        fallback: dict = {}
        if with_media:
            for j in per_judge:  # the first judge whose provenance points at loadable, matching data
                data, why = load_task_items(runs[j], task)
                if data is not None:
                    break
        hashes = {runs[j].label: ((runs[j].provenance.get("tasks") or {}).get(task) or {}).get("items_sha256")
                  for j in per_judge}
        if len({h for h in hashes.values() if h}) > 1:  # same item position, different data: say so
            notes.append(f"{task}: the judges ran different data (items hash " + ", ".join(
                f"{lab} {str(h)[:19]}" for lab, h in hashes.items()) + "); the cards show one prompt per item")
        if data is None:
            for j in per_judge:
                fallback.update({k: v for k, v in logged_inputs(runs[j], task).items() if k not in fallback})
        keys = sorted({k for recs in per_judge.values() for k in recs}, key=lambda k: (str(type(k[0])), k[0], k[1]))
        by_item: dict = {}
        for k in keys:
            by_item.setdefault(k[0], []).append(k)
        t_index = len(tasks_out)
        n_pf = n_dis = 0
        for item, ks in by_item.items():
            first = next(per_judge[j][k] for k in ks for j in per_judge if k in per_judge[j])
            views: list = []
            view_index: dict = {}
            runs_out = []
            pf = dis = False
            for k in ks:
                rec0 = next(per_judge[j][k] for j in per_judge if k in per_judge[j])
                if data is not None and isinstance(item, int) and 0 <= item < len(data):
                    view = judge_view(spec, data[item], rec0, store if with_media else None)
                else:
                    text, paths = fallback.get(k, ("", []))
                    note = why if data is None else f"item {item!r} is not in the reloaded data"
                    view = {"user": [["text", text]], "logged_media": list(paths),
                            "note": note}
                sig = json.dumps(view, sort_keys=True)
                if sig not in view_index:
                    view_index[sig] = len(views)
                    views.append(view)
                judged = {}
                for j, recs in per_judge.items():
                    r = recs.get(k)
                    if r is None:
                        continue
                    judged[str(j)] = {"text": r.raw, "pred": _plain(r.pred),
                                      "label": _label(kind, r), "ok": r.ok, "how": r.how}
                    pf = pf or not r.ok
                if len({v["label"] for v in judged.values()}) > 1:
                    dis = True
                runs_out.append({"run": k[1], "swap": rec0.swap, "seed": rec0.seed,
                                 "view": view_index[sig], "judges": judged})
            group = {g: _plain(first.group[g]) for g in GROUP_KEYS if g in first.group}
            items_out.append({"t": t_index, "item": _plain(item), "data_id": _plain(first.data_id),
                              "gold": _plain(first.gold), "group": group, "views": views, "runs": runs_out,
                              "pf": pf, "dis": dis})
            n_pf += pf
            n_dis += dis
        tasks_out.append({"task": task, "kind": kind, "modality": spec.modality, "n_items": len(by_item),
                          "system": spec.system,
                          "judges": sorted(per_judge), "media": data is not None and with_media,
                          "media_note": "" if data is not None and with_media else why,
                          "n_parse_fail_items": n_pf, "n_disagree_items": n_dis})
    return {"judges": labels, "tasks": tasks_out, "items": items_out, "notes": notes}


# ---------------------------------------------------------------- tables and plots
def _e(v) -> str:
    return html.escape(str(v), quote=True)


def tables_html(runs: list[Run]) -> str:
    """The leaderboard's sections as HTML tables (values, CIs, † flags with their deviations)."""
    board = leaderboard.build(runs, with_paper=True)
    out = []
    for sec in board["sections"]:
        digits = sec.get("digits", 3)
        out.append(f'<h3>{_e(sec["title"])}</h3><table class="headline" data-section="{_e(sec["key"])}"><thead><tr>'
                   "<th>judge</th>" + "".join(f"<th>{_e(c)}</th>" for c in sec["columns"]) + "<th>parse fail</th></tr></thead><tbody>")
        notes = []
        for row in sec["rows"]:
            rates = [c.get("parse_failure_rate") for c in row["cells"].values() if c.get("parse_failure_rate") is not None]
            pf = f"{100 * max(rates):.0f}%" if rates else ""
            cls = "paper" if row["kind"] == "paper" else ("flagged" if row["flagged"] else "run")
            mark = ' <span class="flag" title="not the paper\'s protocol">†</span>' if row["flagged"] else ""
            out.append(f'<tr class="{cls}"><td>{_e(row["label"])}{mark}</td>'
                       + "".join(f"<td>{_e(leaderboard._fmt_cell(row['cells'].get(c), digits))}</td>" for c in sec["columns"])
                       + f"<td>{_e(pf)}</td></tr>")
            if row["flagged"]:
                notes.append(f"<li>† {_e(row['label'])}: {_e('; '.join(row['deviations']))}</li>")
        out.append("</tbody></table>")
        if notes:
            out.append('<p class="small">Not the paper\'s protocol (not comparable to the paper rows):</p>'
                       f'<ul class="small deviations">{"".join(notes)}</ul>')
        if sec.get("metric_notes"):
            out.append(f'<ul class="small">{"".join(f"<li>{_e(n)}</li>" for n in sec["metric_notes"])}</ul>')
    out.append("<h3>Runs and provenance</h3><ul class=\"small runs\">")
    for run, m in zip(runs, board["runs"]):
        data = "; ".join(f"{t}: {d.get('source')} {d.get('hub_id') or d.get('path', '')} ({d.get('n_items')} items, "
                         f"{str(d.get('items_sha256', ''))[:19]})" for t, d in (m.get("data") or {}).items())
        devs = {t: protocol_deviations(run, t) for t in run.tasks}
        full = [t for t, d in devs.items() if not d]
        out.append(f"<li><b>{_e(m['label'])}</b>: model <code>{_e(m['model'])}</code> model_args "
                   f"<code>{_e(m['model_args'])}</code>; lmms-eval {_e(m.get('lmms_eval_version') or 'unknown')}; "
                   f"flex-judge {_e(m.get('flex_judge', 'unknown'))}; date {_e(m.get('date', '?'))}; "
                   f"data {_e(data or 'unknown')}; paper protocol on {_e(', '.join(full) or 'no task')}; "
                   f"<code>{_e(m['results_file'])}</code></li>")
    out.append("</ul>")
    if board.get("paper_notes"):
        out.append(f'<p class="small">Paper rows: {_e(board["paper_notes"])}</p>')
    return "\n".join(out)


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def run_groups(runs: list[Run]) -> list[list[Run]]:
    """The runs split into groups that share tasks (runs linked through common tasks), in the order
    given: e.g. VL judges and audio judges of one report are compared among themselves."""
    groups: list[list[Run]] = []
    for run in runs:
        linked = [g for g in groups if any(set(run.tasks) & set(o.tasks) for o in g)]
        merged = [run] + [o for g in linked for o in g]
        groups = [g for g in groups if g not in linked] + [sorted(merged, key=runs.index)]
    return sorted(groups, key=lambda g: runs.index(g[0]))


def _single_bars(run: Run, path: Path) -> Path:
    """One judge's headline metrics with their CIs (compare needs two judges)."""
    from flex_judge.analysis import compare, plots

    groups, values, cis, lower = [], [], [], []
    for t in run.tasks:
        for metric, hib in TASKS[t].headline:
            ci = run.metric(t, f"{metric}_ci95")
            groups.append(f"{t.removeprefix('flex_')}:{metric}")
            values.append([compare._num(run.metric(t, metric))])
            cis.append([ci if isinstance(ci, list) else None])
            lower.append(not hib)
    return plots.benchmark_bars(groups, [run.label], values, cis, path, lower_is_better=lower)


def plots_html(runs: list[Run], iters: int = 200) -> tuple[str, list[str]]:
    """The compare plots as inline PNGs, per group of runs sharing tasks (two or more runs:
    `flex-judge compare`'s agreement heatmap, score scatter and benchmark bars over their common
    tasks and records; a run alone: its headline bars), and what could not be plotted."""
    from flex_judge.analysis import compare

    notes: list[str] = []
    figs = []
    groups = run_groups(runs)
    with tempfile.TemporaryDirectory(prefix="flex_report_") as tmp:
        for n, group in enumerate(groups):
            folder = Path(tmp) / str(n)
            folder.mkdir()
            who = " vs ".join(r.label for r in group)
            paths: dict = {}
            if len(group) >= 2:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        rep = compare.compare(group, intersect=True, iters=iters)
                    notes += [f"compare {who}: {w}" for w in rep["warnings"]]
                    paths = compare.write_plots(rep, folder)
                except RunError as e:
                    notes.append(f"no compare plots for {who}: {e}")
            else:
                paths["benchmark_bars"] = _single_bars(group[0], folder / "benchmark_bars.png")
            prefix = f"{who}: " if len(groups) > 1 else ""
            figs += [f'<figure><img alt="{_e(name)}" src="{_png_uri(p)}"><figcaption>{_e(prefix + name.replace("_", " "))}'
                     f"</figcaption></figure>" for name, p in paths.items()]
    return "\n".join(figs), notes


# ---------------------------------------------------------------- the page
def _script_json(value) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' survive (so no '</script>' or '<!--')."""
    s = json.dumps(json_safe(value), allow_nan=False, ensure_ascii=False, default=str)
    return s.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e") \
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


_DATA_URI = re.compile(r"^data:(image/(jpeg|png)|audio/(ogg|wav));base64,[A-Za-z0-9+/=]*$")


def render(title: str, tables: str, plots: str, notes: list[str], items: dict, media: dict[str, str],
           page_size: int = DEFAULT_PAGE_SIZE) -> str:
    for mid, uri in media.items():  # our own encoder made them; checked since they go into the page as is
        if not _DATA_URI.match(uri):
            raise ValueError(f"media {mid}: not a base64 data URI of an image or audio")
    blobs = "\n".join(f'<script type="text/plain" id="{mid}">{uri}</script>' for mid, uri in media.items())
    note_html = "".join(f"<li>{_e(n)}</li>" for n in notes)
    fills = {"TITLE": _e(title), "TABLES": tables, "PLOTS": plots or "<p>no plots</p>",
             "NOTES": f'<ul class="small notes">{note_html}</ul>' if notes else "",
             "DATA": _script_json({"page_size": int(page_size), **items}), "MEDIA": blobs}
    # one pass: text filled in can never be taken for another placeholder
    return re.sub(r"<!--@(\w+)@-->", lambda m: fills[m.group(1)], TEMPLATE.read_text(encoding="utf-8"))


def build_report(runs: list[Run], with_media: bool = True, thumb: int = 320, frames: int = 4,
                 audio_seconds: float = 30.0, iters: int = 200, page_size: int = DEFAULT_PAGE_SIZE,
                 title: str = "Flex-Judge report") -> tuple[str, dict]:
    """(the HTML page, a summary: items, media count and bytes, notes)."""
    runs = [r for r in runs if r.duplicate_of is None]
    store = MediaStore(thumb=thumb, frames=frames, audio_seconds=audio_seconds)
    items = build_items(runs, with_media=with_media, store=store)
    plots, plot_notes = plots_html(runs, iters=iters)
    notes = items.pop("notes") + plot_notes
    page = render(title, tables_html(runs), plots, notes, items, store.uris, page_size=page_size)
    summary = {"items": len(items["items"]), "tasks": len(items["tasks"]), "media": len(store.uris),
               "media_bytes": store.bytes, "bytes": len(page.encode()), "notes": notes}
    return page, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flex-judge report", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="lmms-eval --output_path folders, model sub-folders or "
                   "<date>_results.json files (run with --log_samples for the item browser)")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--labels", help="comma-separated judge names, one per results file (default: model:checkpoint)")
    p.add_argument("--title", default="Flex-Judge report", help="the page title")
    p.add_argument("--no-media", action="store_true", help="do not reload the data: prompts as logged, no media")
    p.add_argument("--thumb", type=int, default=320, help="longest side of image / frame thumbnails in px (default 320)")
    p.add_argument("--frames", type=int, default=4, help="frames shown per video (default 4)")
    p.add_argument("--audio-seconds", type=float, default=30.0, help="audio embedded per clip, seconds (0 = all)")
    p.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE, help="items per page (default 50)")
    p.add_argument("--bootstrap-iters", type=int, default=200, help="bootstrap resamples for the compare plots")
    a = p.parse_args(argv)
    for name in ("thumb", "frames", "page_size"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    try:
        runs = load_runs(a.runs, a.labels.split(",") if a.labels else None)
        page, summary = build_report(runs, with_media=not a.no_media, thumb=a.thumb, frames=a.frames,
                                     audio_seconds=a.audio_seconds, iters=a.bootstrap_iters,
                                     page_size=a.page_size, title=a.title)
    except RunError as e:
        print(f"flex-judge report: {e}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    for n in summary["notes"]:
        print(f"note: {n}", file=sys.stderr)
    print(f"wrote {out}: {summary['tasks']} tasks, {summary['items']} items, {summary['media']} media "
          f"({summary['bytes'] / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
