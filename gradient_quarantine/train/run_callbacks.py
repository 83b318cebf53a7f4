"""The loop's callbacks: what a run does between TRL's optimiser steps.

TRL's `Trainer.train()` runs the steps; after each, when TRL logs it, `StepCallback.after_step` does, in order:

1. the metrics row (`step.metrics_row` of the trainer's `record` and TRL's logs) + the collapse check
   (train/health.py) -> metrics.jsonl, and the live trackers (train/tracking.py);
2. every `run.log_rollouts_every` steps, a few of the step's rollouts with their verdicts -> rollouts.jsonl;
3. every `eval.every` steps (not the last: `Run.start` evaluates it), the deploy and knob-on evals;
4. the intervention's refresh (v_grad and its band, every `routing.refresh_every` steps);
5. every `run.checkpoint_every` steps and at the last, a checkpoint (`checkpoint`);
6. summary.json says the step is done (the last thing a step writes), and the progress bar moves.

    >>> trainer = build_trainer(setup, grader, intervention, callbacks=[StepCallback(run)])
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Mapping
from typing import Any, Protocol

from transformers import TrainerCallback

from gradient_quarantine.train.step import metrics_row, rollout_rows


class RunState(Protocol):
    """What the callbacks use of a run (train/run.py `Run`)."""

    cfg: Any  # TrainConfig
    run_dir: Any  # RunDir: where every row goes
    setup: Any  # RunSetup: the adapter
    trainer: Any  # GQGRPOTrainer: its `record` of the step, its optimiser
    intervention: Any  # Intervention: its gauges, refresh and checkpointed state
    evaluation: Any  # RunEvaluation
    health: Any  # CollapseDetector
    trackers: Any  # Trackers or None
    progress: Progress | None
    probe: Any  # train/leakage.py LeakageProbe or None

    def summary(self, status: str, steps_done: int, error: str | None = None) -> None: ...


class StepCallback(TrainerCallback):
    """After each optimiser step of `run` (module docstring)."""

    def __init__(self, run: RunState):
        self.run = run
        self.t0 = time.perf_counter()
        self.usage0 = resource.getrusage(resource.RUSAGE_SELF)

    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()
        self.usage0 = resource.getrusage(resource.RUSAGE_SELF)

    def on_log(self, args, state, control, logs=None, **kw):
        if logs is not None and "train_runtime" not in logs:  # not the end-of-training summary
            self.after_step(state.global_step, logs)

    def after_step(self, step: int, logs: Mapping[str, Any]) -> None:
        run = self.run
        cfg, run_dir, trainer = run.cfg, run.run_dir, run.trainer
        record = trainer.record  # what the trainer recorded of this step (train/step.py)
        row = metrics_row(step, record, logs, run.intervention.metrics(), time.perf_counter() - self.t0)
        row.update(process_usage(self.usage0, resource.getrusage(resource.RUSAGE_SELF)))
        every = cfg.run.leakage_every
        if run.probe is not None and record.step_gradient is not None and every and (step % every == 0 or step == 1):
            # labels of the probe's sides read here, after routing and the optimiser step, for the logs only
            row.update(run.probe.metrics(run.setup.model, run.setup.adapter, run.setup.tok, record.step_gradient))
        fired = run.health.update(step, row)
        row["health/collapse"] = int(bool(fired))
        if fired:
            row["health/reasons"] = fired
        run_dir.append_metrics(row)
        if run.trackers is not None:
            run.trackers.log(step, row)
        if cfg.run.log_rollouts_every and step % cfg.run.log_rollouts_every == 0 and record.rollouts is not None:
            rows = rollout_rows(step, record.rollouts, cfg.run.rollouts_per_log, record.scores)
            run_dir.append_rollouts(rows)
        if cfg.eval.every and step % cfg.eval.every == 0 and step < cfg.steps:
            run.evaluation.at_step(step)
        run.intervention.refresh(step, trainer.optimizer)
        if step % cfg.run.checkpoint_every == 0 or step == cfg.steps:
            checkpoint(run, step)
        run.summary("running", step)
        if run.progress is not None:
            run.progress.update(row)


def process_usage(before: resource.struct_rusage, after: resource.struct_rusage) -> dict[str, float | int]:
    """The training process's CPU time in user and kernel mode and its minor page faults over one step (the sandboxed
    grader's processes are not counted): a kernel share far above a few percent means memory is being handed back
    and faulted in again every step (bench/README.md, "Memory churn")."""
    return {
        "perf/user_s": after.ru_utime - before.ru_utime,
        "perf/sys_s": after.ru_stime - before.ru_stime,
        "perf/minor_faults": after.ru_minflt - before.ru_minflt,
    }


def checkpoint(run: RunState, step: int) -> None:
    """RUN_DIR/checkpoint after step `step` (written aside, then swapped in whole): the adapter, TRL's optimiser,
    scheduler, RNG and trainer state, and the intervention's state (v_grad and its band); train.safetensors too."""
    tmp = run.run_dir.new_checkpoint_tmp()
    run.trainer.save_checkpoint_files(tmp)
    run.intervention.save(tmp)
    run.run_dir.commit_checkpoint(tmp, step)
    run.setup.adapter.save(run.run_dir.file("train.safetensors"))


class Progress:
    """The progress bar (`run.progress`): steps done, with the step's reward, hack rate, time and frout."""

    def __init__(self, total: int, initial: int, desc: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, row: Mapping[str, Any]) -> None:
        post = {"reward": row.get("reward/mean"), "hack": row.get("train/hack_rate"), "s/step": row.get("perf/step_time_s")}
        if "routing/frout" in row:
            post["frout"] = row["routing/frout"]
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in post.items() if _finite(v)}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
