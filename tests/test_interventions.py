"""Interventions as plug-ins (train/intervention.py): every shipped arm maps to one intervention class, which says
whether the knob trains and whether v_grad is needed exactly as the arm's config does; the hooks a class does not
override leave the step as plain GRPO makes it."""

from __future__ import annotations

import pytest

from gradient_quarantine.experiments.presets import build_config
from gradient_quarantine.experiments.sweep import list_arms, load_arm
from gradient_quarantine.train.intervention import Intervention, Vanilla
from gradient_quarantine.train.run_setup import intervention_class


@pytest.mark.parametrize("arm", list_arms())
def test_every_arm_is_one_intervention(arm):
    # a partner run (frout_from: "{run_dir:route2b}") is matched by a constant target here
    sets = [f"{k}={v}" if "{" not in str(v) else "routing.frout_target=0.3" for k, v in load_arm(arm).set.items()]
    cfg = build_config("smoke", sets).resolved()
    cls = intervention_class(cfg)
    assert issubclass(cls, Intervention)
    want = ("erase" if cfg.routing.action == "erase" else "route2b") if cfg.method == "route2b" else (
        "vanilla" if cfg.baseline.kind == "none" else
        "monitor_detector" if cfg.baseline.detector_monitor else cfg.baseline.kind)  # fmt: skip
    assert cls.name == want
    assert cls.trains_knob == (cfg.method == "route2b")  # the knob trains for route2b (and erase) only
    assert cls.uses_direction == (cfg.method == "route2b" or cfg.baseline.uses_direction)


def test_vanilla_changes_nothing():
    from gradient_quarantine.substrate.problems import load_problems
    from gradient_quarantine.substrate.prompts import render_prompt
    from gradient_quarantine.substrate.types import Mode, Verdict
    from gradient_quarantine.train.step import StepRollouts

    p = load_problems("builtin")[0]
    iv = Vanilla()
    assert iv.prompt(p, Mode.EXIT_CODE) == render_prompt(p, Mode.EXIT_CODE)
    verdicts = [Verdict(format_ok=True, gt_pass=False, flawed_pass=f, hack=f, attempted=f, reward=3.5 * f + 0.5,
                        reason="") for f in (True, False)]  # fmt: skip
    rows = StepRollouts(["a", "b"], ["exit_code"] * 2, ["x", "y"], ["c", "d"], [None, "hack"], verdicts)
    assert iv.reward(rows, step=3) == ([v.reward for v in verdicts], {})
    batch = {"advantages": object()}
    assert iv.advantages(None, batch) == {} and set(batch) == {"advantages"}
    assert iv.backward(1, lambda: "loss") == ("loss", None)
    assert iv.metrics() == {} and not iv.trains_knob and not iv.uses_direction
