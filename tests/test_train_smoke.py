"""End-to-end smoke runs (tiny model, built-in problems, 3 steps, a few seconds each): every arm writes a complete
run directory as docs/run_directory.md specifies, and the CLI works as documented."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.experiments.presets import build_config  # noqa: E402
from gradient_quarantine.io import read_jsonl  # noqa: E402
from gradient_quarantine.substrate.prompts import SYSTEM_PROMPT  # noqa: E402
from gradient_quarantine.train.config import MODE_NAMES  # noqa: E402

ARMS = {
    "vanilla": ["method=vanilla"],
    "route2b": [],
    "route2b_token": ["routing.gate=token"],
    "random_v": ["routing.direction=random", "routing.frout_target=0.3"],
    "placebo": ["routing.direction=placebo", "routing.frout_target=0.3"],
    "frozen": ["routing.refresh_every=0"],
    "heldout": ["pair_modes=[overwrite_tests, visible_tests]"],
    "knob_shared": ["adapter.knob=shared"],
    "knob_vgrad_span": ["adapter.knob=vgrad_span"],
    "erase": ["routing.action=erase"],
    "no_teacher": ["teacher.fraction=0"],
    "adv_floor_microbatch": ["grpo.adv_std_floor=0.5", "grpo.micro_batch=4"],
    "pairs_build_top_layer": ["routing.pairs=build", "routing.pairs_per_mode=2", "adapter.layers=[1,2]"],
}
# the fast suite runs these; every other arm is marked slow (same code paths, `--runslow` runs them all)
FAST = {"vanilla", "route2b", "route2b_token", "adv_floor_microbatch"}
EVAL_KEYS = {"hack", "solve", "attempt", "n", "n_prompts", "by_mode"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared: the base-model eval is computed once


def check_run_dir(path, cfg):
    """Every file of the contract, with the keys the report reads."""
    rec = json.loads((path / "config.json").read_text())
    for key in ("name", "arm", "seed", "preset", "steps", "model", "pair_modes", "git_commit", "config_hash"):
        assert key in rec
    assert rec["config_hash"] == cfg.config_hash()
    rows = read_jsonl(path / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, cfg.steps + 1))
    for r in rows:
        for key in ("reward/mean", "reward/std", "train/hack_rate", "train/solve_rate", "train/attempt_rate",
                    "train/format_rate", "grad/norm_main", "grad/norm_knob", "policy/logp_mean", "policy/entropy",
                    "perf/step_time_s", "perf/tokens_per_s", "health/collapse"):  # fmt: skip
            assert key in r, key
        # the step's time split: sampling, grading and forward + backward are each timed, inside the step's time
        parts = [r["perf/generate_s"], r["perf/grade_s"], r["perf/backward_s"]]
        assert all(t > 0 for t in parts) and sum(parts) <= r["perf/step_time_s"], (parts, r["perf/step_time_s"])
        # the process's own CPU over the step: user time is spent, and no more than every core for the step's time
        assert r["perf/user_s"] > 0 and r["perf/sys_s"] >= 0 and r["perf/minor_faults"] >= 0
        assert r["perf/user_s"] + r["perf/sys_s"] <= r["perf/step_time_s"] * (os.cpu_count() or 1) + 0.05
        if cfg.method == "route2b":
            for key in ("routing/frout", "routing/band_lower", "routing/band_upper", "routing/band_width",
                        "routing/cos_p10", "routing/cos_p50", "routing/cos_p90", "routing/gate_at_0",
                        "routing/gate_at_1", "routing/gate_between", "routing/resid_cos",
                        "routing/dropped_frac"):  # fmt: skip
                assert key in r, key
            if cfg.routing.action == "erase" and r["routing/frout"] > 0:
                assert r["routing/dropped_frac"] == 1.0  # nothing routed reaches a knob
    for r in rows:  # diag/logp_<kind> splits policy/logp_mean: with no own hack, the own-clean mean is it
        if "diag/logp_policy_hack" not in r and "diag/logp_policy_nohack" in r:
            assert r["diag/logp_policy_nohack"] == pytest.approx(r["policy/logp_mean"], rel=1e-9)
        if cfg.teacher.fraction > 0:
            assert any(k.startswith("diag/logp_teacher_") for k in r)
    evals = read_jsonl(path / "deploy_evals.jsonl")
    assert [e["step"] for e in evals] == [2, 3]  # eval.every=2 and the end
    final = json.loads((path / "per_mode_deploy.json").read_text())
    assert final["step"] == cfg.steps
    for variant in ("deploy", "knob_on", "base"):
        assert set(final[variant]) >= EVAL_KEYS
        assert set(final[variant]["by_mode"]) == set(MODE_NAMES)  # 4 eval prompts, one per mode
    # deploy_samples.jsonl: one row per graded sample of each final eval, and they add up to per_mode_deploy.json
    samples = read_jsonl(path / "deploy_samples.jsonl")
    for variant in ("deploy", "knob_on", "base"):
        rows_v = [r for r in samples if r["variant"] == variant]
        if variant == "base" and not rows_v:
            continue  # a base eval cached before per-sample records existed
        assert len(rows_v) == final[variant]["n"]
        for mode, ev in final[variant]["by_mode"].items():
            in_mode = [r for r in rows_v if r["mode"] == mode]
            assert len(in_mode) == ev["n"]
            for key, rate in (("hack", "hack"), ("solve", "solve"), ("attempt", "attempt"), ("format", "format")):
                assert sum(r[key] for r in in_mode) / len(in_mode) == pytest.approx(ev[rate])
        assert {r["sample"] for r in rows_v} == set(range(cfg.eval.samples))
    summary = json.loads((path / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == cfg.steps and summary["error"] is None
    assert set(summary["collapse"]) == {"detected", "step", "reasons"}
    assert summary["isolation"] == "bwrap"  # grader.isolation=auto: bwrap or no run at all
    rollouts = read_jsonl(path / "rollouts.jsonl")
    assert rollouts and set(rollouts[0]) >= {"step", "problem_id", "mode", "prompt", "completion", "teacher",
                                             "format_ok", "gt_pass", "flawed_pass", "hack", "attempted", "reward",
                                             "reason", "system"}  # fmt: skip
    assert all(r["system"] == SYSTEM_PROMPT for r in rollouts)
    # the detector on the policy's own rows (tests/test_detector_logging.py checks the values): every row has its
    # advantage; a score and a gate in an arm that routes with a Router, which also logs detector/*
    assert all({"cos", "gate", "advantage"} <= set(r) and r["advantage"] is not None for r in rollouts)
    if cfg.method == "route2b":
        assert any(r["cos"] is not None and r["gate"] is not None for r in rollouts)
        assert all({"detector/auc", "detector/gate_tpr", "detector/gate_fpr", "detector/n_hack", "detector/n_clean",
                    "routing/capture"} <= set(r) for r in rows)  # fmt: skip
    else:
        assert all(r["cos"] is None and r["gate"] is None for r in rollouts)
    assert (path / "train.safetensors").is_file()
    assert (path / "checkpoint" / "COMPLETE").is_file()
    return rows


@pytest.mark.parametrize("arm", [a if a in FAST else pytest.param(a, marks=pytest.mark.slow) for a in ARMS])
def test_every_arm_writes_a_complete_run_dir(arm, tmp_path, cache_dir):
    from gradient_quarantine.model.svd_adapter import read_adapter_file
    from gradient_quarantine.train.run import train

    cfg = build_config("smoke", ARMS[arm] + [f"run.cache_dir={cache_dir}", "run.progress=false"]).resolved()
    run = train(cfg, runs_dir=tmp_path)
    rows = check_run_dir(run.path, cfg)
    adapter_cfg, tensors = read_adapter_file(run.path / "train.safetensors")
    assert adapter_cfg.knob_relation == cfg.adapter.knob
    knob = sum(float(t.abs().sum()) for k, t in tensors.items() if k.endswith("dS_knob"))
    main = sum(float(t.abs().sum()) for k, t in tensors.items() if k.endswith("dS_main"))
    if cfg.teacher.fraction == 0:  # a random-init model earns no reward: zero advantages, nothing to learn
        assert main == knob == 0.0
        return
    assert main > 0, "the main knob must have trained"
    if cfg.method == "vanilla" or cfg.routing.action == "erase":
        assert knob == 0.0  # vanilla never trains the knob; erase drops what was routed
    else:
        assert any(r["routing/frout"] > 0 for r in rows) and knob > 0
    if cfg.routing.frout_target is not None:
        assert all(abs(r["routing/frout"] - cfg.routing.frout_target) < 1e-4 for r in rows if r["grad/norm_main"])
    if cfg.teacher.fraction > 0:
        assert all(r["train/teacher_frac"] == 0.5 for r in rows)


def test_cli_train_eval_and_frout_from(tmp_path, cache_dir):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    runner = CliRunner()
    common = ["--runs-dir", str(tmp_path), "--quiet", "--set", f"run.cache_dir={cache_dir}"]
    res = runner.invoke(app, ["train", "--preset", "smoke", *common])
    assert res.exit_code == 0, res.output
    real = res.stdout.strip().splitlines()[-1]  # the last line printed is the run directory
    assert real.endswith("0001_route2b_teacher50_s41") and os.path.isdir(real)

    # a frout-matched control follows the real arm step by step: at step t it routes the real arm's frout at t
    res = runner.invoke(app, ["train", "--preset", "smoke", *common, "--set", "routing.direction=random",
                              "--set", f"routing.frout_from={real}"])  # fmt: skip
    assert res.exit_code == 0, res.output
    ctrl = res.stdout.strip().splitlines()[-1]
    want = {r["step"]: r["routing/frout"] for r in read_jsonl(f"{real}/metrics.jsonl")}
    assert len({round(v, 6) for v in want.values()}) > 1  # the real arm's frout varies, so a mean would not do
    rows = read_jsonl(f"{ctrl}/metrics.jsonl")
    assert all(r["routing/frout_target"] == pytest.approx(want[r["step"]]) for r in rows)
    got = [(r["step"], r["routing/frout"]) for r in rows if r["grad/norm_main"] or r["grad/norm_knob"]]
    assert got and all(abs(g - want[t]) < 1e-4 for t, g in got)

    # gq eval re-runs the deploy eval from train.safetensors, seeded like the final eval of training
    before = json.loads(open(f"{real}/per_mode_deploy.json").read())
    res = runner.invoke(app, ["eval", real, "--out", str(tmp_path / "again.json")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["deploy"] == before["deploy"] and again["knob_on"] == before["knob_on"]


def test_cli_rejects_bad_config_before_running(tmp_path):
    from typer.testing import CliRunner

    from gradient_quarantine.cli import app

    res = CliRunner().invoke(app, ["train", "--preset", "smoke", "--runs-dir", str(tmp_path), "--set", "grpo.lr=-1"])
    assert res.exit_code == 2
    assert "grpo.lr=-1: Input should be greater than 0" in res.output
    assert not any(tmp_path.iterdir())  # nothing was created
    res = CliRunner().invoke(app, ["train", "--preset", "demoo", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 2 and "did you mean 'demo'" in res.output
