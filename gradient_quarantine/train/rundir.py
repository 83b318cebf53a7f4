"""The run directory, exactly as docs/run_directory.md specifies it; every write goes through `io.py`.

    >>> run = RunDir.create("out/runs", "route2b_s41")      # out/runs/0007_route2b_s41 (next free job number)
    >>> run.write_config(cfg.to_record())
    >>> run.append_metrics({"step": 1, "reward/mean": 0.5})
    >>> run.truncate_after(step=10)                          # on resume: drop rows written after checkpoint 10
    >>> RunDir("out/runs/0007_route2b_s41").read_config()

Job numbers are allocated by `mkdir` of `<runs_dir>/.jobs/<NNNN>` (atomic on every POSIX file system), so two
processes that start at once never share a number, whatever their names.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from gradient_quarantine.io import append_jsonl, atomic_write_json, atomic_write_jsonl, read_jsonl

CONFIG = "config.json"
METRICS = "metrics.jsonl"
DEPLOY_EVALS = "deploy_evals.jsonl"
PER_MODE_DEPLOY = "per_mode_deploy.json"
DEPLOY_SAMPLES = "deploy_samples.jsonl"
SUMMARY = "summary.json"
SPLIT = "split.json"
ADAPTER = "train.safetensors"
ROLLOUTS = "rollouts.jsonl"
CHECKPOINT = "checkpoint"

_JOB_DIR = re.compile(r"^(\d{4,})_")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class RunDir:
    """Paths and writers of one run directory (the contract in docs/run_directory.md)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(cls, runs_dir: str | Path, name: str, max_tries: int = 1000) -> RunDir:
        """`<runs_dir>/<job>_<name>/` with the next free job number, reserved atomically."""
        if not _NAME_OK.match(name):
            raise ValueError(
                f"run name {name!r} must start with a letter or digit and use only letters, digits and . _ + -"
            )
        runs_dir = Path(runs_dir)
        jobs = runs_dir / ".jobs"
        jobs.mkdir(parents=True, exist_ok=True)
        job = next_job_number(runs_dir)
        for _ in range(max_tries):
            try:
                (jobs / f"{job:04d}").mkdir()  # the reservation: exactly one process succeeds per number
            except FileExistsError:
                job += 1
                continue
            path = runs_dir / f"{job:04d}_{name}"
            path.mkdir()
            return cls(path)
        raise RuntimeError(f"could not reserve a job number in {runs_dir} after {max_tries} tries")

    @classmethod
    def create_at(cls, path: str | Path) -> RunDir:
        """Exactly `path` (the directory the queue chose and reserved with `create`), made if missing; it must
        hold nothing yet, so a fresh run never writes among another run's files."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if any(path.iterdir()):
            raise FileExistsError(f"{path} is not empty and holds no run (no {CONFIG}): a fresh run needs a new "
                                  "or empty directory")
        return cls(path)

    @property
    def job(self) -> int | None:
        m = _JOB_DIR.match(self.path.name)
        return int(m.group(1)) if m else None

    def exists(self) -> bool:
        return (self.path / CONFIG).is_file()

    def __str__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ files

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT

    def write_config(self, record: dict[str, Any]) -> None:
        for key in ("name", "arm", "seed", "preset", "steps", "model", "pair_modes", "git_commit", "config_hash"):
            if key not in record:
                raise KeyError(f"config.json must carry top-level key {key!r} (docs/run_directory.md)")
        atomic_write_json(self.path / CONFIG, record)

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.path / CONFIG).read_text(encoding="utf-8"))

    def write_split(self, record: dict[str, Any]) -> None:
        """split.json (train/roles.py `RunProblems.record`): every problem's role and mode, written once at the
        start and read back on resume. `split: null` means no split (every stage shared the problems);
        `overlap: true` marks a run whose stages may share problems, which the report flags."""
        for key in ("split", "overlap", "modes"):
            if key not in record:
                raise KeyError(f"split.json must carry {key!r}")
        atomic_write_json(self.path / SPLIT, record)

    def read_split(self) -> dict[str, Any] | None:
        p = self.path / SPLIT
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def append_metrics(self, row: dict[str, Any]) -> None:
        if "step" not in row:
            raise KeyError("a metrics row needs its 'step'")
        append_jsonl(self.path / METRICS, row)

    def read_metrics(self) -> list[dict[str, Any]]:
        p = self.path / METRICS
        return read_jsonl(p) if p.is_file() else []

    def append_deploy_eval(self, step: int, deploy: dict, knob_on: dict | None) -> None:
        append_jsonl(self.path / DEPLOY_EVALS, {"step": step, "deploy": deploy, "knob_on": knob_on})

    def read_deploy_evals(self) -> list[dict[str, Any]]:
        p = self.path / DEPLOY_EVALS
        return read_jsonl(p) if p.is_file() else []

    def write_per_mode_deploy(self, step: int, deploy: dict, knob_on: dict | None, base: dict | None) -> None:
        atomic_write_json(
            self.path / PER_MODE_DEPLOY, {"step": step, "deploy": deploy, "knob_on": knob_on, "base": base}
        )

    def write_deploy_samples(self, records: list[dict[str, Any]]) -> None:
        """deploy_samples.jsonl: one row per graded sample of the final evals (`deploy_eval.sample_records`)."""
        atomic_write_jsonl(self.path / DEPLOY_SAMPLES, records)

    def append_rollouts(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            append_jsonl(self.path / ROLLOUTS, row)

    def write_summary(
        self,
        status: str,
        steps_done: int,
        steps: int,
        collapse: dict[str, Any],
        wall_s: float,
        error: str | None = None,
        **extra: Any,
    ) -> None:
        if status not in ("running", "complete", "failed"):
            raise ValueError(f"summary status must be running|complete|failed, got {status!r}")
        atomic_write_json(
            self.path / SUMMARY,
            {
                "status": status,
                "steps_done": steps_done,
                "steps": steps,
                "collapse": collapse,
                "wall_s": round(float(wall_s), 3),
                "error": error,
                **extra,
            },
        )

    def read_summary(self) -> dict[str, Any] | None:
        p = self.path / SUMMARY
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    # ------------------------------------------------------------------ resume

    def truncate_after(self, step: int) -> dict[str, int]:
        """Drop every row with `step > step` from the step-indexed jsonl files (resume from checkpoint `step`).

        Each file is rewritten atomically, so a kill during the truncation leaves the old or the new file.
        Returns {file: rows dropped}.
        """
        dropped = {}
        for name in (METRICS, DEPLOY_EVALS, ROLLOUTS):
            p = self.path / name
            if not p.is_file():
                continue
            rows = read_jsonl(p)
            keep = [r for r in rows if int(r.get("step", 0)) <= step]
            if len(keep) != len(rows) or p.read_bytes()[-1:] not in (b"\n", b""):
                atomic_write_jsonl(p, keep)
            dropped[name] = len(rows) - len(keep)
        return dropped

    def latest_checkpoint(self) -> Path | None:
        """The last complete checkpoint (a half-written one is never renamed into place)."""
        ckpt = self.checkpoint_dir
        if (ckpt / "COMPLETE").is_file():
            return ckpt
        old = self.path / (CHECKPOINT + ".old")
        if (old / "COMPLETE").is_file():  # killed between the two renames of `commit_checkpoint`
            return old
        return None

    def new_checkpoint_tmp(self) -> Path:
        """A fresh temp dir beside the checkpoint; fill it, then `commit_checkpoint` it."""
        tmp = self.path / f".{CHECKPOINT}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        return tmp

    def commit_checkpoint(self, tmp: Path, step: int) -> Path:
        """Atomically replace `checkpoint/` by `tmp` (rename old away, rename new in, delete old)."""
        (tmp / "COMPLETE").write_text(json.dumps({"step": step, "time": time.time()}) + "\n")
        ckpt, old = self.checkpoint_dir, self.path / (CHECKPOINT + ".old")
        if old.exists() and ckpt.exists():
            shutil.rmtree(old)
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        if old.exists():
            shutil.rmtree(old)
        return ckpt


def next_job_number(runs_dir: str | Path) -> int:
    """1 + the largest job number used in `runs_dir` (by a run dir or a reservation), 1 if none."""
    runs_dir = Path(runs_dir)
    used = [0]
    if runs_dir.is_dir():
        for p in runs_dir.iterdir():
            m = _JOB_DIR.match(p.name)
            if m:
                used.append(int(m.group(1)))
        jobs = runs_dir / ".jobs"
        if jobs.is_dir():
            used += [int(p.name) for p in jobs.iterdir() if p.name.isdigit()]
    return max(used) + 1
