"""Live trackers (`run.report_to`): TensorBoard, Weights & Biases, trackio. metrics.jsonl stays the source of
truth (reports read run directories only); a tracker is a live view of the same numbers while a run goes.

Each tracker gets two streams, each once:

* TRL's own logs (`loss`, `reward`, `kl`, `completions/...`) through transformers' integration callbacks, as in
  any TRL run with `report_to`; transformers files them under `train/` (`train/loss`, `train/kl`);
* the run's metrics row, the one metrics.jsonl gets, under the project's names (`reward/mean`, `train/hack_rate`,
  `routing/frout`, ...: docs/run_directory.md), at its optimiser step. A few values are in both streams under
  their two names (the row copies TRL's kl, entropy, lr and completion length as `trl/*`, `policy/entropy`,
  `train/lr`).

Where the data goes: TensorBoard -> RUN_DIR/tb (one writer for both streams; `tensorboard --logdir out/runs`);
W&B -> RUN_DIR/wandb, offline unless WANDB_MODE says otherwise (`wandb sync RUN_DIR/wandb/offline-run-*`
uploads it later), project $WANDB_PROJECT or gradient_quarantine; trackio -> its own local store, project
gradient_quarantine (TRL's TrackioCallback opens and closes that run).

    >>> trackers = Trackers(["tensorboard"], run_dir, name="0001_route2b_s41", config=record)
    >>> GRPOConfig(..., report_to=trackers.trl_report_to, project=PROJECT)
    >>> GRPOTrainer(..., callbacks=[*trackers.callbacks(), ...])
    >>> trackers.log(step, row)      # every step, after metrics.jsonl
    >>> trackers.close()
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROJECT = "gradient_quarantine"
STEP_KEY = "train/global_step"  # transformers' x-axis for W&B and trackio; the row is logged against it too


class Trackers:
    """The trackers of one run, from optimiser step `first_step` on. A resumed run starts after its last
    checkpoint: TensorBoard hides what the killed process had logged from that step on (trained again)."""

    def __init__(
        self, names: Sequence[str], run_dir: Path, name: str, config: Mapping[str, Any], first_step: int = 1
    ):
        self.names = list(names)
        self.tb = self.wandb = self.trackio = None
        # before anything opens: a missing package gives one clear error (tensorboard is in the dev extra)
        for n in self.names:
            if importlib.util.find_spec(n) is None:
                raise ImportError(
                    f"run.report_to names {n}, but the `{n}` package is not installed (pip install {n}, or leave {n} "
                    "out of run.report_to)"
                )
        if "tensorboard" in self.names:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=first_step)
        if "wandb" in self.names:
            import wandb

            # opened here, not by TRL's WandbCallback (which reuses an open run): so its files go to the run dir
            # and it is offline without changing the process's environment
            self.wandb = wandb
            wandb.init(
                project=os.environ.get("WANDB_PROJECT", PROJECT), name=name, dir=str(run_dir), config=dict(config),
                mode=os.environ.get("WANDB_MODE", "offline"),
            )  # fmt: skip
        if "trackio" in self.names:
            import trackio

            self.trackio = trackio

    @property
    def trl_report_to(self) -> list[str] | str:
        """GRPOConfig(report_to=...): TensorBoard is not in it but comes as a callback writing with our writer
        (transformers 5 has no `logging_dir`; its default would be RUN_DIR/runs/<date>_<host>)."""
        return [n for n in self.names if n != "tensorboard"] or "none"

    def callbacks(self) -> list:
        if self.tb is None:
            return []
        from transformers.integrations import TensorBoardCallback

        return [TensorBoardCallback(tb_writer=self.tb)]

    def log(self, step: int, row: Mapping[str, Any]) -> None:
        """The metrics row under its own names; only numbers (None, NaN-as-None and lists are left out)."""
        scalars = {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log({**scalars, STEP_KEY: step})
        if self.trackio is not None:
            self.trackio.log({**scalars, STEP_KEY: step})

    def close(self, failed: bool = False) -> None:
        if self.tb is not None:
            self.tb.close()  # TRL's TensorBoardCallback closes it at the end of training too; a second close is a no-op
        if self.wandb is not None:
            self.wandb.finish(exit_code=1 if failed else 0)
