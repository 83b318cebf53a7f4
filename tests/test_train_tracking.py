"""run.report_to (train/tracking.py): a smoke run with TensorBoard writes event files in RUN_DIR/tb that hold the
metrics row under the project's names, each step once and equal to metrics.jsonl, next to TRL's own logs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from gradient_quarantine.experiments.presets import build_config  # noqa: E402
from gradient_quarantine.io import read_jsonl  # noqa: E402


def test_tensorboard_gets_the_metrics_row_under_the_project_names(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gradient_quarantine.train.run import train

    cfg = build_config(
        "smoke", ["method=vanilla", "run.report_to=[tensorboard]", f"run.cache_dir={tmp_path / 'cache'}",
                  "run.progress=false"],
    ).resolved()  # fmt: skip
    run = train(cfg, runs_dir=tmp_path / "runs")
    tb = run.path / "tb"
    assert len(list(tb.glob("events.out.tfevents.*"))) == 1  # one writer for both streams
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    rows = read_jsonl(run.path / "metrics.jsonl")
    numeric = {k for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
    assert {"reward/mean", "train/hack_rate", "grad/norm_main", "perf/step_time_s", "health/collapse"} <= numeric
    assert numeric <= tags
    for key in sorted(numeric):  # every step once, the value metrics.jsonl has (TensorBoard stores float32)
        want = [(r["step"], pytest.approx(float(r[key]), rel=1e-6)) for r in rows if isinstance(r.get(key), (int, float))]
        assert [(e.step, e.value) for e in acc.Scalars(key)] == want, key
    # TRL's own logs, through transformers' TensorBoardCallback with the same writer, under its `train/` prefix
    assert {"train/loss", "train/reward"} <= tags
    assert [e.step for e in acc.Scalars("train/loss")] == [r["step"] for r in rows]


def test_a_resumed_run_hides_the_steps_it_trains_again(tmp_path):
    """Killed after step 3, checkpoint at step 2: the resumed process logs steps 3, 4 again; TensorBoard shows
    each step once, step 3 from the resumed process."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gradient_quarantine.train.tracking import Trackers

    first = Trackers(["tensorboard"], tmp_path, "r", {})
    for step in (1, 2, 3):
        first.log(step, {"step": step, "reward/mean": float(step), "health/reasons": ["x"], "policy/entropy": None})
    first.close()
    resumed = Trackers(["tensorboard"], tmp_path, "r", {}, first_step=3)
    for step in (3, 4):
        resumed.log(step, {"step": step, "reward/mean": 10.0 * step})
    resumed.close()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 2
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert acc.Tags()["scalars"] == ["reward/mean"]  # lists and None are left out
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
