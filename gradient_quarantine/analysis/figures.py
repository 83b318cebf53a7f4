"""Figures of the report (matplotlib, Agg backend: no display needed). Each PNG is written with the exact
numbers it plots beside it as CSV, so a figure can be re-drawn or checked without re-reading the runs.

    >>> dynamics_figure(curves, out_dir / "a1_dynamics_demo_30steps", title="...")   # .png + .csv
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gradient_quarantine.analysis.tables import Table  # noqa: E402
from gradient_quarantine.io import atomic_write_bytes, atomic_write_text  # noqa: E402

# Fixed colours per arm so every figure reads the same way; other arms cycle through tab10.
ARM_COLOURS = {
    "vanilla": "#555555",
    "route2b": "#1f77b4",
    "route2b_token": "#17becf",
    "random_v": "#d62728",
    "placebo": "#ff7f0e",
    "route2b_frozen": "#9467bd",
    "heldout_a": "#2ca02c",
    "heldout_b": "#8c564b",
}


def colour(arm: str, i: int = 0) -> str:
    return ARM_COLOURS.get(arm) or plt.get_cmap("tab10")((i + 3) % 10)


@dataclass
class Curve:
    """One arm's series over steps: a (seeds x steps) matrix with NaN where a seed has no point."""

    label: str
    arm: str
    steps: np.ndarray  # (T,)
    by_seed: dict[int, np.ndarray]  # seed -> (T,)
    markers: list[tuple[int, float, str]] = field(default_factory=list)  # (seed, step, text): e.g. collapse

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from gradient_quarantine.analysis.stats import band

        if not self.by_seed:
            z = np.full(len(self.steps), np.nan)
            return z, z, np.zeros(len(self.steps), dtype=int)
        return band([self.by_seed[s] for s in sorted(self.by_seed)])


def _save(fig: plt.Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _write_csv(table: Table, stem: Path) -> Path:
    path = stem.with_suffix(".csv")
    atomic_write_text(path, table.to_csv())
    return path


def dynamics_figure(panels: dict[str, list[Curve]], stem: Path, title: str, *, per_seed: bool = False,
                    ylabels: dict[str, str] | None = None) -> list[Path]:
    """Panels side by side (or stacked when > 2), one line per arm: the mean over seeds with a ±SEM band
    (no band where n < 2); `per_seed` also draws each seed thinly. Markers (collapse) as vertical lines."""
    n = len(panels)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.3 * nrows + 0.4), squeeze=False, sharex=True,
                             layout="constrained")
    table = Table(["panel", "arm", "step", "n", "mean", "sem"])
    for ax, (panel, curves) in zip(axes.flat, panels.items(), strict=False):
        for i, c in enumerate(curves):
            col = colour(c.arm, i)
            mean, sem, cnt = c.stats()
            nseeds = len(c.by_seed)
            ok = np.isfinite(mean)
            ax.plot(c.steps[ok], mean[ok], color=col, lw=2, marker="o" if ok.sum() < 12 else None, ms=3,
                    label=f"{c.label} (n={nseeds})")
            band_ok = ok & np.isfinite(sem)
            if band_ok.any():
                ax.fill_between(c.steps[band_ok], (mean - sem)[band_ok], (mean + sem)[band_ok], color=col, alpha=0.2,
                                lw=0)
            if per_seed:
                for s in sorted(c.by_seed):
                    y = c.by_seed[s]
                    k = np.isfinite(y)
                    ax.plot(c.steps[k], y[k], color=col, lw=0.7, alpha=0.5)
            for j, (seed, step, text) in enumerate(c.markers):
                ax.axvline(step, color=col, ls="--", lw=1)
                ax.annotate(f"{text} s{seed}", xy=(step, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(3, -10 - 10 * j), textcoords="offset points", fontsize=7, color=col)
            for t, m, s, k in zip(c.steps, mean, sem, cnt, strict=True):
                if np.isfinite(m):
                    table.csv_rows.append({"panel": panel, "arm": c.label, "step": int(t), "n": int(k),
                                           "mean": float(m), "sem": float(s)})
            for seed in sorted(c.by_seed):
                for t, y in zip(c.steps, c.by_seed[seed], strict=True):
                    if np.isfinite(y):
                        table.csv_rows.append({"panel": panel, "arm": c.label, "step": int(t), "seed": seed,
                                               "value": float(y)})
        ax.set_title(panel, fontsize=10)
        ax.set_ylabel((ylabels or {}).get(panel, "rate"))
        ax.grid(alpha=0.3)
        if panel.startswith("deploy"):
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7, loc="best")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[:n]):
        if i >= n - ncols:  # bottom row only: the axes share x
            ax.set_xlabel("training step")
    fig.suptitle(title, fontsize=10)
    return [_save(fig, stem.with_suffix(".png")), _write_csv(table, stem)]


def bars_figure(groups: Sequence[str], series: list[tuple[str, str, list[float], list[float], list[bool]]],
                stem: Path, title: str, ylabel: str = "deploy hack rate") -> list[Path]:
    """Grouped bars: x = `groups` (modes); each series (label, arm, means, sems, hatched) one bar per group.
    Hatched bars mark held-out modes (not in that arm's pair set)."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 3.6), layout="constrained")
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    table = Table(["series", "group", "mean", "sem", "held_out"])
    for i, (label, arm, means, sems, hatched) in enumerate(series):
        pos = x - 0.4 + width * (i + 0.5)
        m = np.array(means, dtype=float)
        e = np.array([v if math.isfinite(v) else 0.0 for v in sems])
        bars = ax.bar(pos, np.nan_to_num(m), width, yerr=e, color=colour(arm, i), alpha=0.85, capsize=2,
                      label=label, edgecolor="black", linewidth=0.5)
        for b, h in zip(bars, hatched, strict=True):
            if h:
                b.set_hatch("//")
        for g, mv, sv, h in zip(groups, means, sems, hatched, strict=True):
            table.csv_rows.append({"series": label, "group": g, "mean": mv, "sem": sv, "held_out": h})
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title + "\n(hatched: mode held out of that arm's pair set; error bars: ±SEM over seeds)", fontsize=9)
    return [_save(fig, stem.with_suffix(".png")), _write_csv(table, stem)]
