"""Running one claimed job: its run directory, its command line, the subprocess, how it ended.

    >>> job = q.claim(tag)
    >>> execute(q, job, tag)        # Outcome(job_id, "done", "exit 0"); the row says the same

A train job runs `gq train --preset P --set k=v ... --name NAME --run-dir DIR`, DIR chosen by the queue at its
first start (`rundirs.reserve_train_dir`) and recorded in its row before the command starts; once DIR holds
config.json a new attempt runs `gq train --run-dir DIR` alone, which resumes it with its saved config, and a DIR
whose summary.json says `complete` is marked done without running again. A command job runs its argv with the
placeholders filled in. While it runs the worker heartbeats every `heartbeat_s`; a job the worker lost (it was
reaped after a long stall) is killed at once, so it never runs twice at once.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gradient_quarantine.experiments.processes import (
    WorkerTag,
    proc_start_ticks,
    signal_group,
    spawn_in_own_group,
    terminate,
)
from gradient_quarantine.experiments.queue import DEFAULT_RUNS_DIR, Job, JobQueue, QueueError
from gradient_quarantine.experiments.rundirs import has_files, holds_run, reserve_train_dir, run_status


def gq_argv() -> list[str]:
    """How to call `gq` from here: the entry-point script beside this interpreter, else via python -c."""
    script = Path(sys.executable).with_name("gq")
    if script.exists():
        return [str(script)]
    found = shutil.which("gq")
    if found:
        return [found]
    return [sys.executable, "-c", "from gradient_quarantine.cli import app; app()"]


def format_override(key: str, value: Any) -> str:
    """`key=value` for `--set`; non-strings as JSON/YAML literals so types survive the command line."""
    import yaml

    if isinstance(value, str) and yaml.safe_load(value) == value:
        return f"{key}={value}"
    return f"{key}={json.dumps(value)}"  # JSON is YAML: a string that YAML would read as a number stays quoted


def job_argv(q: JobQueue, job: Job) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment for one attempt of `job`.

    A train job needs its run directory (`assign_run_dir`): while it holds no run the command starts one there
    from the job's preset and overrides; once it holds config.json the command resumes it.
    """
    run_dir = Path(job.run_dir) if job.run_dir else None
    overrides = q.resolve_overrides(job)
    env = {
        "GQ_JOB_ID": str(job.id),
        "GQ_RUN_DIR": str(run_dir or ""),
        "GQ_ATTEMPT": str(job.attempts),
        "GQ_RESUME": "1" if has_files(run_dir) else "0",
        "GQ_OVERRIDES": json.dumps(overrides),
    }
    if job.kind == "command":
        fmt = {"job_id": job.id, "run_dir": run_dir, "attempt": job.attempts, "name": job.name,
               "arm": job.arm or "", "seed": "" if job.seed is None else job.seed}
        return [a.format(**fmt) for a in job.spec["argv"]], env
    if run_dir is None:
        raise QueueError(f"job {job.id} ({job.name}) has no run directory yet: one is reserved when it first starts")
    if holds_run(run_dir):
        return gq_argv() + ["train", "--run-dir", str(run_dir)], env
    argv = gq_argv() + ["train", "--preset", job.spec["preset"]]
    for k, v in overrides.items():
        argv += ["--set", format_override(k, v)]
    argv += ["--name", job.name, "--run-dir", str(run_dir)]
    return argv, env


def assign_run_dir(q: JobQueue, job: Job, worker: WorkerTag | str) -> Path | None:
    """A train job's run directory: the one its row records, else (its first start) a new
    `<runs_dir>/<NNNN>_<name>` reserved now and recorded before anything runs, so every later attempt lands in
    it. None when `worker` no longer holds the job (the empty directory is removed again)."""
    if job.run_dir:
        return Path(job.run_dir)
    run_dir = reserve_train_dir(job.spec.get("runs_dir") or DEFAULT_RUNS_DIR, job.name)
    if not q.set_run_dir(job.id, worker, run_dir):
        run_dir.rmdir()
        return None
    return run_dir


