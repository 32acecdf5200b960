"""`flex-judge report`: one self-contained HTML page of real lmms-eval runs (test_leaderboard_fixtures'
`flex` and `qwen2_5_vl` runs on the bundled fixtures, and doctored copies with parsed verdicts),
opened in a real headless Chromium driven by selenium with the system's chromedriver.

Expected counts are recomputed here from the samples jsonl, not taken from the report's code.
The browser tests skip only when no chromium is installed and FLEX_REQUIRE_BROWSER is unset
(.ci/run sets it): anything missing where CI should have it fails loudly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flex_judge.analysis import compare
from flex_judge.analysis import report as R
from flex_judge.analysis.runs import load_runs
from flex_tasks.protocol import TASKS
from test_leaderboard_fixtures import REPO, doctor, make_runs
from record_helpers import rec as typed_rec

pytestmark = pytest.mark.e2e
EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">&amp; "quoted"'
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
DRIVER = shutil.which("chromedriver")


# ---------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def runs(tiny_vl):
    return make_runs(tiny_vl)


def _rewrite(folder: Path, fn) -> None:
    """Apply fn(task, record) -> record to every record of every samples file of a run folder."""
    for f in sorted(folder.glob("*/*_samples_*.jsonl")):
        task = f.name.split("_samples_")[1][:-6]
        key = TASKS[task].metric_names()[0][0]
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        for row in rows:
            row[key] = fn(task, dict(row[key]))
        f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.fixture(scope="module")
def judged(runs, tmp_path_factory):
    """Two doctored judges (parsed, partly agreeing verdicts); judge 1 fails to parse run 0 of
    every even item, and one of its outputs holds markup."""
    root = tmp_path_factory.mktemp("report_runs")
    d1 = doctor(runs["a"], root / "d1", seed=11)
    d2 = doctor(runs["a"], root / "d2", seed=12, agree_with=d1, p_agree=0.5)

    def fail_some(task, rec):
        if rec["item"] % 2 == 0 and rec["run"] == 0:
            rec.update(ok=False, how="fallback")
        if task == "flex_mj_bench_alignment" and rec["item"] == 1 and rec["run"] == 1:
            rec["raw"] = EVIL
        return rec

    _rewrite(d1, fail_some)
    res = next(d2.glob("*/*_results.json"))  # doctor copies results files: make d2's its own run
    data = json.loads(res.read_text())
    data["date"] = f"{data.get('date')}-judge-2"
    res.write_text(json.dumps(data))
    return d1, d2


def _records(folder: Path) -> dict:
    """task -> {(item, run): record}, straight from the jsonl."""
    out = {}
    for f in folder.glob("*/*_samples_*.jsonl"):
        task = f.name.split("_samples_")[1][:-6]
        key = TASKS[task].metric_names()[0][0]
        out[task] = {(r[key]["item"], r[key]["run"]): r[key] for r in map(json.loads, f.read_text().splitlines())}
    return out


def _expected(d1: Path, d2: Path) -> dict:
    """Per task: items, items with any parse failure, items where the two judges' parsed
    predictions differ on some run (what the filters must show)."""
    a, b = _records(d1), _records(d2)
    out = {}
    for task in a:
        items = {k[0] for k in a[task]}
        pf = {k[0] for k, r in list(a[task].items()) + list(b[task].items()) if not r["ok"]}
        dis = {k[0] for k in a[task] if str(a[task][k]["pred"]) != str(b[task][k]["pred"])}
        out[task] = {"items": len(items), "pf": len(pf), "dis": len(dis)}
    return out


@pytest.fixture(scope="module")
def page(judged, tmp_path_factory):
    runs = load_runs(list(judged), labels=["judge-1", "judge-2"])
    html, summary = R.build_report(runs, iters=50)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path, html, summary


# ---------------------------------------------------------------- the page itself (no browser)
def test_page_is_self_contained_and_escaped(page, judged):
    path, html, summary = page
    # no network: no URL other than data: URIs in any src / href, and a CSP that forbids the rest
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, re.I)
    assert "default-src 'none'" in html
    # every <script> is ours: the data blob, the media blobs and the one inline program
    scripts = re.findall(r"<script([^>]*)>", html)
    assert sum(1 for s in scripts if not s.strip()) == 1
    assert all(('type="text/plain"' in s or 'type="application/json"' in s) for s in scripts if s.strip())
    assert "window.__pwned" not in html.split('id="flex-data">')[0]  # not in any HTML part
    blob = html.split('<script type="application/json" id="flex-data">')[1].split("</script>")[0]
    assert "<" not in blob and ">" not in blob  # the blob cannot close its script element
    data = json.loads(blob)
    texts = [j["text"] for it in data["items"] for r in it["runs"] for j in r["judges"].values()]
    assert EVIL in texts  # kept verbatim as data, shown as text by the page
    want = _expected(*judged)
    assert {t["task"]: t["n_items"] for t in data["tasks"]} == {t: w["items"] for t, w in want.items()}
    assert {t["task"]: t["n_parse_fail_items"] for t in data["tasks"]} == {t: w["pf"] for t, w in want.items()}
    assert {t["task"]: t["n_disagree_items"] for t in data["tasks"]} == {t: w["dis"] for t, w in want.items()}
    # media: the fixture data reload matched the runs' hashes, every image task embedded its images
    assert all(t["media"] for t in data["tasks"]), [t["media_note"] for t in data["tasks"]]
    assert summary["media"] > 0 and html.count('<script type="text/plain" id="m') == summary["media"]


def test_what_the_judge_saw_equals_the_logged_prompt(page, judged):
    """The rebuilt user text equals lmms-eval's logged `input` of the same (item, run) (the text
    parts of the same message), and every image is a JPEG thumbnail of the protocol's size."""
    _, html, _ = page
    data = json.loads(html.split('id="flex-data">')[1].split("</script>")[0])
    logged = {}
    for f in judged[0].glob("*/*_samples_*.jsonl"):
        task = f.name.split("_samples_")[1][:-6]
        key = TASKS[task].metric_names()[0][0]
        for row in map(json.loads, f.read_text().splitlines()):
            logged[(task, row[key]["item"], row[key]["run"])] = row["input"]
    checked = 0
    for it in data["items"]:
        task = data["tasks"][it["t"]]["task"]
        for r in it["runs"]:
            view = it["views"][r["view"]]
            text = "".join(p for kind, p in view["user"] if kind == "text")
            assert text == logged[(task, it["item"], r["run"])]
            checked += 1
            for kind, part in view["user"]:
                if kind == "media":
                    assert part["ids"], part
    assert checked == sum(len(v) for v in _records(judged[0]).values())
    first = re.search(r'<script type="text/plain" id="m0">data:image/jpeg;base64,([^<]+)</script>', html)
    import base64
    import io

    img = Image.open(io.BytesIO(base64.b64decode(first.group(1))))
    assert img.format == "JPEG" and max(img.size) <= 320


