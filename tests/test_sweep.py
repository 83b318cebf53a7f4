"""Sweeps and arm files: every docs/design.md §7 arm exists, sweeps expand into the right jobs with the right
dependencies, every job is validated by the trainer's own config before it is queued, and arms the trainer
does not implement are refused at `queue add` time with the missing keys named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradient_quarantine.experiments.jobrun import gq_argv
from gradient_quarantine.experiments.queue import JobQueue
from gradient_quarantine.experiments.sweep import (
    SweepError,
    SweepFile,
    add_sweep,
    expand,
    list_arms,
    list_sweeps,
    load_arm,
    load_sweep,
    validate,
)

# docs/design.md §7, arm by arm (the baselines included).
DESIGN_ARMS = [
    "vanilla", "route2b", "route2b_token", "random_v", "placebo", "route2b_frozen", "route2b_refresh1",
    "heldout_a", "heldout_b",
    "knob_shared", "knob_vgrad_span", "basis_r16", "basis_r32", "basis_r128", "teacher_0", "teacher_25",
    "teacher_50", "solve_orth", "erase", "monitor_penalty_gt", "monitor_penalty_weak", "monitor_screen_gt",
    "monitor_screen_weak", "inoculation", "adv_mod",
]
# The arms the method's claims rest on: these must always validate against the trainer's config.
CORE_ARMS = ["vanilla", "route2b", "route2b_token", "random_v", "placebo", "route2b_frozen", "heldout_a", "heldout_b"]


def _unsupported_arms() -> set[str]:
    """Arms whose files use a key the trainer's config does not (yet) have."""
    from gradient_quarantine.experiments.presets import valid_keys

    keys = valid_keys()
    return {a for a in DESIGN_ARMS if any(k not in keys for k in load_arm(a).set)}


def test_every_design_arm_has_a_file_that_loads() -> None:
    assert set(DESIGN_ARMS) <= set(list_arms())
    for name in list_arms():
        arm = load_arm(name)
        assert arm.description and arm.artifact in {"A2", "A3", "A5", "A7"}
    assert load_arm("monitor_penalty_gt").reads_labels and not load_arm("route2b").reads_labels
    assert load_arm("heldout_a").set["pair_modes"] and load_arm("random_v").set["routing.frout_from"] == "{run_dir:route2b}"


def test_unknown_arm_says_did_you_mean() -> None:
    with pytest.raises(SweepError, match="did you mean 'route2b'"):
        load_arm("route2")


def test_shipped_sweeps_expand_with_dependencies() -> None:
    assert {"demo", "paper", "paper_core"} <= set(list_sweeps())
    demo = expand(load_sweep("demo"))
    assert sorted(j.name for j in demo) == sorted(f"{a}_s{s}" for a in ("vanilla", "route2b", "random_v")
                                                  for s in (41, 42, 43))
    rv = next(j for j in demo if j.name == "random_v_s42")
    assert rv.refs == {"routing.frout_from": "route2b"} and rv.overrides["seed"] == 42 and rv.overrides["arm"] == "random_v"
    assert [j.seed for j in expand(load_sweep("demo"), seeds=[7])] == [7, 7, 7]
    paper = expand(load_sweep("paper"))
    assert {j.arm for j in paper} == set(DESIGN_ARMS)


def test_trainer_validates_every_job_and_names_missing_support() -> None:
    jobs = expand(load_sweep("paper"), seeds=[41])
    problems = validate(jobs)
    unsupported = _unsupported_arms()
    assert {n.removesuffix("_s41") for n in problems} == unsupported, problems
    assert not unsupported & set(CORE_ARMS)
    for arm in unsupported:
        msg = problems[f"{arm}_s41"]
        assert "needs trainer support that is missing: unknown config key(s)" in msg and load_arm(arm).description in msg
    assert validate(expand(load_sweep("demo"))) == {} and validate(expand(load_sweep("paper_core"))) == {}
    # an unknown key in an inline arm is named
    sw = SweepFile.model_validate({"name": "x", "preset": "demo", "seeds": [41],
                                   "arms": [{"name": "new_arm", "set": {"baseline.kind": "monitor_penalty"}}]})
    assert "baseline.kind" in validate(expand(sw))["new_arm_s41"]


def test_invalid_value_is_caught_before_queueing(tmp_path: Path) -> None:
    sw = SweepFile.model_validate({"name": "bad", "preset": "smoke", "seeds": [41],
                                   "arms": ["vanilla", {"arm": "route2b", "set": {"grpo.num_generations": 1}}]})
    q = JobQueue(tmp_path / "q.sqlite")
    with pytest.raises(SweepError, match="grpo.num_generations") as e:
        add_sweep(q, sw, runs_dir=tmp_path / "runs")
    assert "nothing was queued" in str(e.value) and q.jobs() == []


def test_skip_invalid_skips_dependants_too(tmp_path: Path) -> None:
    sw = SweepFile.model_validate({"name": "s", "preset": "smoke", "seeds": [41, 42],
                                   "arms": ["vanilla", {"arm": "route2b", "set": {"grpo.lr": -1}}, "random_v"]})
    q = JobQueue(tmp_path / "q.sqlite")
    ids, skipped = add_sweep(q, sw, runs_dir=tmp_path / "runs", skip_invalid=True)
    assert sorted(j.name for j in q.jobs()) == ["vanilla_s41", "vanilla_s42"]
    assert "route2b_s41" in skipped and "depends on route2b_s41" in skipped["random_v_s41"]


