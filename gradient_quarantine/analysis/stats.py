"""Statistics over seeds: mean +- SEM, and the paired test of an arm against vanilla across seeds.

    >>> s = summarize([0.10, 0.20, 0.30])               # Summary(mean=0.2, sem=0.0577..., n=3)
    >>> t = paired_test({41: 0.1, 42: 0.2, 43: 0.2}, {41: 0.4, 42: 0.5, 43: 0.3})
    >>> t.delta, t.p, t.n, t.alpha                       # mean(arm - vanilla) over shared seeds, two-sided p

Why paired: every arm runs the same seeds, and a seed fixes the prompt order and the sampling stream, so
seed-to-seed variation is shared between arms; pairing by seed removes it (scipy.stats.ttest_rel, i.e. a
one-sample t-test of the per-seed differences, df = n - 1). With n = 3 seeds the test has little power; the
tables state n and alpha beside every p and never hide a row for lacking significance. p-values are not
corrected for multiple comparisons; the tables say how many tests they hold.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from gradient_quarantine.seeding import bootstrap_rng

ALPHA = 0.05
MIN_SEEDS = 3  # fewer than this is flagged on every table


@dataclass(frozen=True)
class Summary:
    """Mean and standard error of the mean over seeds (SEM = sample std (ddof=1) / sqrt(n); NaN if n < 2)."""

    mean: float
    sem: float
    n: int

    def fmt(self, digits: int = 3) -> str:
        if self.n == 0:
            return "n/a"
        if self.n < 2 or not math.isfinite(self.sem):
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} ± {self.sem:.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return Summary(float("nan"), float("nan"), 0)
    sem = float(stats.sem(x, ddof=1)) if x.size >= 2 else float("nan")
    return Summary(float(x.mean()), sem, int(x.size))


@dataclass(frozen=True)
class PairedTest:
    """arm - reference over the seeds both have. `p` is two-sided; NaN when the test is undefined."""

    delta: float  # mean of the per-seed differences
    sem: float  # SEM of the per-seed differences
    t: float
    p: float
    n: int  # number of shared seeds
    seeds: tuple[int, ...]
    alpha: float = ALPHA
    note: str = ""

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p) and self.p < self.alpha

    def fmt_p(self) -> str:
        if not math.isfinite(self.p):
            return f"n/a ({self.note})" if self.note else "n/a"
        return f"{self.p:.3g}"


def paired_test(arm: Mapping[int, float], ref: Mapping[int, float], alpha: float = ALPHA) -> PairedTest:
    """Paired t-test of arm vs ref over their shared seeds (scipy.stats.ttest_rel)."""
    seeds = tuple(sorted(s for s in arm if s in ref and _ok(arm[s]) and _ok(ref[s])))
    a = np.array([arm[s] for s in seeds], dtype=float)
    b = np.array([ref[s] for s in seeds], dtype=float)
    n = len(seeds)
    if n == 0:
        return PairedTest(float("nan"), float("nan"), float("nan"), float("nan"), 0, seeds, alpha, "no shared seeds")
    d = a - b
    delta = float(d.mean())
    if n < 2:
        return PairedTest(delta, float("nan"), float("nan"), float("nan"), n, seeds, alpha, "n<2")
    sem = float(stats.sem(d, ddof=1))
    if float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max())):
        # Identical differences (up to float noise: rates are ratios of counts): the t statistic is undefined
        # (0/0 or x/0), and scipy would print a precision-loss warning and a meaningless p; say so instead.
        return PairedTest(delta, sem, float("nan"), float("nan"), n, seeds, alpha, "zero variance of differences")
    res = stats.ttest_rel(a, b)
    return PairedTest(delta, sem, float(res.statistic), float(res.pvalue), n, seeds, alpha)


@dataclass(frozen=True)
class BootstrapTest:
    """arm - reference by a hierarchical bootstrap: seeds resampled, then prompts within each drawn seed (paired:
    the same prompt's difference), `n_boot` draws. `delta` is the observed mean difference, `lo` / `hi` the
    percentile interval at 1 - alpha, `p` two-sided (twice the smaller tail share at 0, at most 1)."""

    delta: float
    lo: float
    hi: float
    p: float
    n_seeds: int
    n_prompts: int  # prompts per seed (shared by both arms), smallest over seeds
    n_boot: int

    def fmt_ci(self) -> str:
        return f"[{self.lo:+.3f}, {self.hi:+.3f}]"


def hierarchical_bootstrap(
    arm: Mapping[int, Mapping[str, float]],
    ref: Mapping[int, Mapping[str, float]],
    n_boot: int = 10_000,
    alpha: float = ALPHA,
    seed: int = 0,
) -> BootstrapTest | None:
    """`arm[seed][prompt]`, `ref[seed][prompt]`: per-prompt rates (the mean over a prompt's samples) of two arms on
    the same eval prompts. Each draw resamples the shared seeds with replacement, then within each drawn seed its
    shared prompts with replacement, and averages the paired differences (each seed weighted alike). The seed level
    answers "would another seed differ" (as the paired test does), the prompt level "would other prompts of this
    kind differ": with few seeds the interval is mostly the prompts'. None without a shared seed and prompt.
    Deterministic (`seed`)."""
    seeds = sorted(s for s in arm if s in ref)
    diffs = []
    for s in seeds:
        prompts = sorted(p for p in arm[s] if p in ref[s])
        if prompts:
            diffs.append(np.array([arm[s][p] - ref[s][p] for p in prompts], dtype=float))
    if not diffs:
        return None
    rng = bootstrap_rng(seed)
    delta = float(np.mean([d.mean() for d in diffs]))
    S = len(diffs)
    picked = rng.integers(0, S, size=(n_boot, S))  # the seeds drawn at each of the S positions of each draw
    rows = np.arange(n_boot)
    draws = np.zeros(n_boot)
    for j in range(S):  # each position resamples its seed's prompts afresh (a seed drawn twice: two resamples)
        means = np.stack([d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1) for d in diffs], 1)  # (B, S)
        draws += means[rows, picked[:, j]]
    draws /= S
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(float((draws <= 0).mean()), float((draws >= 0).mean())))
    return BootstrapTest(delta, float(lo), float(hi), p, len(diffs), min(len(d) for d in diffs), n_boot)


def band(values_by_seed: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position over seeds: (mean, sem, n) for curves (NaN-aware; SEM NaN where n < 2)."""
    x = np.asarray(values_by_seed, dtype=float)  # (n_seeds, n_points)
    n = np.sum(np.isfinite(x), axis=0)
    # Columns with 0 or 1 finite values are expected (a seed that stopped early, a single seed): NaN there,
    # without numpy's empty-slice / ddof warnings.
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0) if x.size else np.array([])
        sd = np.nanstd(x, axis=0, ddof=1)
    sem = np.where(n >= 2, sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, sem, n


def _ok(v: float | None) -> bool:
    return v is not None and math.isfinite(v)
