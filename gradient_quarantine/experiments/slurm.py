"""The same queue on SLURM (or any submitit backend): a submitter claims runnable jobs and submits each one
as a submitit job whose callable runs the job on the node exactly as a local worker would.

    >>> q = JobQueue("out/queue.sqlite")          # on a filesystem the nodes share
    >>> run_submitit(q, cluster="slurm", partition="gpu", gpus=1, time="12:00:00", max_running=16)
    >>> run_submitit(q, cluster="local")          # submitit's local executor (what the tests use)

Ownership hand-off: the submitter claims a job under a placeholder tag `submitit:<uuid>` and refreshes its
heartbeat while the job waits in SLURM's queue; on the node, `NodeJob` takes the job over
(`JobQueue.transfer`, conditional on the placeholder still holding it) and runs `jobrun.execute`. If the
submitter dies, the placeholder's heartbeat goes stale, the job is requeued, and a late-starting node finds
it no longer holds the job and exits without running it. If SLURM ends the allocation (cancel, node failure,
out of memory) the submitter sees submitit report the job finished while the row still says running, and
requeues it at once. On a SLURM timeout or preemption submitit calls `NodeJob.checkpoint` and requeues the same
callable, which resumes the run directory.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import submitit

from gradient_quarantine.experiments.jobrun import execute
from gradient_quarantine.experiments.processes import WorkerTag
from gradient_quarantine.experiments.queue import JobQueue


def parse_time_min(text: str | int | float | None) -> int | None:
    """SLURM-style time limits -> minutes: "90", "90m", "2h", "1:30:00", "2-00:00:00" (days-hh:mm:ss)."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return int(text)
    t = text.strip().lower()
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*(m|min|h|d)?", t):
        value, unit = float(m.group(1)), m.group(2) or "m"
        return int(round(value * {"m": 1, "min": 1, "h": 60, "d": 1440}[unit]))
    # sbatch --time forms: MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    try:
        if "-" in t:
            d, rest = t.split("-", 1)
            hms = [int(p) for p in rest.split(":")]
            if not 1 <= len(hms) <= 3:
                raise ValueError
            h, mi, sec = (hms + [0, 0])[:3]
            days = int(d)
        else:
            hms = [int(p) for p in t.split(":")]
            if len(hms) == 2:
                h, mi, sec = 0, hms[0], hms[1]
            elif len(hms) == 3:
                h, mi, sec = hms
            else:
                raise ValueError
            days = 0
    except ValueError:
        raise ValueError(f"time {text!r}: use minutes, 90m, 2h, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]") from None
    return days * 1440 + h * 60 + mi + (1 if sec else 0)


@dataclass
class SlurmOptions:
    """Resources per job. Names follow `sbatch` (partition, gpus, time); extra goes to submitit as is."""

    partition: str | None = None
    gpus: int = 1
    time: str | None = "24:00:00"
    cpus: int | None = None
    mem_gb: int | None = None
    account: str | None = None
    qos: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"slurm_constraint": "h100"}


def make_executor(cluster: str, folder: str | Path, opts: SlurmOptions) -> submitit.AutoExecutor:
    """A submitit executor for `cluster` ("slurm", "local", "debug") with the job resources of `opts`."""
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params: dict[str, Any] = {
        "name": "gq",
        "timeout_min": parse_time_min(opts.time),
        "gpus_per_node": opts.gpus,
        "cpus_per_task": opts.cpus,
        "mem_gb": opts.mem_gb,
        "tasks_per_node": 1,
        "nodes": 1,
        "slurm_partition": opts.partition,
        **opts.extra,
    }
    slurm_extra = {k: v for k, v in (("account", opts.account), ("qos", opts.qos)) if v}
    if slurm_extra:
        params["slurm_additional_parameters"] = slurm_extra
    if cluster == "local":
        params["gpus_per_node"] = 0 if opts.gpus is None else opts.gpus
    ex.update_parameters(**params)
    return ex