def test_cli_writes_the_page_and_names_bad_input(judged, tmp_path):
    out = tmp_path / "r.html"
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    p = subprocess.run([sys.executable, "-m", "flex_judge.cli", "report", str(judged[0]), str(judged[1]),
                        "-o", str(out), "--labels", "x,y", "--no-media", "--bootstrap-iters", "20"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "wrote" in p.stderr and out.exists()
    data = json.loads(out.read_text().split('id="flex-data">')[1].split("</script>")[0])
    assert data["judges"] == ["x", "y"] and not any(t["media"] for t in data["tasks"])
    p = subprocess.run([sys.executable, "-m", "flex_judge.cli", "report", str(tmp_path / "nope"), "-o", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "nope: no such file or folder" in p.stderr


def test_changed_data_falls_back_to_the_logged_prompt(runs, tmp_path):
    """A run whose recorded items hash no longer matches the data: no media, the logged text, and why."""
    folder = shutil.copytree(runs["a"], tmp_path / "a")
    res = next(folder.glob("*/*_results.json"))
    data = json.loads(res.read_text())
    data["flex_provenance"]["tasks"]["flex_mj_bench_alignment"]["items_sha256"] = "sha256:" + "0" * 64
    res.write_text(json.dumps(data))
    items = R.build_items(load_runs([folder]), store=R.MediaStore())
    task = next(t for t in items["tasks"] if t["task"] == "flex_mj_bench_alignment")
    assert not task["media"] and "not the data the run judged" in task["media_note"]
    other = next(t for t in items["tasks"] if t["task"] == "flex_vl_rewardbench")
    assert other["media"]
    view = next(it for it in items["items"] if it["t"] == items["tasks"].index(task))["views"][0]
    assert view["user"][0][0] == "text" and view["user"][0][1].startswith("[Question]") and view["note"]


# ---------------------------------------------------------------- the page in Chromium
@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None and not os.environ.get("FLEX_REQUIRE_BROWSER"):
        pytest.skip("no chromium (apt-get install chromium chromium-driver); set FLEX_REQUIRE_BROWSER=1 to fail instead")
    if CHROMIUM is None or DRIVER is None:
        pytest.fail(f"chromium={CHROMIUM} chromedriver={DRIVER}: install Debian's chromium and chromium-driver "
                    f"(.ci/run does)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: it belongs in the test lock (requirements/) beside pytest")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1800", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(driver, path: Path, fragment: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")  # a new document even when only the fragment changes
    driver.get(path.as_uri() + fragment)
    WebDriverWait(driver, 30).until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1")


def _count(driver) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+) of (\d+) items", driver.find_element("id", "count").text)
    assert m, driver.find_element("id", "count").text
    return int(m.group(1)), int(m.group(2))


def test_report_in_chromium(browser, page, judged, tmp_path):
    from selenium.webdriver.support.ui import Select

    path, _, _ = page
    d = browser
    _open(d, path)
    assert [e for e in d.get_log("browser") if e.get("level") == "SEVERE"] == []  # no script error
    # the headline tables: one row per judge with value [CI] and the protocol flag
    tables = d.find_elements("css selector", "table.headline")
    assert {t.get_attribute("data-section") for t in tables} >= {"vl_rewardbench", "mj_bench", "mllm_as_a_judge_avg"}
    vlrb = d.find_element("css selector", 'table.headline[data-section="vl_rewardbench"]')
    row = next(r for r in vlrb.find_elements("css selector", "tr") if r.text.startswith("judge-1"))
    res = json.loads(next(judged[0].glob("*/*_results.json")).read_text())["results"]["flex_vl_rewardbench"]
    lo, hi = res["overall_acc_ci95,none"]
    assert f"{100 * res['overall_acc,none']:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]" in row.text and "†" in row.text
    # every plot compare writes (agreement heatmap, score scatter, headline bars, paired differences)
    n_plots = len(compare.write_plots(compare.compare(load_runs(list(judged), labels=["judge-1", "judge-2"]), iters=20), tmp_path / "plots"))
    assert n_plots >= 4 and len(d.find_elements("css selector", "#plots img")) == n_plots
    # a screenshot that is not blank
    shot = tmp_path / "report.png"
    d.save_screenshot(str(shot))
    px = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert px.shape[0] > 500 and px.std() > 10, px.std()
    # the item browser: every item of every task, 50 a page
    want = _expected(*judged)
    total = sum(w["items"] for w in want.values())
    assert _count(d) == (total, total)
    assert len(d.find_elements("css selector", "#items .item")) == min(total, 50)
    # markup in a judge's output is text: shown verbatim, never run, no element made from it
    evil = [e for e in d.find_elements("css selector", "pre.reasoning") if "__pwned" in e.get_attribute("textContent")]
    assert [e.get_attribute("textContent") for e in evil] == [EVIL]
    assert d.execute_script("return window.__pwned === undefined")
    assert d.execute_script("return document.querySelectorAll('#items script, #items img[src=\"x\"]').length") == 0
    # filters: parse failures only, then judges disagree, then one task
    d.find_element("id", "f-pf").click()
    assert _count(d) == (sum(w["pf"] for w in want.values()), total)
    assert all("pf" in c.get_attribute("class").split() for c in d.find_elements("css selector", "#items .item"))
    d.find_element("id", "f-pf").click()
    d.find_element("id", "f-dis").click()
    assert _count(d) == (sum(w["dis"] for w in want.values()), total)
    d.find_element("id", "f-dis").click()
    Select(d.find_element("id", "f-task")).select_by_visible_text(f"flex_vl_rewardbench ({want['flex_vl_rewardbench']['items']})")
    assert _count(d)[0] == want["flex_vl_rewardbench"]["items"]
    cards = d.find_elements("css selector", "#items .item")
    assert {c.get_attribute("data-task") for c in cards} == {"flex_vl_rewardbench"}
    # each card: the images the judge saw, gold, each judge's verdict and parse status
    card = cards[0]
    assert len(card.find_elements("css selector", ".media img")) >= 1
    assert "judge-1" in card.text and "judge-2" in card.text and "gold" in card.text
    # a link opens the browser filtered
    _open(d, path, "#task=flex_mj_bench_alignment&pf=1")
    assert _count(d)[0] == want["flex_mj_bench_alignment"]["pf"]
    assert d.find_element("id", "f-pf").is_selected()


def test_chromium_plays_the_embedded_audio(browser, tmp_path):
    """The Ogg Vorbis data URI of a fixture clip loads in Chromium with the clip's duration."""
    from flex_tasks import benchmarks
    from flex_tasks.data import FIXTURES_DIR
    from flex_tasks.media import load_audio

    spec = TASKS["flex_nisqa"]
    items = benchmarks.of(spec).load(spec, str(FIXTURES_DIR / benchmarks.of(spec).fixtures))
    clip = load_audio(items[0]["media"][0])
    store = R.MediaStore()
    mid, _ = store.audio(clip)
    entry = {"kind": "audio", "ids": [mid], "note": ""}
    data = {"judges": ["j"], "tasks": [{"task": "flex_nisqa", "kind": "score", "modality": "audio", "n_items": 1,
                                        "system": "", "judges": [0], "media": True, "media_note": "",
                                        "n_parse_fail_items": 0, "n_disagree_items": 0}],
            "items": [{"t": 0, "item": 0, "data_id": "x", "gold": 3.0, "group": {}, "pf": False, "dis": False,
                       "views": [{"user": [["media", entry]]}],
                       "runs": [{"run": 0, "swap": False, "seed": 0, "view": 0,
                                 "judges": {"0": {"text": "t", "pred": 3, "label": "3", "ok": True, "how": "answer"}}}]}]}
    path = tmp_path / "audio.html"
    path.write_text(R.render("audio", "", "", [], data, store.uris), encoding="utf-8")
    _open(browser, path)
    got = browser.execute_async_script(
        "const done = arguments[0]; const a = document.querySelector('#items audio');"
        "a.addEventListener('loadedmetadata', () => done(a.duration)); a.addEventListener('error', () => done(-1));"
        "a.preload = 'metadata'; a.load();")
    assert got == pytest.approx(len(clip["array"]) / clip["sampling_rate"], abs=0.05)


def test_thousands_of_items_page_by_page(browser, judged, tmp_path):
    """3000 items x 2 runs of one task: 60 pages of 50; the DOM never holds more than a page."""
    big = shutil.copytree(judged[1], tmp_path / "big")
    f = next(big.glob("*/*_samples_flex_mllm_judge_pair.jsonl"))
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    key = TASKS["flex_mllm_judge_pair"].metric_names()[0][0]
    out = []
    for i in range(3000):
        for run in (0, 1):
            row = json.loads(json.dumps(rows[run]))
            row[key].update(item=i, run=run, raw=f"output {i}.{run}", ok=(i % 3 != 0))
            out.append(json.dumps(row))
    f.write_text("\n".join(out) + "\n")
    for other in big.glob("*/*_samples_*.jsonl"):
        if other != f:
            other.unlink()
    res = next(big.glob("*/*_results.json"))
    data = json.loads(res.read_text())
    data["results"] = {"flex_mllm_judge_pair": data["results"]["flex_mllm_judge_pair"]}
    res.write_text(json.dumps(data))
    import time

    t0 = time.perf_counter()
    html, summary = R.build_report(load_runs([big]), iters=20)
    build_s = time.perf_counter() - t0
    path = tmp_path / "big.html"
    path.write_text(html, encoding="utf-8")
    assert summary["items"] == 3000
    t0 = time.perf_counter()
    _open(browser, path)
    load_s = time.perf_counter() - t0
    assert _count(browser) == (3000, 3000)
    assert browser.find_element("id", "page-info").text == "page 1 of 60"
    assert len(browser.find_elements("css selector", "#items .item")) == 50
    browser.find_element("id", "next").click()
    assert browser.find_element("id", "page-info").text == "page 2 of 60"
    items = [c.get_attribute("data-item") for c in browser.find_elements("css selector", "#items .item")]
    assert items == [str(i) for i in range(50, 100)]
    browser.find_element("id", "f-pf").click()  # items 0, 3, 6, ...: 1000, back on page 1
    assert _count(browser) == (1000, 3000) and browser.find_element("id", "page-info").text == "page 1 of 20"
    assert browser.execute_script("return document.querySelectorAll('#items .item').length") == 50
    print(f"3000 items: built in {build_s:.1f} s, {len(html) / 1e6:.1f} MB, opened in {load_s:.2f} s")
    assert load_s < 20


@pytest.mark.parametrize("task", ["flex_genai_bench_video", "flex_nisqa", "flex_voxsim"])
def test_video_frames_and_audio_are_embedded(task):
    """What the judge saw for video and audio fixtures: video -> frame thumbnails decoded from the
    clip itself; audio -> an Ogg Vorbis data URI that decodes (soundfile) to the clip's 16 kHz length."""
    import base64
    import io

    import soundfile as sf

    from flex_models.media import decode_audio
    from flex_tasks import benchmarks
    from flex_tasks.data import FIXTURES_DIR
    from flex_tasks.media import AUDIO_SR

    spec = TASKS[task]
    source = str(FIXTURES_DIR / benchmarks.of(spec).fixtures)
    items = benchmarks.of(spec).load(spec, source)
    for i, it in enumerate(items):
        it.update(item=i, source=source)
        it.setdefault("row", -1)
    store = R.MediaStore(thumb=64, frames=3)
    view = R.judge_view(spec, items[0], typed_rec(0, 0, task=task), store)
    media = [p for kind, p in view["user"] if kind == "media"]
    assert media and len(media) == len(items[0]["media"])
    for m, ref in zip(media, items[0]["media"]):
        uris = [store.uris[i] for i in m["ids"]]
        if spec.modality == "audio":
            assert m["kind"] == "audio" and len(uris) == 1 and uris[0].startswith("data:audio/ogg;base64,")
            got, sr = sf.read(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1])))
            want, _ = decode_audio(ref)
            assert sr == AUDIO_SR and abs(len(got) - len(want)) <= 0.01 * len(want) + 64
        else:
            import av

            with av.open(ref) as c:
                n = sum(1 for _ in c.decode(video=0))
            assert m["kind"] == "video" and len(uris) == min(3, n) and m["note"] == f"{len(uris)} of {n} frames"
            imgs = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))) for u in uris]
            assert all(max(im.size) <= 64 for im in imgs)
    # the same medium seen again (another run) is not stored twice
    before = len(store.uris)
    R.judge_view(spec, items[0], typed_rec(0, 1, task=task), store)
    assert len(store.uris) == before


