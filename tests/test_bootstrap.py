"""analysis/stats.py `hierarchical_bootstrap` against a hand computation: the observed difference, the support and
the probabilities of the bootstrap distribution of a fixture small enough to enumerate, and its edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradient_quarantine.analysis.stats import hierarchical_bootstrap


def test_one_seed_two_prompts_matches_the_enumerated_distribution():
    """One seed, prompt differences (arm - ref) of 0.5 and -0.25: a draw picks the seed, then 2 prompts with
    replacement, so the mean difference is 0.5 (p = 1/4), 0.125 (1/2) or -0.25 (1/4). The percentile interval
    at alpha 0.6 (the 30th and 70th percentiles) is [0.125, 0.125], and P(draw <= 0) = 1/4: p = 2 * 1/4 = 0.5."""
    arm = {41: {"a": 0.75, "b": 0.25}}
    ref = {41: {"a": 0.25, "b": 0.5, "c": 1.0}}  # prompt c has no arm value: left out
    bt = hierarchical_bootstrap(arm, ref, n_boot=40_000, alpha=0.6, seed=1)
    assert bt.delta == pytest.approx((0.5 - 0.25) / 2)
    assert (bt.n_seeds, bt.n_prompts) == (1, 2)
    assert bt.lo == pytest.approx(0.125) and bt.hi == pytest.approx(0.125)  # the middle half is all 0.125
    assert bt.p == pytest.approx(0.5, abs=0.02)


def test_two_seeds_by_hand_enumeration():
    """Two seeds with one prompt each (differences 0.2 and -0.1): prompt resampling is trivial, the seed level
    gives (0.2+0.2)/2, (0.2-0.1)/2 twice, (-0.1-0.1)/2 with probabilities 1/4, 1/2, 1/4."""
    arm = {1: {"p": 0.7}, 2: {"p": 0.1}}
    ref = {1: {"p": 0.5}, 2: {"p": 0.2}}
    bt = hierarchical_bootstrap(arm, ref, n_boot=40_000, alpha=0.1, seed=3)
    values = sorted({round((x + y) / 2, 9) for x, y in itertools.product([0.2, -0.1], repeat=2)})
    assert values == [-0.1, 0.05, 0.2]
    assert bt.delta == pytest.approx(0.05)
    assert bt.lo == pytest.approx(-0.1) and bt.hi == pytest.approx(0.2)
    assert bt.p == pytest.approx(0.5, abs=0.02)  # P(draw <= 0) = 1/4


def test_edges_and_determinism():
    assert hierarchical_bootstrap({1: {"a": 1.0}}, {2: {"a": 0.0}}) is None  # no shared seed
    assert hierarchical_bootstrap({1: {"a": 1.0}}, {1: {"b": 0.0}}) is None  # no shared prompt
    rng = np.random.default_rng(0)
    arm = {s: {str(p): float(rng.random()) for p in range(24)} for s in (41, 42, 43)}
    ref = {s: {str(p): float(rng.random()) for p in range(24)} for s in (41, 42, 43)}
    a, b = hierarchical_bootstrap(arm, ref), hierarchical_bootstrap(arm, ref)
    assert a == b and a.lo <= a.delta <= a.hi and 0.0 <= a.p <= 1.0
    same = hierarchical_bootstrap(arm, arm)
    assert same.delta == 0.0 and same.lo == same.hi == 0.0 and same.p == 1.0


def test_a2_reports_the_bootstrap_from_deploy_samples(tmp_path):
    """A2's bootstrap columns are `hierarchical_bootstrap` of the runs' per-prompt hack rates read from
    deploy_samples.jsonl (vanilla and route2b, seeds 41 and 42, 4 prompts x 2 samples)."""
    import csv
    import json

    from test_report import _modes_of, write_run

    from gradient_quarantine.analysis.report import build_report

    rates = {("vanilla", 41): [1, 1, 0.5, 0], ("vanilla", 42): [0.5, 0.5, 1, 0],
             ("route2b", 41): [0, 0.5, 0.5, 0], ("route2b", 42): [0.5, 0, 0, 0]}  # fmt: skip
    job = 0
    for (arm, seed), rs in rates.items():
        job += 1
        path = write_run(tmp_path / "runs", job, arm, seed, _modes_of(0.3, 0.1))
        rows = [{"variant": "deploy", "step": 10, "problem_id": f"p{i}", "mode": "exit_code", "sample": k,
                 "hack": k < round(2 * r), "solve": False, "attempt": False, "format": True}
                for i, r in enumerate(rs) for k in range(2)]  # fmt: skip
        (path / "deploy_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_report([tmp_path / "runs"], tmp_path / "report")
    with open(tmp_path / "report" / "a2_main.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["arm"] == "route2b")
    per = {k: {f"p{i}": float(v) for i, v in enumerate(rs)} for k, rs in rates.items()}
    want = hierarchical_bootstrap({s: per[("route2b", s)] for s in (41, 42)},
                                  {s: per[("vanilla", s)] for s in (41, 42)})  # fmt: skip
    assert float(row["hack_boot_lo"]) == pytest.approx(want.lo) and float(row["hack_boot_hi"]) == pytest.approx(want.hi)
    assert float(row["hack_boot_p"]) == pytest.approx(want.p) and int(row["hack_boot_n_prompts"]) == 4
    assert want.delta == pytest.approx(np.mean([(0 - 1 + 0 - 0.5) / 4, (0 - 0.5 - 1 + 0) / 4]))
