"""The README's picture of `flex-judge report` (docs/img/report.png): build the report of some runs
and photograph it with headless Chromium (no selenium needed: `chromium --headless --screenshot`),
the top of the page (headline tables) beside the item browser.

    python scripts/report_screenshot.py runs/demo/eval-base-vl runs/demo/eval-vl \
        --labels tiny-vl-base,tiny-vl-judge --task flex_mj_bench_safety -o docs/img/report.png

Needs Debian's `chromium` (apt-get install chromium).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shoot(chromium: str, url: str, out: Path, width: int, height: int) -> Path:
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-dev-shm-usage", f"--window-size={width},{height}", "--virtual-time-budget=5000",
                    f"--screenshot={out}", url], check=True, capture_output=True, timeout=120)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("-o", "--out", default=str(REPO / "docs" / "img" / "report.png"))
    p.add_argument("--labels")
    p.add_argument("--html", help="also keep the report here")
    p.add_argument("--task", help="show this task's items in the item browser")
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--height", type=int, default=1300)
    a = p.parse_args(argv)
    chromium = next((c for c in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if c), None)
    if chromium is None:
        p.error("no chromium on PATH (apt-get install chromium)")
    from PIL import Image

    from flex_judge.analysis.report import build_report
    from flex_judge.analysis.runs import load_runs

    runs = load_runs(a.runs, a.labels.split(",") if a.labels else None)
    page, summary = build_report(runs, iters=200, title="Flex-Judge report: " + " vs ".join(r.label for r in runs))
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(a.html) if a.html else Path(tmp) / "report.html"
        html.write_text(page, encoding="utf-8")
        top = Image.open(shoot(chromium, html.resolve().as_uri(), Path(tmp) / "top.png", a.width, a.height))
        # the item browser alone: the same page with the part above it hidden
        only = Path(tmp) / "items.html"
        only.write_text(page.replace("</style>", "#top { display: none; }\n</style>", 1), encoding="utf-8")
        url = only.as_uri() + (f"#task={a.task}" if a.task else "")
        items = Image.open(shoot(chromium, url, Path(tmp) / "items.png", a.width, a.height))
        both = Image.new("RGB", (top.width + items.width + 12, max(top.height, items.height)), "#888888")
        both.paste(top.convert("RGB"), (0, 0))
        both.paste(items.convert("RGB"), (top.width + 12, 0))
        both = both.resize((both.width * 3 // 4, both.height * 3 // 4), Image.LANCZOS)
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        both.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)  # a third of the bytes
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) from a {summary['bytes'] / 1e6:.1f} MB report "
          f"of {summary['items']} items, {summary['media']} media")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