def test_queue_add_wires_random_v_to_route2b_of_its_seed(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    ids, _ = add_sweep(q, load_sweep("demo"), seeds=[41, 42], runs_dir=tmp_path / "runs", priority=3)
    jobs = {j.name: j for j in q.jobs()}
    for seed in (41, 42):
        rv, r2 = jobs[f"random_v_s{seed}"], jobs[f"route2b_s{seed}"]
        assert rv.deps == [r2.id]
        assert rv.spec["overrides"]["routing.frout_from"] == f"{{run_dir:job={r2.id}}}"
        assert rv.spec["preset"] == "demo" and rv.spec["overrides"]["seed"] == seed
    assert jobs["vanilla_s41"].priority == 4 and jobs["random_v_s41"].priority == 3  # entry bump on top of --priority


def test_reference_to_a_job_already_in_the_queue(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    only_rv = SweepFile.model_validate({"name": "rv", "preset": "demo", "seeds": [41], "arms": ["random_v"]})
    with pytest.raises(SweepError, match="add arm 'route2b' to the sweep"):
        add_sweep(q, only_rv, runs_dir=tmp_path / "runs")
    first = SweepFile.model_validate({"name": "r2", "preset": "demo", "seeds": [41], "arms": ["route2b"]})
    (r2,), _ = add_sweep(q, first, runs_dir=tmp_path / "runs")
    (rv,), _ = add_sweep(q, only_rv, runs_dir=tmp_path / "runs")
    assert q.get(rv).deps == [r2]


def test_suffixed_variants_and_precedence() -> None:
    sw = SweepFile.model_validate({
        "name": "v", "preset": "demo", "seeds": [41], "set": {"steps": 7, "grpo.lr": 0.1},
        "arms": [{"arm": "route2b", "suffix": "long", "set": {"steps": 200}},
                 {"arm": "random_v", "suffix": "long", "set": {"steps": 200}}, "route2b"],
    })
    jobs = {j.name: j for j in expand(sw, extra={"grpo.lr": 0.2})}
    assert set(jobs) == {"route2b_long_s41", "random_v_long_s41", "route2b_s41"}
    assert jobs["route2b_long_s41"].overrides["steps"] == 200 and jobs["route2b_s41"].overrides["steps"] == 7
    assert jobs["route2b_s41"].overrides["grpo.lr"] == 0.2  # queue add --set is strongest
    assert jobs["random_v_long_s41"].arm == "random_v"
    from gradient_quarantine.experiments.sweep import to_job_specs

    specs = {s.name: s for s in to_job_specs(list(jobs.values()))}
    order = list(jobs)
    # the long random-V follows the long route2b (same suffix), not the short one
    assert order[specs["random_v_long_s41"].after[0]] == "route2b_long_s41"
    with pytest.raises(Exception, match="listed twice"):
        expand(SweepFile.model_validate({"name": "d", "preset": "demo", "arms": ["vanilla", "vanilla"]}))


def test_cli_queue_add_dry_run_and_refusal(tmp_path: Path) -> None:
    import subprocess

    gq = gq_argv()
    db = tmp_path / "q.sqlite"
    dry = subprocess.run(gq + ["queue", "add", "paper", "--seeds", "41", "--dry-run", "--db", str(db)],
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    n_bad = len(_unsupported_arms())
    assert f"25 jobs, {n_bad} invalid (dry run: nothing queued)" in dry.stdout
    assert "random_v_s41: preset=paper after route2b" in dry.stdout
    refused = subprocess.run(gq + ["queue", "add", "paper", "--seeds", "41", "--db", str(db)],
                             capture_output=True, text=True, timeout=120)
    if n_bad:
        assert refused.returncode == 2 and "needs trainer support that is missing" in refused.stderr
        assert JobQueue(db).jobs() == []
    else:
        JobQueue(db)._conn().execute("DELETE FROM jobs")
    ok = subprocess.run(gq + ["queue", "add", "paper", "--seeds", "41", "--skip-invalid", "--db", str(db),
                              "--set", "steps=5"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and f"queued {25 - n_bad} jobs" in ok.stdout
    jobs = JobQueue(db).jobs()
    assert all(j.spec["overrides"]["steps"] == 5 for j in jobs)
    assert json.loads(json.dumps(jobs[0].spec))["preset"] == "paper"


def test_an_entry_can_run_on_its_own_seeds_and_headtohead_expands_valid():
    """`seeds` on an entry: its jobs use them (random-V's partner exists for each); `--seeds` overrides every
    entry. The headtohead sweep: 5 seeds for vanilla / route2b / random-V, 3 for the rest, all valid."""
    from gradient_quarantine.experiments.sweep import expand, load_sweep, validate

    jobs = expand(load_sweep("headtohead"))
    by = {}
    for j in jobs:
        by.setdefault(j.label, []).append(j.seed)
    assert by["vanilla"] == by["route2b"] == by["random_v"] == [41, 42, 43, 44, 45]
    assert by["clean"] == by["monitor_screen_det_heldout_a"] == [41, 42, 43]
    assert len(jobs) == 45 and validate(jobs) == {}
    one = expand(load_sweep("headtohead"), seeds=[41])
    assert {j.seed for j in one} == {41} and len(one) == 13
