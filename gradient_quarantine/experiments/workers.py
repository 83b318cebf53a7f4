"""Local workers: jobs side by side on this machine, each in a worker thread that claims, runs and records one
job at a time, and what each running job's run directory says about its progress.

    >>> run_local(q, workers="auto")     # one job per GPU, else per CPU core; returns when nothing is left
    >>> WorkerPlan.make("auto").why      # "auto: 4 CPU cores; 1 torch thread per job"

Before starting anything `run_local` checks that every queued train job could grade safely here
(`check_isolation`), so no job burns an attempt on a sandbox the machine does not have.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradient_quarantine.experiments.jobrun import Outcome, execute
from gradient_quarantine.experiments.processes import WorkerTag
from gradient_quarantine.experiments.queue import Job, JobQueue, QueueError
from gradient_quarantine.experiments.rundirs import holds_run, saved_config


def job_isolation(job: Job) -> str:
    """The sandbox level a train job's grader will ask for: its run directory's config.json when it resumes,
    else its `grader.isolation` override, else its preset's, else "auto"."""
    from gradient_quarantine.experiments.presets import ConfigError, load_preset

    if holds_run(job.run_dir):
        config = saved_config(job.run_dir) or {}
        return str((config.get("grader") or {}).get("isolation") or "auto")
    overrides = job.spec.get("overrides") or {}
    if "grader.isolation" in overrides:
        return str(overrides["grader.isolation"])
    try:
        return str((load_preset(job.spec.get("preset") or "").get("grader") or {}).get("isolation") or "auto")
    except ConfigError:
        return "auto"


def check_isolation(q: JobQueue) -> None:
    """Refuse to start local workers when a queued train job's grader would refuse to start here (no sandbox
    at the level it asks for): the check `gq train` makes, once, before any job burns an attempt on it."""
    from gradient_quarantine.substrate.sandbox import SandboxError, detect_isolation

    by_level: dict[str, list[str]] = {}
    for job in q.jobs("queued"):
        if job.kind == "train":
            by_level.setdefault(job_isolation(job), []).append(job.name)
    for level, names in sorted(by_level.items()):
        try:
            detect_isolation(level)
        except (SandboxError, ValueError) as e:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise QueueError(f"not starting: {len(names)} queued train job(s) ({shown}) grade with isolation "
                             f"{level!r}, which is refused here: {e}") from None


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices a job here could use: CUDA_VISIBLE_DEVICES when set, else what torch sees (none when
    torch has no CUDA)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    except ImportError:
        return []