class NodeJob(submitit.helpers.Checkpointable):
    """What runs on the node: take the job over from its current holder, run it, record the outcome."""

    def __init__(self, db: str, job_id: int, holder: str, heartbeat_s: float = 10.0, stale_s: float = 300.0):
        self.db = db
        self.job_id = job_id
        self.holder = holder  # the tag that holds the row right now (placeholder, or the previous incarnation)
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s

    def __call__(self) -> dict[str, Any]:
        q = JobQueue(self.db, stale_s=self.stale_s)
        me = WorkerTag.here("slurm")
        if not q.transfer(self.job_id, self.holder, me):
            return {"job_id": self.job_id, "status": "skipped", "reason": f"no longer held by {self.holder}"}
        self.holder = str(me)  # pickled by checkpoint(): a requeued incarnation takes over from this one
        out = execute(q, q.get(self.job_id), me, heartbeat_s=self.heartbeat_s)
        return asdict(out)


def run_submitit(
    q: JobQueue,
    *,
    cluster: str = "slurm",
    opts: SlurmOptions | None = None,
    folder: str | Path | None = None,
    max_running: int = 8,
    poll_s: float = 15.0,
    heartbeat_s: float = 10.0,
    forever: bool = False,
    on_event: Callable[[str], None] | None = None,
    executor: Any = None,
) -> list[dict[str, Any]]:
    """Submit runnable jobs (up to `max_running` at once) and follow them until nothing is left to run.

    The submitter must keep running while jobs are pending (it refreshes their heartbeat and submits jobs whose
    dependencies just finished); run it in tmux/screen or as a small CPU job of its own.
    """
    say = on_event or (lambda msg: None)
    opts = opts or SlurmOptions()
    folder = Path(folder) if folder else q.path.parent / "submitit"
    ex = executor or make_executor(cluster, folder, opts)
    active: dict[int, tuple[str, Any]] = {}  # queue id -> (placeholder tag, submitit job)
    results: list[dict[str, Any]] = []
    stop = threading.Event()
    while True:
        # Keep placeholders alive while their jobs wait in SLURM's queue (a node refreshes its own once started).
        for jid, (tag, sj) in list(active.items()):
            if q.heartbeat(jid, tag) == "kill":
                sj.cancel(check=False)
            if sj.done():
                row = q.get(jid)
                holders = [tag, *([row.worker] if row.worker and row.status == "running" else [])]
                state = _state(sj)
                buried = q.bury(jid, holders, f"submitit job {sj.job_id} ended ({state}) without recording an end")
                res = _result(sj)
                results.append({"job_id": jid, "submitit_id": sj.job_id, "state": state, **res})
                say(f"job {jid} {row.name}: {'requeued/failed: ' + buried if buried else q.get(jid).status}"
                    f" (submitit {sj.job_id}: {state})")
                del active[jid]
        while len(active) < max_running:
            tag = f"submitit:{uuid.uuid4().hex[:12]}"
            job = q.claim(tag)
            if job is None:
                break
            sj = ex.submit(NodeJob(str(q.path), job.id, tag, heartbeat_s=heartbeat_s, stale_s=q.stale_s))
            with q._tx() as c:
                q._event(c, job.id, "submitted", f"{cluster} job {sj.job_id}")
            active[job.id] = (tag, sj)
            say(f"job {job.id} {job.name}: submitted as {cluster} job {sj.job_id}")
        runnable, running, waiting = q.outlook()
        if not active and not forever and runnable == running == waiting == 0:
            return results
        stop.wait(poll_s)


def _state(sj: Any) -> str:
    try:
        return str(sj.state)
    except Exception as e:  # noqa: BLE001 - a scheduler query can fail in many ways; the state is informative only
        return f"unknown ({type(e).__name__})"


def _result(sj: Any) -> dict[str, Any]:
    try:
        r = sj.result()
        return r if isinstance(r, dict) else {"result": repr(r)}
    except Exception as e:  # noqa: BLE001 - the job's own failure is reported, not raised in the submitter
        return {"status": "error", "reason": f"{type(e).__name__}: {str(e)[-300:]}"}
