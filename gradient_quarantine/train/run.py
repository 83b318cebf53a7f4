"""One training run, start to end: `train` (a fresh run), `resume` (a killed one), `evaluate_run` (`gq eval`).

`Run.start()` checks the sandbox, writes config.json (or, on resume, drops what was written after the last
checkpoint), builds the set-up (train/run_setup.py: problems, policy, pairs, direction, intervention), the
trainer (train/run_trainer.py) and the evals (train/run_eval.py), lets TRL train with the loop's callbacks
(train/run_callbacks.py), then evaluates the final model. The run directory (docs/run_directory.md) is written as
it goes, and checkpoints every `run.checkpoint_every` steps in a form `Trainer.train(resume_from_checkpoint=...)`
understands, plus the intervention's state, so `gq train --resume RUN_DIR` continues bit-for-bit (same seed, CPU).

    >>> run_dir = train(cfg, runs_dir="out/runs")         # a fresh run
    >>> resume("out/runs/0003_route2b_s41")              # continue a killed one
    >>> evaluate_run("out/runs/0003_route2b_s41")        # re-run its deploy eval
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path

from gradient_quarantine.train.config import TrainConfig, git_commit
from gradient_quarantine.train.health import CollapseDetector
from gradient_quarantine.train.leakage import LeakageProbe
from gradient_quarantine.train.run_eval import RunEvaluation, evaluate_run
from gradient_quarantine.train.run_setup import RunSetup, make_intervention
from gradient_quarantine.train.rundir import RunDir

log = logging.getLogger(__name__)

__all__ = ["Run", "evaluate_run", "resume", "train"]


class Run:
    """One training run of `cfg` in `run_dir`; `start()` trains, evaluates and writes the run directory."""

    def __init__(self, cfg: TrainConfig, run_dir: RunDir, resume: bool = False):
        self.cfg = cfg
        self.run_dir = run_dir
        self.resume = resume
        self.t_start = time.perf_counter()
        self.wall_before = 0.0
        self.isolation: str | None = None
        self.health: CollapseDetector | None = None
        self.progress = None
        self.trackers = None
        self.probe = None

    def start(self) -> RunDir:
        from gradient_quarantine.substrate.grader import Grader
        from gradient_quarantine.substrate.sandbox import detect_isolation, weakest
        from gradient_quarantine.train.run_callbacks import Progress, StepCallback
        from gradient_quarantine.train.run_trainer import build_trainer

        cfg, run_dir = self.cfg, self.run_dir
        # The sandbox first: a run that cannot grade safely stops before it changes anything (SandboxError).
        self.isolation = detect_isolation(cfg.grader.isolation).level
        ckpt = None
        if self.resume:
            prev = run_dir.read_summary() or {}
            self.wall_before = float(prev.get("wall_s") or 0.0)
            self.isolation = weakest(self.isolation, prev.get("isolation"))  # a result is worth its weakest segment
            ckpt = run_dir.latest_checkpoint()
            done = json.loads((ckpt / "COMPLETE").read_text())["step"] if ckpt else 0
            run_dir.truncate_after(done)
            if ckpt is None:
                run_dir.file("per_mode_deploy.json").unlink(missing_ok=True)
        else:
            record = cfg.to_record()
            record["git_commit"] = record.get("git_commit") or git_commit()
            run_dir.write_config(record)
        self.health = CollapseDetector.replay(cfg.health, run_dir.read_metrics())
        steps_done = self.steps_done()
        self.summary("running", steps_done)
        try:
            self.setup = RunSetup(cfg, run_dir, resume=self.resume).build()
            self.intervention = make_intervention(self.setup, ckpt)  # v_grad and its band, where it uses them
            self.probe = LeakageProbe.build(self.setup) if cfg.run.leakage_every else None  # logging only
            with Grader(isolation=cfg.grader.isolation,
                        **({"workers": cfg.run.grader_workers} if cfg.run.grader_workers else {})) as grader:
                self.trackers = self._trackers(steps_done)
                self.trainer = build_trainer(
                    self.setup, grader, self.intervention,
                    callbacks=[*(self.trackers.callbacks() if self.trackers else []), StepCallback(self)],
                    report_to=self.trackers.trl_report_to if self.trackers else "none",
                )  # fmt: skip
                self.evaluation = RunEvaluation(self.setup, grader)
                if cfg.run.progress:
                    self.progress = Progress(cfg.steps, steps_done, run_dir.path.name)
                self.trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
                self._close_progress()
                self.evaluation.final()
                self.setup.adapter.save(run_dir.file("train.safetensors"))
                self.summary("complete", cfg.steps)
                self._close_trackers()
        except BaseException as e:  # record, never fail silently; KeyboardInterrupt included
            self._close_progress()
            self._close_trackers(failed=True)
            err = f"{type(e).__name__}: {e}"
            log.error("run failed: %s\n%s", err, traceback.format_exc())
            self.summary("failed", self.steps_done(), error=err)
            raise
        return run_dir

    # ---------------------------------------------------------------------------------------------- bookkeeping

    def steps_done(self) -> int:
        rows = self.run_dir.read_metrics()
        return int(rows[-1]["step"]) if rows else 0

    def summary(self, status: str, steps_done: int, error: str | None = None) -> None:
        """summary.json: status, steps done, collapse, wall time, the weakest sandbox level the run was graded under."""
        collapse = self.health.summary() if self.health else {"detected": False, "step": None, "reasons": []}
        self.run_dir.write_summary(
            status, steps_done, self.cfg.steps, collapse, self.wall_before + time.perf_counter() - self.t_start, error,
            isolation=self.isolation,
        )

    def _trackers(self, steps_done: int):
        """Live trackers (`run.report_to`): TRL's own logs and our metrics row to TensorBoard / W&B / trackio."""
        if not self.cfg.run.report_to:
            return None
        from gradient_quarantine.train.tracking import Trackers

        path = self.run_dir.path
        return Trackers(self.cfg.run.report_to, path, path.name, self.run_dir.read_config(), steps_done + 1)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def _close_trackers(self, failed: bool = False) -> None:
        if self.trackers is not None:
            self.trackers.close(failed)
            self.trackers = None


# ==========================================================================================================
# entry points


def train(cfg: TrainConfig, runs_dir: str | Path = "out/runs", run_dir: str | Path | None = None) -> RunDir:
    """A fresh run: allocate `<runs_dir>/<job>_<name>/` (or use `run_dir`, new or empty: the directory the queue
    chose), train, evaluate. Returns the run dir."""
    from gradient_quarantine.substrate.sandbox import detect_isolation

    resolved = cfg.resolved()
    detect_isolation(resolved.grader.isolation)  # no safe sandbox: SandboxError before a run directory exists
    run = RunDir.create(runs_dir, resolved.name) if run_dir is None else RunDir.create_at(run_dir)
    return Run(resolved, run).start()


def resume(run_dir: str | Path) -> RunDir:
    """Continue a killed run from its last checkpoint (rows written after it are dropped first)."""
    run = RunDir(run_dir)
    if not run.exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    summary = run.read_summary() or {}
    if summary.get("status") == "complete":
        return run
    cfg = TrainConfig.from_record(run.read_config())
    return Run(cfg, run, resume=True).start()
