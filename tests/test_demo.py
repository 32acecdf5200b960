"""The README's main command end to end: tiny judges trained on the bundled traces, evaluated with
the real lmms-eval CLI on the bundled tasks, collected into the leaderboard."""
import json
import subprocess
import sys


def test_demo_trains_evaluates_and_tabulates(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "flex_judge.cli", "demo", "--out", str(out), "--max-new-tokens", "24"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for family in ("vl", "omni"):
        log = [json.loads(x) for x in (out / f"judge-{family}" / "train_log.jsonl").read_text().splitlines()]
        losses = [row["loss"] for row in log if "loss" in row]
        assert len(losses) >= 10 and sum(losses[-3:]) / 3 < 0.5 * losses[0]  # it learned something
        assert (out / f"judge-{family}" / "model" / "config.json").exists()
    board = json.loads((out / "leaderboard" / "leaderboard.json").read_text())
    rows = {r["label"]: r for s in board["sections"] for r in s["rows"] if r["kind"] != "paper"}
    assert {"tiny-vl-judge", "tiny-omni-judge"} <= set(rows)
    # demo runs cap the output and add the training prefix: flagged, never mixed with protocol runs
    assert all(r["flagged"] for r in rows.values())
    assert "tiny-vl-judge †" in (out / "leaderboard" / "leaderboard.md").read_text()