@dataclass
class Outcome:
    job_id: int
    status: str  # what the row ended as (done/failed/killed/queued) or "lost"
    reason: str


def execute(
    q: JobQueue,
    job: Job,
    worker: WorkerTag | str,
    *,
    heartbeat_s: float = 5.0,
    stop: threading.Event | None = None,
    kill_grace_s: float = 10.0,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run one claimed job to its end as a subprocess, heartbeating; record how it ended. `env` is added to
    the job's environment (a worker's thread / GPU limits)."""
    if job.kind == "train":
        try:
            run_dir = assign_run_dir(q, job, worker)
        except (OSError, ValueError, RuntimeError) as e:
            q.finish(job.id, worker, "failed", None, f"could not make its run directory: {e}")
            return Outcome(job.id, "failed", str(e))
        if run_dir is None:
            return Outcome(job.id, "lost", "job was taken away from this worker")
        if run_status(run_dir) == "complete":
            q.finish(job.id, worker, "done", 0, "run directory already complete; not run again")
            return Outcome(job.id, "done", "already complete")
        job = replace(job, run_dir=str(run_dir))
    try:
        argv, extra_env = job_argv(q, job)
    except (QueueError, KeyError, ValueError) as e:
        q.finish(job.id, worker, "failed", None, f"could not build its command: {e}")
        return Outcome(job.id, "failed", str(e))
    log_path = Path(job.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    Path(job.spec.get("runs_dir") or DEFAULT_RUNS_DIR).mkdir(parents=True, exist_ok=True)
    cwd = job.spec.get("cwd")
    with open(log_path, "ab") as log:
        log.write(f"\n=== job {job.id} attempt {job.attempts} by {worker} at {time.ctime()}\n"
                  f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            proc = spawn_in_own_group(argv, stdout=log, env={**os.environ, **(env or {}), **extra_env},
                                      cwd=cwd if cwd and Path(cwd).is_dir() else None)  # fmt: skip
        except OSError as e:
            q.finish(job.id, worker, "failed", None, f"could not start: {e}")
            return Outcome(job.id, "failed", str(e))
    q.set_child(job.id, worker, proc.pid, proc_start_ticks(proc.pid))

    killing = stopping = False
    kill_sent_at = 0.0
    while True:
        try:
            rc = proc.wait(timeout=heartbeat_s)
            break
        except subprocess.TimeoutExpired:
            pass
        state = q.heartbeat(job.id, worker)
        if state == "lost":
            # Someone reaped this job (we stalled past stale_s); it may already run elsewhere. Stop now.
            terminate(proc, 0.0)
            return Outcome(job.id, "lost", "job was taken away from this worker")
        if (state == "kill" or (stop is not None and stop.is_set())) and not (killing or stopping):
            killing, stopping = state == "kill", state != "kill"
            kill_sent_at = time.time()
            signal_group(proc.pid, signal.SIGTERM)
        if (killing or stopping) and time.time() - kill_sent_at > kill_grace_s:
            signal_group(proc.pid, signal.SIGKILL)
    signal_group(proc.pid, signal.SIGKILL)  # anything the job left behind in its group
    if killing or q.get(job.id).kill_requested:
        status, reason = "killed", f"killed by user (exit {rc})"
    elif stopping:
        status, reason = "queued", "worker stopped; put back in the queue"
    elif rc == 0 and job.kind == "train" and run_status(job.run_dir) != "complete":
        status = "failed"
        reason = f"exited 0 but {job.run_dir}/summary.json says status={run_status(job.run_dir)!r}"
    elif rc == 0:
        status, reason = "done", "exit 0"
    else:
        what = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
        status, reason = "failed", f"{what}; last log line: {last_line(log_path)}"
    q.finish(job.id, worker, status, rc, reason)
    return Outcome(job.id, status, reason)


def last_line(path: Path, limit: int = 300) -> str:
    """The log's last non-empty line (why a job failed, as `gq queue ls` shows it)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:limit] if lines else "(empty log)"
