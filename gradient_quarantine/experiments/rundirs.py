"""A job's run directory as the queue sees it: chosen by the queue, passed to the job, read for its state.

    >>> reserve_train_dir("out/runs", "route2b_s41")      # out/runs/0007_route2b_s41, empty, the number taken
    >>> holds_run(path), run_status(path)                  # config.json written? summary.json's status

A train job's directory is reserved at its first start with the trainer's own numbering (`RunDir.create`: the
next free job number of that runs directory, taken atomically, so a run made there by hand with `gq train`
never gets the same number) and recorded in the job's row before `gq train --run-dir DIR` starts. Every later
attempt (a requeue, a reaped worker, a SLURM requeue) passes the same directory, which `gq train` resumes once
it holds config.json. A command job's directory is `<runs_dir>/<id>_<name>`, fixed when the job is added; the
command makes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gradient_quarantine.train.rundir import CONFIG, SUMMARY, RunDir


def reserve_train_dir(runs_dir: str | Path, name: str) -> Path:
    """A new, empty `<runs_dir>/<NNNN>_<name>` with the next free job number (raises ValueError on a name the
    trainer would refuse)."""
    return RunDir.create(runs_dir, name).path


def command_run_dir(runs_dir: str | Path, job_id: int, name: str) -> str:
    return str(Path(runs_dir) / f"{job_id:04d}_{name}")


def holds_run(run_dir: str | Path | None) -> bool:
    """The trainer has written config.json there: a new attempt resumes it."""
    return run_dir is not None and (Path(run_dir) / CONFIG).is_file()


def has_files(run_dir: str | Path | None) -> bool:
    """Something was written there (an earlier attempt ran): a command job's GQ_RESUME."""
    if run_dir is None or not Path(run_dir).is_dir():
        return False
    return any(Path(run_dir).iterdir())


def run_status(run_dir: str | Path | None) -> str | None:
    """summary.json's `status` (running / complete / failed), None when there is none yet."""
    try:
        return json.loads((Path(run_dir) / SUMMARY).read_text()).get("status")
    except (OSError, ValueError, TypeError):
        return None


def saved_config(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The run's config.json, None when it has none (or it cannot be read)."""
    if not holds_run(run_dir):
        return None
    try:
        return json.loads((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