def test_judges_on_different_data_are_noted(judged, tmp_path):
    other = shutil.copytree(judged[1], tmp_path / "other")
    res = next(other.glob("*/*_results.json"))
    data = json.loads(res.read_text())
    data["flex_provenance"]["tasks"]["flex_vl_rewardbench"]["items_sha256"] = "sha256:" + "1" * 64
    res.write_text(json.dumps(data))
    items = R.build_items(load_runs([judged[0], other], labels=["a", "b"]), with_media=False)
    assert [n for n in items["notes"] if "different data" in n] == [
        n for n in items["notes"] if n.startswith("flex_vl_rewardbench: the judges ran different data")]
    assert len([n for n in items["notes"] if "different data" in n]) == 1


def test_runs_are_compared_within_groups_sharing_tasks(runs, judged):
    """A VL-only run next to runs of other tasks: plotted by group, never a failed comparison."""
    a, b, c = load_runs([judged[0], runs["b"], judged[1]], labels=["a", "b", "c"])
    a.data["results"] = {t: v for t, v in a.data["results"].items() if t == "flex_vl_rewardbench"}
    b.data["results"] = {t: v for t, v in b.data["results"].items() if t == "flex_mllm_judge_pair"}
    c.data["results"] = {t: v for t, v in c.data["results"].items() if t in ("flex_vl_rewardbench", "flex_genai_bench_image")}
    assert [[r.label for r in g] for g in R.run_groups([a, b, c])] == [["a", "c"], ["b"]]
    html, notes = R.plots_html([a, b, c], iters=20)
    caps = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert "a vs c: benchmark bars" in caps and "b: benchmark bars" in caps
    assert not [n for n in notes if n.startswith("no compare plots")]
