"""Resume: a run SIGKILLed after checkpoint k (and after writing rows past it) resumes with `gq train --resume`
and produces the same numbers as an uninterrupted run (same seed, CPU)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from faults import crash_after_step, kill_after_step_env
from safetensors.torch import load_file

from gradient_quarantine.experiments.presets import build_config
from gradient_quarantine.io import read_jsonl

SETS = ["steps=4", "run.checkpoint_every=2", "eval.every=2", "routing.refresh_every=3", "run.progress=false"]


def _gq(args, env=None):
    code = "from gradient_quarantine.cli import app; app()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600)


def _strip(rows):
    # wall-clock figures differ between any two runs; everything else must match
    return [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]


def _same_run(run, ref):
    assert _strip(read_jsonl(run / "metrics.jsonl")) == _strip(read_jsonl(ref / "metrics.jsonl"))
    assert read_jsonl(run / "deploy_evals.jsonl") == read_jsonl(ref / "deploy_evals.jsonl")
    assert read_jsonl(run / "rollouts.jsonl") == read_jsonl(ref / "rollouts.jsonl")
    a, b = json.loads((run / "per_mode_deploy.json").read_text()), json.loads((ref / "per_mode_deploy.json").read_text())
    assert a == b
    ta, tb = load_file(run / "train.safetensors"), load_file(ref / "train.safetensors")
    assert ta.keys() == tb.keys() and all((ta[k] == tb[k]).all() for k in ta)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == 4 and summary["error"] is None


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from gradient_quarantine.train.run import train

    tmp = tmp_path_factory.mktemp("ref")
    sets = [*SETS, f"run.cache_dir={tmp / 'cache'}"]
    return train(build_config("smoke", sets, name="ref"), runs_dir=tmp).path, sets


def test_crashed_run_resumes_to_the_same_numbers(tmp_path, reference):
    from gradient_quarantine.train.run import resume, train

    ref, sets = reference
    cfg = build_config("smoke", sets, name="crashed")
    with crash_after_step(3), pytest.raises(RuntimeError, match="injected crash after step 3"):
        train(cfg, runs_dir=tmp_path)
    run = tmp_path / "0001_crashed"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "injected crash" in summary["error"] and summary["steps_done"] == 3
    resume(run)
    _same_run(run, ref)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_numbers(tmp_path, reference):
    ref, sets = reference

    args = ["train", "--preset", "smoke", "--runs-dir", str(tmp_path / "killed"), "--name", "killed", "--quiet"]
    for s in sets:
        args += ["--set", s]
    res = _gq(args, env=kill_after_step_env(3))  # checkpoint 2 exists, step 3 was written
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    run = tmp_path / "killed" / "0001_killed"
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3]
    assert json.loads((run / "checkpoint" / "COMPLETE").read_text())["step"] == 2
    assert json.loads((run / "summary.json").read_text())["status"] == "running"

    res = _gq(["train", "--resume", str(run)])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == str(run)

    _same_run(run, ref)

    # resuming a complete run is a no-op that prints its directory
    res = _gq(["train", "--resume", str(run)])
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == str(run)