@dataclass(frozen=True)
class WorkerPlan:
    """How many jobs run at once here and what each one's process may use."""

    workers: int
    env: list[dict[str, str]]  # per worker slot: added to its jobs' environment
    why: str

    @classmethod
    def make(cls, workers: int | str) -> WorkerPlan:
        """`workers`: a count, or "auto" = one job per GPU (each sees only its own) on a GPU machine, else one
        per CPU core. With several workers each job gets cores // workers torch threads (OMP_NUM_THREADS, which
        torch's default follows; a preset's explicit run.torch_threads wins), so side by side they do not
        oversubscribe the cores, and one GPU (CUDA_VISIBLE_DEVICES, round robin)."""
        gpus = visible_gpus() if workers == "auto" else None  # (imports torch: only when it is needed)
        if gpus is not None:
            n = len(gpus) or cpu_count()
            why = f"auto: {len(gpus)} GPUs" if gpus else f"auto: {n} CPU cores"
        else:
            n = int(workers)
            if n < 1:
                raise ValueError(f"workers must be >= 1 or 'auto', got {workers!r}")
            why = f"{n} asked"
        if n == 1:  # one job at a time: its environment as it always was
            return cls(1, [{}], why)
        gpus = visible_gpus() if gpus is None else gpus
        threads = max(1, cpu_count() // n)
        env = []
        for i in range(n):
            e = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            if gpus:
                e["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
            env.append(e)
        return cls(n, env, f"{why}; {threads} torch thread{'s' if threads > 1 else ''} per job")


@dataclass
class JobProgress:
    """What a running job's run directory says (summary.json, the last metrics.jsonl row)."""

    slot: str
    job_id: int
    name: str
    started: float  # when this attempt started (time.time())
    steps_done: int | None = None
    steps: int | None = None
    step_s: float | None = None  # the last step's time

    @property
    def eta_s(self) -> float | None:
        if self.steps is None or self.steps_done is None or not self.step_s:
            return None
        return max(self.steps - self.steps_done, 0) * self.step_s

    def line(self) -> str:
        """`[w0] job 2 route2b_s41: step 7/24, 41 s/step, ~12 min left (5 min in)`"""
        what = f"step {self.steps_done or 0}/{self.steps}" if self.steps else "starting"
        if self.step_s:
            what += f", {self.step_s:.0f} s/step, ~{fmt_duration(self.eta_s)} left"
        return f"[{self.slot}] job {self.job_id} {self.name}: {what} ({fmt_duration(time.time() - self.started)} in)"


def fmt_duration(s: float | None) -> str:
    """`45 s`, `12 min`, `?`"""
    return "?" if s is None else f"{s / 60:.0f} min" if s >= 90 else f"{s:.0f} s"


def job_progress(slot: str, job: Job, started: float) -> JobProgress:
    """Read a running job's progress from its run directory (nothing yet if it has none)."""
    p = JobProgress(slot, job.id, job.name, started)
    if not job.run_dir:
        return p
    rd = Path(job.run_dir)
    try:
        summary = json.loads((rd / "summary.json").read_text())
        p.steps_done, p.steps = summary.get("steps_done"), summary.get("steps")
    except (OSError, ValueError):
        pass
    try:
        with open(rd / "metrics.jsonl", "rb") as f:
            f.seek(max(0, os.path.getsize(rd / "metrics.jsonl") - 65536))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        p.step_s = json.loads(lines[-1]).get("perf/step_time_s") if lines else None
    except (OSError, ValueError):
        pass
    return p


def run_local(
    q: JobQueue,
    workers: int | str = 1,
    *,
    heartbeat_s: float = 5.0,
    poll_s: float = 2.0,
    forever: bool = False,
    on_event: Callable[[str], None] | None = None,
    on_progress: Callable[[list[JobProgress]], None] | None = None,
    progress_s: float = 5.0,
    install_signal_handlers: bool = True,
) -> list[Outcome]:
    """Run jobs with `workers` threads (each one job subprocess at a time; "auto": `WorkerPlan.make`) until
    nothing can run. Independent jobs run side by side; a job waits for its dependencies (random-V for its
    route2b run). `on_progress` gets every running job's progress every `progress_s` seconds.

    Stops when no job is runnable, running (anywhere) or waiting on a dependency that may still finish
    (with `forever`, keeps polling for new jobs). SIGINT/SIGTERM: the running jobs are stopped and put back
    in the queue, so a `queue run` stopped politely costs no attempt. Raises QueueError before starting
    anything when the queued train jobs could not grade safely here (`check_isolation`).
    """
    check_isolation(q)
    plan = WorkerPlan.make(workers)
    say = on_event or (lambda msg: None)
    stop = threading.Event()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    running: dict[str, tuple[int, float]] = {}  # slot -> (job id, started)
    if plan.workers > 1:
        say(f"{plan.workers} workers ({plan.why})")

    def loop(slot: int) -> None:
        tag = WorkerTag.here(f"w{slot}")
        while not stop.is_set():
            job = q.claim(tag)
            if job is None:
                runnable, running_n, waiting = q.outlook()
                if not forever and runnable == running_n == waiting == 0:
                    return
                stop.wait(poll_s)
                continue
            where = f"resumes {job.run_dir}" if job.run_dir else f"new run directory in {job.spec.get('runs_dir')}"
            say(f"[w{slot}] job {job.id} {job.name}: start (attempt {job.attempts}), {where}")
            with lock:
                running[f"w{slot}"] = (job.id, time.time())
            try:
                out = execute(q, job, tag, heartbeat_s=heartbeat_s, stop=stop, env=plan.env[slot])
            finally:
                with lock:
                    running.pop(f"w{slot}", None)
            run_dir = q.get(job.id).run_dir
            say(f"[w{slot}] job {job.id} {job.name}: {out.status} ({out.reason})" + (f" -> {run_dir}" if run_dir else ""))
            with lock:
                outcomes.append(out)

    def report_progress() -> None:
        with lock:
            now_running = dict(running)
        snapshot = []
        for slot, (job_id, started) in sorted(now_running.items()):
            try:
                snapshot.append(job_progress(slot, q.get(job_id), started))
            except QueueError:
                continue
        on_progress(snapshot)

    previous = {}
    if install_signal_handlers and threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: Any) -> None:
            say(f"signal {signum}: stopping; running jobs go back to the queue")
            stop.set()

        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, handler)
    threads = [threading.Thread(target=loop, args=(i,), name=f"gq-worker-{i}", daemon=True)
               for i in range(plan.workers)]
    try:
        for t in threads:
            t.start()
        last = 0.0
        while any(t.is_alive() for t in threads):
            if on_progress is not None and time.monotonic() - last >= progress_s:
                last = time.monotonic()
                report_progress()
            time.sleep(0.5)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return outcomes
