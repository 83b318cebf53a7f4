"""Controls that can fail (issue 12): the random-V partner matched step by step, the per-token band calibrated
on per-token cosines, the gate on held-out pairs, on the tiny model and the smoke preset.

Router-level properties (the ramp-shaped matched gate, dropped_frac, the vgrad_span refresh of Adam moments) are
in tests/test_routing.py; the report's grouping, duplicates and A3 in tests/test_report.py.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.experiments.presets import build_config  # noqa: E402
from gradient_quarantine.io import append_jsonl  # noqa: E402


def _run(tmp_path, sets, setup=False):
    from gradient_quarantine.train.rundir import RunDir
    from gradient_quarantine.train.trainer import Run

    cfg = build_config("smoke", [*sets, f"run.cache_dir={tmp_path / 'cache'}", "run.progress=false"]).resolved()
    r = Run(cfg, RunDir.create(tmp_path / "runs", cfg.name))
    if setup:
        r.setup()
    return r


# ------------------------------------------------------------------------------- random-V, step by step


def _partner(tmp_path, frouts, widths=None):
    d = tmp_path / "0001_route2b_s41"
    d.mkdir(parents=True)
    for t, fr in enumerate(frouts, 1):
        w = widths[t - 1] if widths else 0.3
        append_jsonl(d / "metrics.jsonl", {"step": t, "routing/frout": fr, "routing/band_width": w,
                                           "routing/cos_p10": -0.1, "routing/cos_p90": 0.5})  # fmt: skip
    return d


def test_random_v_targets_its_partners_frout_at_each_step(tmp_path):
    """The committed route2b run routed 0.00 to 0.815 over its steps; its random-V partner must follow that
    series, not its mean, and copy the ramp's width relative to the cosine spread."""
    partner = _partner(tmp_path, [0.0, 0.815, 0.43], widths=[0.3, 0.6, -0.1])
    r = _run(tmp_path, ["routing.direction=random", f"routing.frout_from={partner}"])
    sched = r._frout_schedule()
    assert [sched[t][0] for t in (1, 2, 3)] == [0.0, 0.815, 0.43]
    assert sched[1][1] == pytest.approx(0.3 / 0.6) and sched[2][1] == pytest.approx(0.6 / 0.6)
    assert sched[3][1] is None  # a band that separates nothing has no ramp to copy: the hard cut
    # a constant target (no partner): the same every step, hard cut
    c = _run(tmp_path / "c", ["routing.direction=random", "routing.frout_target=0.2"])._frout_schedule()
    assert set(c.values()) == {(0.2, None)} and sorted(c) == [1, 2, 3]


def test_random_v_refuses_a_partner_shorter_than_itself(tmp_path):
    partner = _partner(tmp_path, [0.1, 0.2])
    r = _run(tmp_path, ["routing.direction=random", f"routing.frout_from={partner}"])
    with pytest.raises(ValueError, match=r"no routing/frout for step\(s\) \[3\]"):
        r._frout_schedule()
