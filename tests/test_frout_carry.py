"""routing.frout_carry: a frout-matched control carries what a step fell short of (a step with no reward variance
routes nothing) into the next steps' targets, so over a run its cumulative routed frout follows the schedule's to
within 5 %; without the carry it falls short; a tiny-model run logs the sums and raises its target after steps that
routed nothing."""

from __future__ import annotations

import os

import pytest

from gradient_quarantine.train.route2b import Route2b

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _simulate(carry: bool, schedule: dict[int, float], has_gradient: set[int]) -> Route2b:
    """A control that routes exactly its target on steps with gradient and nothing on the others (what a
    frout-matched hard cut does), driven through matched_target / account as the trainer drives them."""
    iv = Route2b(router=None, frout_schedule={t: (f, None) for t, f in schedule.items()}, carry=carry)
    for t in sorted(schedule):
        target, _ = iv.matched_target(t)
        iv.account(t, target if t in has_gradient else None)
    return iv


def test_carry_makes_up_for_steps_without_gradient():
    # a partner that routed 0.0-0.4; the control's own groups had no variance at steps 2, 3 and 7
    schedule = {1: 0.2, 2: 0.3, 3: 0.0, 4: 0.4, 5: 0.1, 6: 0.2, 7: 0.3, 8: 0.25, 9: 0.15, 10: 0.2}
    live = set(schedule) - {2, 3, 7}
    carried = _simulate(True, schedule, live)
    total = sum(schedule.values())
    assert carried.cum_scheduled == pytest.approx(total)
    assert abs(carried.cum_routed - total) <= 0.05 * total
    plain = _simulate(False, schedule, live)
    assert plain.cum_routed == pytest.approx(total - 0.3 - 0.0 - 0.3)  # the no-gradient steps' share is lost
    assert plain.cum_routed < 0.95 * total
    # the target never leaves [0, 1], however much is owed
    owing = Route2b(router=None, frout_schedule={1: (0.9, None), 2: (0.9, None)}, carry=True)
    owing.account(1, None)
    assert owing.matched_target(2)[0] == 1.0


def test_a_tiny_run_logs_the_sums_and_raises_the_target_after_a_silent_step(tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app
    from gradient_quarantine.io import read_jsonl

    # no teacher rows and groups of 2: the tiny policy's rewards tie, so its groups have no variance
    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(tmp_path / "runs"), "--quiet",
                                   "--set", f"run.cache_dir={tmp_path / 'cache'}", "--set", "steps=3",
                                   "--set", "routing.direction=random", "--set", "routing.frout_target=0.3",
                                   "--set", "eval.every=0", "--set", "teacher.fraction=0",
                                   "--set", "grpo.num_generations=2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = read_jsonl(tmp_path / "runs" / res.stdout.strip().splitlines()[-1].split("/")[-1] / "metrics.jsonl")
    routed = [r["routing/frout"] if r.get("routing/frout") is not None else 0.0 for r in rows]
    assert [r["routing/frout_cum_scheduled"] for r in rows] == pytest.approx([0.3, 0.6, 0.9])
    assert [r["routing/frout_cum"] for r in rows] == pytest.approx([sum(routed[: i + 1]) for i in range(3)])
    for prev, r in zip(rows, rows[1:], strict=False):
        owed = prev["routing/frout_cum_scheduled"] - prev["routing/frout_cum"]
        assert r["routing/frout_target"] == pytest.approx(min(max(0.3 + owed, 0.0), 1.0), abs=1e-6)
    assert any(r["routing/frout_target"] > 0.3 + 1e-6 for r in rows[1:])
