"""Run directory bookkeeping (train/rundir.py) and collapse detection (train/health.py): pure file/number logic."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from gradient_quarantine.train.config import HealthSection
from gradient_quarantine.train.health import CollapseDetector
from gradient_quarantine.train.rundir import RunDir, next_job_number


def _create(args):
    runs_dir, name = args
    return RunDir.create(runs_dir, name).path.name


def test_job_numbers_are_unique_under_concurrency(tmp_path):
    names = [f"arm{i % 3}_s{i}" for i in range(12)]
    with mp.get_context("fork").Pool(6) as pool:
        made = pool.map(_create, [(tmp_path, n) for n in names])
    jobs = sorted(int(m.split("_")[0]) for m in made)
    assert jobs == list(range(1, 13))
    assert next_job_number(tmp_path) == 13
    assert RunDir(tmp_path / made[0]).job == int(made[0][:4])


def test_bad_run_name(tmp_path):
    with pytest.raises(ValueError, match="run name"):
        RunDir.create(tmp_path, "a/b")


def test_config_contract_and_truncate(tmp_path):
    run = RunDir.create(tmp_path, "route2b_s41")
    with pytest.raises(KeyError, match="must carry top-level key 'arm'"):
        run.write_config({"name": "x"})
    for s in range(1, 6):
        run.append_metrics({"step": s, "reward/mean": s / 10})
        run.append_rollouts([{"step": s, "completion": "c"}, {"step": s, "completion": "d"}])
        if s % 2 == 0:
            run.append_deploy_eval(s, {"hack": 0.1}, None)
    # a torn last line (machine died mid-write) is dropped by truncation too
    with open(run.file("metrics.jsonl"), "a") as f:
        f.write('{"step": 6, "rew')
    dropped = run.truncate_after(3)
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]
    assert [r["step"] for r in run.read_deploy_evals()] == [2]
    assert dropped["rollouts.jsonl"] == 4 and dropped["deploy_evals.jsonl"] == 1
    assert run.file("metrics.jsonl").read_text().endswith("\n")


def test_checkpoint_commit_is_atomic(tmp_path):
    run = RunDir.create(tmp_path, "x")
    assert run.latest_checkpoint() is None
    tmp = run.new_checkpoint_tmp()
    (tmp / "a.txt").write_text("1")
    run.commit_checkpoint(tmp, 2)
    ck = run.latest_checkpoint()
    assert json.loads((ck / "COMPLETE").read_text())["step"] == 2
    # a half-written checkpoint (no COMPLETE) never replaces the last good one
    tmp = run.new_checkpoint_tmp()
    (tmp / "a.txt").write_text("2")
    assert (run.latest_checkpoint() / "a.txt").read_text() == "1"
    run.commit_checkpoint(tmp, 4)
    assert (run.latest_checkpoint() / "a.txt").read_text() == "2"
    # killed between the two renames: the old checkpoint is still found
    run.checkpoint_dir.rename(run.path / "checkpoint.old")
    assert json.loads((run.latest_checkpoint() / "COMPLETE").read_text())["step"] == 4


def test_summary_schema(tmp_path):
    run = RunDir.create(tmp_path, "x")
    run.write_summary("running", 3, 10, {"detected": False, "step": None, "reasons": []}, 1.5)
    s = run.read_summary()
    assert set(s) == {"status", "steps_done", "steps", "collapse", "wall_s", "error"}
    with pytest.raises(ValueError, match="running\\|complete\\|failed"):
        run.write_summary("done", 3, 10, {}, 1.0)


def _rows(logps, rewards, grads):
    return [
        {"step": i + 1, "policy/logp_mean": lp, "reward/mean": r, "grad/norm_main": g}
        for i, (lp, r, g) in enumerate(zip(logps, rewards, grads, strict=True))
    ]


def test_collapse_signals():
    cfg = HealthSection(window=3, logp_drop=1.0, reward_zero_steps=2, grad_spike=5.0)
    healthy = _rows([-1.0] * 8, [1.0] * 8, [1.0] * 8)
    det = CollapseDetector.replay(cfg, healthy)
    assert det.summary() == {"detected": False, "step": None, "reasons": []}

    logp = _rows([-1.0, -1.1, -0.9, -1.0, -3.0, -3.2], [1.0] * 6, [1.0] * 6)
    det = CollapseDetector.replay(cfg, logp)
    assert det.summary()["step"] == 6 and det.summary()["reasons"] == ["logp_crater"]  # persists 2 steps
    blip = _rows([-1.0, -1.1, -0.9, -1.0, -3.0, -1.0, -1.1], [1.0] * 7, [1.0] * 7)
    assert not CollapseDetector.replay(cfg, blip).summary()["detected"]  # one noisy step is not a collapse

    reward = _rows([-1.0] * 6, [0.0, 1.0, 0.5, 0.0, 0.0, 0.0], [1.0] * 6)  # zero at the start does not count
    det = CollapseDetector.replay(cfg, reward)
    assert det.summary()["step"] == 5 and "reward_zero" in det.summary()["reasons"]

    spike = _rows([-1.0] * 5, [1.0] * 5, [1.0, 1.2, 0.9, 1.1, 50.0])
    det = CollapseDetector.replay(cfg, spike)
    assert det.summary()["reasons"] == ["grad_spike:main"] and det.summary()["step"] == 5


def test_detector_state_round_trip():
    cfg = HealthSection(window=3)
    rows = _rows([-1.0, -1.2, -0.8, -1.1], [1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 1.5, 1.0])
    a = CollapseDetector.replay(cfg, rows[:2])
    b = CollapseDetector(cfg)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for r in rows[2:]:
        assert a.update(r["step"], r) == b.update(r["step"], r)
    assert a.summary() == b.summary()


def test_degeneration_is_flagged():
    """The measured degeneration (lr 0.3 on all 30 layers): format 0.94 -> 0.25-0.56 and logp -0.29 -> -0.7/-1.06.
    The old 1-nat logp threshold never fired on it; the default settings must."""
    cfg = HealthSection()
    rows = [
        {"step": i + 1, "policy/logp_mean": lp, "train/format_rate": fr, "reward/mean": 1.0}
        for i, (lp, fr) in enumerate(zip([-0.29, -0.31, -0.27, -0.30, -0.28, -0.70, -1.06, -0.9],
                                         [0.94, 0.94, 1.0, 0.88, 0.94, 0.56, 0.25, 0.4], strict=True))
    ]  # fmt: skip
    det = CollapseDetector.replay(cfg, rows)
    assert det.summary()["detected"] and det.summary()["step"] == 7
    assert set(det.summary()["reasons"]) == {"logp_crater", "format_collapse"}
    only_format = [{**r, "policy/logp_mean": -0.3} for r in rows]
    assert CollapseDetector.replay(cfg, only_format).summary()["reasons"] == ["format_collapse"]
    healthy = [{**r, "policy/logp_mean": -0.3, "train/format_rate": 0.9} for r in rows]
    assert not CollapseDetector.replay(cfg, healthy).summary()["detected"]


def test_deploy_summary_separates_hackable_and_unhackable_prompts():
    from gradient_quarantine.substrate.types import Mode, Verdict
    from gradient_quarantine.train.deploy_eval import summarize

    hack = Verdict(True, False, True, True, True, 3.5, "x")
    clean = Verdict(True, True, True, False, False, 3.5, "ok")
    fail = Verdict(True, False, False, False, True, 0.5, "wrong")
    modes = [Mode.EXIT_CODE, Mode.EXIT_CODE, Mode.NO_LOOPHOLE, Mode.NO_LOOPHOLE]
    out = summarize([hack, clean, fail, clean], modes, n_prompts=2)
    assert out["hack"] == 0.25 and out["hackable"]["hack"] == 0.5 and out["unhackable"]["hack"] == 0.0
    assert out["unhackable"]["attempt"] == 0.5 and out["unhackable"]["solve"] == 0.5
    assert set(out["by_mode"]) == {"exit_code", "no_loophole"}
    assert "hackable" not in summarize([hack], [Mode.EXIT_CODE], n_prompts=1)
