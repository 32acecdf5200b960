"""PNG plots for `flex-judge compare` (matplotlib, Agg backend; no display needed).

Each function takes plain lists and a path, writes one PNG and returns the path.
NaN values (undefined agreement / correlation, missing metrics) are shown as missing: grey
cells / no bar, annotated "n/a", never as zero.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def agreement_heatmap(rows: Sequence[str], cols: Sequence[str], values: Sequence[Sequence[Optional[float]]],
                      path: Path, notes: Optional[Sequence[Sequence[str]]] = None,
                      title: str = "judge agreement") -> Path:
    """rows x cols cells in [0, 1] (e.g. tasks x judge pairs), each annotated with its value
    and an optional note (e.g. Cohen's kappa)."""
    import numpy as np

    plt = _plt()
    data = np.array([[v if _finite(v) else np.nan for v in r] for r in values], dtype=float)
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(cols), 1.2 + 0.55 * len(rows)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    im = ax.imshow(np.ma.masked_invalid(data), vmin=0, vmax=1, cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=list(rows), fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            v = data[i, j]
            text = "n/a" if not np.isfinite(v) else f"{v:.2f}"
            if notes is not None and notes[i][j]:
                text += f"\n{notes[i][j]}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="black" if not np.isfinite(v) or v > 0.5 else "white")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def score_scatter(panels: Sequence[tuple[str, Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
                  path: Path) -> Path:
    """One panel per (title, x, y): judge A's score against judge B's on the same (item, run)."""
    plt = _plt()
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (title, x, y) in zip(axes[0], panels):
        ax.scatter(x, y, s=14, alpha=0.6)
        finite = [v for v in list(x) + list(y) if _finite(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no score tasks", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def benchmark_bars(groups: Sequence[str], series: Sequence[str], values: Sequence[Sequence[Optional[float]]],
                   cis: Sequence[Sequence[Optional[Sequence[float]]]], path: Path, ylabel: str = "headline metric",
                   lower_is_better: Optional[Sequence[bool]] = None) -> Path:
    """Grouped bars: one group per benchmark (task/metric), one bar per judge, 95% CI whiskers.
    ``values[g][s]`` and ``cis[g][s]`` = [lo, hi] or None. A missing / NaN value gets no bar
    and an "n/a" mark (never a zero bar); groups where lower is better are labelled so."""
    import numpy as np

    plt = _plt()
    lower = list(lower_is_better or [False] * len(groups))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(groups) * max(1, len(series)) / 2, 3.8))
    x = np.arange(len(groups))
    for s, name in enumerate(series):
        vals = np.array([values[g][s] if _finite(values[g][s]) else np.nan for g in range(len(groups))])
        ok = np.isfinite(vals)
        lo = [vals[g] - cis[g][s][0] if cis[g][s] and ok[g] else 0 for g in range(len(groups))]
        hi = [cis[g][s][1] - vals[g] if cis[g][s] and ok[g] else 0 for g in range(len(groups))]
        pos = x + (s - (len(series) - 1) / 2) * width
        bars = ax.bar(pos[ok], vals[ok], width, label=name,
                      yerr=np.clip(np.array([lo, hi])[:, ok], 0, None), capsize=3)
        for p in pos[~ok]:
            ax.text(p, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90,
                    color=bars.patches[0].get_facecolor() if bars.patches else "grey")
    labels = [f"{g}\n(lower is better)" if low else g for g, low in zip(groups, lower)]
    ax.set_xticks(x, labels=labels, rotation=25, ha="right", fontsize=7)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def paired_differences(rows: Sequence[str], diffs: Sequence[Optional[float]],
                       cis: Sequence[Optional[Sequence[float]]], notes: Sequence[str], path: Path,
                       title: str = "A − B on the headline metric (paired 95% CI)") -> Path:
    """Forest plot: one line per (task, judge pair), the difference as a dot with its CI as a
    whisker, a line at 0, each line annotated (e.g. the verdict). NaN: no dot, "n/a"."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.38 * max(1, len(rows))))
    for i, (d, ci, note) in enumerate(zip(diffs, cis, notes)):
        y = len(rows) - 1 - i
        if _finite(d):
            lo, hi = (ci if ci and all(_finite(v) for v in ci) else (d, d))
            ax.plot([lo, hi], [y, y], color="tab:blue", lw=1.5)
            ax.plot([d], [y], "o", color="tab:blue", ms=4)
        ax.annotate("n/a" if not _finite(d) else note, (1.01, y), xycoords=("axes fraction", "data"),
                    va="center", fontsize=7)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)), labels=list(reversed(list(rows))), fontsize=7)
    ax.set_ylim(-0.7, max(1, len(rows)) - 0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
