"""The job queue: jobs with ids, priorities and dependencies persisted in SQLite, run by workers that
may be killed at any moment without losing a job or running one twice at once.

    >>> q = JobQueue("out/queue.sqlite")
    >>> [a, b] = q.add([JobSpec(name="route2b_s41", kind="train", preset="demo", overrides={"seed": 41}),
    ...                 JobSpec(name="random_v_s41", kind="train", preset="demo", after=[0])], priority=5)
    >>> run_local(q, workers="auto")     # experiments/workers.py: side by side, until nothing is left to run

This module is the queue itself (the SQLite rows and every transition of a job's state). Running one job is
`experiments/jobrun.py`, local workers `experiments/workers.py`, SLURM `experiments/slurm.py`; process
identity (pid + start ticks, host) is `experiments/processes.py` and a job's run directory
`experiments/rundirs.py`.

How a job is never lost and never run twice at once:

* **Claim** is one `BEGIN IMMEDIATE` transaction: pick the best runnable job (status `queued`, every
  dependency `done`, highest priority, then oldest) and set it `running` with the worker's tag
  (`host:pid:start_ticks:wN`). Two workers cannot both flip the same row.
* The worker starts the job as a subprocess in its own session (process group = job) through a tiny
  exec wrapper that sets `PR_SET_PDEATHSIG=SIGKILL`, so a SIGKILLed worker takes its job process with it.
  The job's pid and start time are written to the row; the worker refreshes `heartbeat` every few seconds.
* **Reap** (run before every claim): a `running` job whose worker is dead goes back to `queued` (or to
  `failed`, with the reason, once it has been started `max_attempts` times). Dead means: same host and the
  worker's pid is gone (or is a different process with that pid: start ticks differ); another host and no
  heartbeat for `stale_s`. Before requeueing, anything left of the job's process group is killed.
* Every later write by a worker (`heartbeat`, `finish`) is conditional on still owning the row; a worker
  that finds it lost its job (it was reaped after a long stall) kills its subprocess at once.
* A train job's run directory is chosen by the queue at its first start and recorded in the row before
  `gq train --run-dir DIR` runs, so every later attempt resumes exactly there; one whose run directory says
  `complete` is marked done without running again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradient_quarantine.experiments.processes import WorkerTag, kill_group
from gradient_quarantine.experiments.rundirs import command_run_dir, holds_run

# Job states. `queued` -> `running` -> `done` | `failed` | `killed`; `requeue` puts a finished job back.
STATUSES = ("queued", "running", "done", "failed", "killed")
KINDS = ("train", "command")
DEFAULT_DB = Path("out/queue.sqlite")
DEFAULT_RUNS_DIR = Path("out/runs")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,               -- arm + seed, e.g. route2b_s41
    sweep         TEXT,
    arm           TEXT,
    seed          INTEGER,
    kind          TEXT NOT NULL,               -- train | command
    spec          TEXT NOT NULL,               -- JSON: preset/overrides (train) or argv (command)
    priority      INTEGER NOT NULL DEFAULT 0,  -- higher runs first
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,  -- how many times a worker started it
    max_attempts  INTEGER NOT NULL DEFAULT 3,
    run_dir       TEXT,                        -- a train job's: NULL until its first start reserves it
    log           TEXT NOT NULL,
    worker        TEXT,                        -- tag of the worker holding it (running only)
    child_pid     INTEGER,                     -- the job's process = its process group id
    child_start   INTEGER,                     -- its start ticks (guards against pid reuse)
    heartbeat     REAL,
    kill_requested INTEGER NOT NULL DEFAULT 0,
    created       REAL NOT NULL,
    started       REAL,
    finished      REAL,
    rc            INTEGER,
    reason        TEXT
);
CREATE TABLE IF NOT EXISTS deps (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    dep_id INTEGER NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (job_id, dep_id)
);
CREATE TABLE IF NOT EXISTS events (
    job_id INTEGER NOT NULL,
    t      REAL NOT NULL,
    event  TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, priority, id);
"""


class QueueError(RuntimeError):
    """A queue operation that cannot be done as asked (the message says what to do instead)."""


@dataclass
class JobSpec:
    """One job to add (it has no id yet).

    kind "train": runs `gq train --preset PRESET --set k=v ... --name <name> --run-dir <runs_dir>/<NNNN>_<name>`.
    kind "command": runs `argv` after `str.format` with {job_id} {run_dir} {attempt} {name} {arm} {seed}
    (the way tests and custom sweeps run jobs without the trainer); its environment carries the same
    values as GQ_JOB_ID, GQ_RUN_DIR, GQ_ATTEMPT, GQ_RESUME (1 when the run dir already exists) and
    GQ_OVERRIDES (the resolved overrides as JSON).
    Override values "{run_dir:job=ID}" (a job in the queue) or "{run_dir:after=I}" (job I of the same add()
    batch) are replaced by that job's run directory at launch: how random-V finds the route2b run it is
    frout-matched to. The referenced job also becomes a dependency.

    Run directories (experiments/rundirs.py): a train job's is reserved at its first start
    (`<runs_dir>/<NNNN>_<name>`, NNNN the runs directory's next free job number) and passed to `gq train`; a
    command job's is `<runs_dir>/<id>_<name>`.
    """

    name: str
    kind: str = "train"
    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    argv: list[str] | None = None
    sweep: str | None = None
    arm: str | None = None
    seed: int | None = None
    runs_dir: str = str(DEFAULT_RUNS_DIR)
    after: list[int] = field(default_factory=list)  # indices into the same add() batch
    depends_on: list[int] = field(default_factory=list)  # ids of jobs already in the queue
    max_attempts: int = 3
    priority_bump: int = 0  # added to add()'s priority for this job

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"job {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "train" and not self.preset:
            raise ValueError(f"job {self.name!r}: a train job needs a preset")
        if self.kind == "command" and not self.argv:
            raise ValueError(f"job {self.name!r}: a command job needs argv")
        if self.max_attempts < 1:
            raise ValueError(f"job {self.name!r}: max_attempts must be >= 1")


@dataclass
class Job:
    """One row of the queue."""

    id: int
    name: str
    sweep: str | None
    arm: str | None
    seed: int | None
    kind: str
    spec: dict[str, Any]
    priority: int
    status: str
    attempts: int
    max_attempts: int
    run_dir: str | None
    log: str
    worker: str | None
    child_pid: int | None
    child_start: int | None
    heartbeat: float | None
    kill_requested: int
    created: float
    started: float | None
    finished: float | None
    rc: int | None
    reason: str | None
    deps: list[int] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: sqlite3.Row, deps: list[int]) -> Job:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        return cls(**d, deps=deps)


class JobQueue:
    """The SQLite-backed queue. Safe to share between threads (one connection per thread) and processes.

    Rollback-journal mode (not WAL) so the file also works on a shared filesystem that SLURM nodes reach,
    as long as that filesystem honours POSIX locks.
    """

    def __init__(self, db: str | os.PathLike = DEFAULT_DB, *, stale_s: float = 120.0) -> None:
        self.path = Path(db).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stale_s = stale_s
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    # -- plumbing ------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 60000")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front, so read-then-update is atomic."""
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    @staticmethod
    def _event(c: sqlite3.Connection, job_id: int, event: str, detail: str | None = None) -> None:
        c.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (job_id, time.time(), event, detail))

    def _deps(self, c: sqlite3.Connection, job_id: int) -> list[int]:
        return [r[0] for r in c.execute("SELECT dep_id FROM deps WHERE job_id=? ORDER BY dep_id", (job_id,))]

    def logs_dir(self) -> Path:
        return self.path.parent / "queue_logs"

    # -- reading -------------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job:
        c = self._conn()
        row = c.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise QueueError(f"no job {job_id} in {self.path}")
        return Job.from_row(row, self._deps(c, job_id))

    def jobs(self, status: str | None = None) -> list[Job]:
        c = self._conn()
        q, args = "SELECT * FROM jobs", ()
        if status:
            q, args = q + " WHERE status=?", (status,)
        rows = c.execute(q + " ORDER BY id", args).fetchall()
        return [Job.from_row(r, self._deps(c, r["id"])) for r in rows]

    def events(self, job_id: int) -> list[tuple[float, str, str | None]]:
        rows = self._conn().execute("SELECT t, event, detail FROM events WHERE job_id=? ORDER BY rowid", (job_id,))
        return [tuple(r) for r in rows]

    def find(self, *, arm: str, seed: int | None, preset: str | None = None) -> Job | None:
        """The newest job of this arm and seed not killed/failed (for dependencies across add() calls)."""
        for job in reversed(self.jobs()):
            if job.arm == arm and job.seed == seed and job.status not in ("killed", "failed"):
                if preset is None or job.spec.get("preset") == preset:
                    return job
        return None

    def resolve_overrides(self, job: Job) -> dict[str, Any]:
        """The job's overrides with each "{run_dir:job=ID}" replaced by that (finished) job's run directory."""
        out = {}
        for k, v in (job.spec.get("overrides") or {}).items():
            if _is_ref(v, "job"):
                dep = self.get(int(v[len("{run_dir:job=") : -1]))
                if dep.status != "done" or not dep.run_dir:
                    raise QueueError(f"{k} refers to job {dep.id} ({dep.name}), which is {dep.status} with no run dir")
                v = dep.run_dir
            out[k] = v
        return out

    # -- adding --------------------------------------------------------------------------------------
    def add(self, specs: list[JobSpec], priority: int = 0) -> list[int]:
        """Insert a batch of jobs (and their dependencies) in one transaction; returns their ids.

        Names are made unique per runs directory (a repeated name gets `_r2`, `_r3`, ...), so every run
        directory `<NNNN>_<name>` names one job.
        """
        for i, s in enumerate(specs):
            bad = [a for a in s.after if not 0 <= a < len(specs) or a == i]
            bad += [a for a in _refs(s.overrides, "after") if not 0 <= a < len(specs) or a == i]
            if bad:
                raise QueueError(f"job {s.name!r}: `after` indices {bad} are not other jobs of this batch")
        ids: list[int] = []
        now = time.time()
        with self._tx() as c:
            taken = {(r[0], r[1]) for r in c.execute("SELECT json_extract(spec, '$.runs_dir'), name FROM jobs")}
            for s in specs:
                for d in list(s.depends_on) + _refs(s.overrides, "job"):
                    if c.execute("SELECT 1 FROM jobs WHERE id=?", (d,)).fetchone() is None:
                        raise QueueError(f"job {s.name!r} depends on job {d}, which is not in the queue")
                runs_dir = str(Path(s.runs_dir).resolve())
                name, n = s.name, 1
                while (runs_dir, name) in taken:
                    n += 1
                    name = f"{s.name}_r{n}"
                taken.add((runs_dir, name))
                cur = c.execute(
                    "INSERT INTO jobs (name, sweep, arm, seed, kind, spec, priority, status, max_attempts,"
                    " log, created) VALUES (?, ?, ?, ?, ?, '{}', ?, 'queued', ?, '', ?)",
                    (name, s.sweep, s.arm, s.seed, s.kind, priority + s.priority_bump, s.max_attempts, now),
                )
                jid = int(cur.lastrowid)
                log = self.logs_dir() / f"{jid:04d}_{name}.log"
                run_dir = command_run_dir(runs_dir, jid, name) if s.kind == "command" else None
                c.execute("UPDATE jobs SET run_dir=?, log=? WHERE id=?", (run_dir, str(log), jid))
                self._event(c, jid, "added", f"priority {priority + s.priority_bump}")
                ids.append(jid)
            for s, jid in zip(specs, ids, strict=True):
                overrides = {
                    k: (f"{{run_dir:job={ids[_refs({k: v}, 'after')[0]]}}}" if _is_ref(v, "after") else v)
                    for k, v in s.overrides.items()
                }
                # Paths absolute and the working directory recorded, so a worker started elsewhere (or a
                # SLURM node) runs the job exactly as `queue add` saw it.
                spec = {"preset": s.preset, "overrides": overrides, "argv": s.argv,
                        "runs_dir": str(Path(s.runs_dir).resolve()), "cwd": os.getcwd()}
                c.execute("UPDATE jobs SET spec=? WHERE id=?", (json.dumps(spec), jid))
                deps = [ids[a] for a in s.after] + list(s.depends_on) + _refs(overrides, "job")
                for dep in deps:
                    c.execute("INSERT OR IGNORE INTO deps VALUES (?, ?)", (jid, dep))
        return ids

    def set_run_dir(self, job_id: int, worker: WorkerTag | str, run_dir: str | Path) -> bool:
        """Record the run directory chosen for a running job, if `worker` still holds it."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET run_dir=? WHERE id=? AND worker=? AND status='running'",
                (str(run_dir), job_id, str(worker)),
            )
            if cur.rowcount == 1:
                self._event(c, job_id, "run dir", str(run_dir))
            return cur.rowcount == 1

    # -- worker side ---------------------------------------------------------------------------------
    def reap(self) -> list[tuple[int, str]]:
        """Return jobs whose worker died to the queue (or fail them after max_attempts). Returns (id, what)."""
        out: list[tuple[int, str]] = []
        now = time.time()
        with self._tx() as c:
            for row in c.execute("SELECT * FROM jobs WHERE status='running'").fetchall():
                stale = row["heartbeat"] is None or now - row["heartbeat"] > self.stale_s
                tag = WorkerTag.parse(row["worker"] or "")
                alive = tag.alive(stale) if tag is not None else not stale
                if alive:
                    continue
                if tag is not None and tag.on_this_host():
                    kill_group(row["child_pid"], row["child_start"])  # leftovers (grandchildren)
                why = f"worker {row['worker']} died (last heartbeat {_ago(row['heartbeat'], now)})"
                out.append((row["id"], self._bury(c, row, why, now)))
        return out

    def bury(self, job_id: int, holders: list[str], why: str) -> str | None:
        """Apply the dead-worker rule to one job now, if one of `holders` still holds it (a submitter that
        learnt from SLURM that the job's allocation ended). Returns the new status, or None if not held."""
        with self._tx() as c:
            row = c.execute("SELECT * FROM jobs WHERE id=? AND status='running'", (job_id,)).fetchone()
            if row is None or row["worker"] not in holders:
                return None
            return self._bury(c, row, why, time.time())

    def _bury(self, c: sqlite3.Connection, row: sqlite3.Row, why: str, now: float) -> str:
        """Requeue a job whose worker is gone, or fail it after max_attempts, or mark it killed if asked."""
        if row["kill_requested"]:
            status, reason = "killed", "killed by user; " + why
        elif row["attempts"] >= row["max_attempts"]:
            status, reason = "failed", f"{why}; gave up after {row['attempts']} attempts"
        else:
            status, reason = "queued", f"{why}; requeued (attempt {row['attempts']} of {row['max_attempts']})"
        c.execute(
            "UPDATE jobs SET status=?, reason=?, worker=NULL, child_pid=NULL, child_start=NULL,"
            " finished=CASE WHEN ?='queued' THEN NULL ELSE ? END WHERE id=?",
            (status, reason, status, now, row["id"]),
        )
        self._event(c, row["id"], "reaped", reason)
        return status

    def claim(self, worker: WorkerTag | str) -> Job | None:
        """Atomically take the best runnable job (highest priority, then oldest) or None."""
        self.reap()
        now = time.time()
        with self._tx() as c:
            row = c.execute(
                "SELECT j.id FROM jobs j WHERE j.status='queued' AND NOT EXISTS ("
                "  SELECT 1 FROM deps d JOIN jobs p ON p.id=d.dep_id WHERE d.job_id=j.id AND p.status!='done')"
                " ORDER BY j.priority DESC, j.id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET status='running', worker=?, heartbeat=?, started=?, finished=NULL, rc=NULL,"
                " attempts=attempts+1, child_pid=NULL, child_start=NULL WHERE id=? AND status='queued'",
                (str(worker), now, now, row["id"]),
            )
            self._event(c, row["id"], "claimed", str(worker))
        return self.get(row["id"])

    def set_child(self, job_id: int, worker: WorkerTag | str, pid: int, start: int | None) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET child_pid=?, child_start=?, heartbeat=? WHERE id=? AND worker=? AND status='running'",
                (pid, start, time.time(), job_id, str(worker)),
            )
            return cur.rowcount == 1

    def heartbeat(self, job_id: int, worker: WorkerTag | str) -> str:
        """Refresh the heartbeat. Returns "ok", "kill" (user asked to kill it) or "lost" (no longer ours)."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET heartbeat=? WHERE id=? AND worker=? AND status='running'",
                (time.time(), job_id, str(worker)),
            )
            if cur.rowcount != 1:
                return "lost"
            k = c.execute("SELECT kill_requested FROM jobs WHERE id=?", (job_id,)).fetchone()[0]
        return "kill" if k else "ok"

    def transfer(self, job_id: int, old: WorkerTag | str, new: WorkerTag | str) -> bool:
        """Hand a running job from one holder to another (a SLURM submission to the node that runs it)."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET worker=?, heartbeat=? WHERE id=? AND worker=? AND status='running'",
                (str(new), time.time(), job_id, str(old)),
            )
            if cur.rowcount == 1:
                self._event(c, job_id, "transferred", f"{old} -> {new}")
            return cur.rowcount == 1

    def finish(self, job_id: int, worker: WorkerTag | str, status: str, rc: int | None, reason: str) -> bool:
        """Record how the job ended, if `worker` still holds it. `status` is done/failed/killed/queued."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET status=?, rc=?, reason=?, finished=?, worker=NULL, child_pid=NULL,"
                " child_start=NULL, kill_requested=0,"
                " attempts=CASE WHEN ?='queued' THEN MAX(attempts-1, 0) ELSE attempts END"
                " WHERE id=? AND worker=? AND status='running'",
                (status, rc, reason, None if status == "queued" else now, status, job_id, str(worker)),
            )
            if cur.rowcount == 1:
                self._event(c, job_id, status, reason)
            return cur.rowcount == 1

    # -- user side -----------------------------------------------------------------------------------
    def kill(self, job_id: int) -> str:
        """Cancel a queued job, or stop a running one (its worker sees the request within a heartbeat)."""
        job = self.get(job_id)
        with self._tx() as c:
            if job.status == "queued":
                c.execute("UPDATE jobs SET status='killed', reason='killed by user', finished=? WHERE id=?",
                          (time.time(), job_id))
                self._event(c, job_id, "killed", "while queued")
                return "cancelled (it was queued)"
            if job.status != "running":
                raise QueueError(f"job {job_id} is {job.status}; only queued or running jobs can be killed")
            c.execute("UPDATE jobs SET kill_requested=1 WHERE id=?", (job_id,))
            self._event(c, job_id, "kill requested")
        tag = WorkerTag.parse(job.worker or "")
        if tag is not None and tag.on_this_host():
            # Same host: stop it now rather than at the next heartbeat; the worker records `killed`.
            kill_group(job.child_pid, job.child_start, signal.SIGTERM)
            if not tag.alive(stale=False):
                self.reap()
            return "stopping (SIGTERM sent to its process group)"
        return "kill requested; its worker stops it at the next heartbeat"

    def requeue(self, job_id: int, *, force: bool = False) -> str:
        """Put a failed/killed (or, with force, done) job back; it resumes from its run directory."""
        self.reap()
        job = self.get(job_id)
        if job.status == "running":
            raise QueueError(f"job {job_id} is running on {job.worker}; `gq queue kill {job_id}` first")
        if job.status == "queued":
            return "already queued"
        if job.status == "done" and not force:
            raise QueueError(f"job {job_id} is done; pass --force to run it again")
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status='queued', attempts=0, kill_requested=0, reason=?, finished=NULL WHERE id=?",
                (f"requeued by user (was {job.status})", job_id),
            )
            self._event(c, job_id, "requeued", f"was {job.status}")
        rd = Path(job.run_dir) if job.run_dir else None
        if rd is not None and (holds_run(rd) if job.kind == "train" else rd.is_dir()):
            return f"queued; it will resume from {job.run_dir}"
        return "queued; it starts from scratch"

    def display_status(self, job: Job, by_id: dict[int, Job] | None = None) -> str:
        """Status plus why (blocked on a dependency, worker gone) for `gq queue ls`."""
        if job.status == "queued" and job.deps:
            by_id = by_id or {j.id: j for j in self.jobs()}
            bad = [d for d in job.deps if by_id[d].status in ("failed", "killed")]
            if bad:
                return f"blocked (dep {', '.join(map(str, bad))} {by_id[bad[0]].status}; requeue it)"
            wait = [d for d in job.deps if by_id[d].status != "done"]
            if wait:
                return f"waiting on {', '.join(map(str, wait))}"
        if job.status == "running":
            stale = job.heartbeat is None or time.time() - job.heartbeat > self.stale_s
            tag = WorkerTag.parse(job.worker or "")
            if not (tag.alive(stale) if tag else not stale):
                return "running? (worker gone; the next `queue run` requeues it)"
            if job.kill_requested:
                return "running (kill requested)"
        return job.status

    def outlook(self) -> tuple[int, int, int]:
        """(runnable, running, waiting): waiting = queued jobs whose dependencies may still finish."""
        jobs = self.jobs()
        by_id = {j.id: j for j in jobs}
        runnable = running = waiting = 0
        for j in jobs:
            if j.status == "running":
                running += 1
            elif j.status == "queued":
                states = {by_id[d].status for d in j.deps}
                if states <= {"done"}:
                    runnable += 1
                elif not states & {"failed", "killed"}:
                    waiting += 1
        return runnable, running, waiting


def _is_ref(v: Any, kind: str) -> bool:
    prefix = f"{{run_dir:{kind}="
    return isinstance(v, str) and v.startswith(prefix) and v.endswith("}") and v[len(prefix) : -1].isdigit()


def _refs(overrides: dict[str, Any], kind: str) -> list[int]:
    """The ints I of "{run_dir:KIND=I}" override values."""
    n = len(f"{{run_dir:{kind}=")
    return [int(v[n:-1]) for v in overrides.values() if _is_ref(v, kind)]


def _ago(t: float | None, now: float) -> str:
    return "never" if t is None else f"{now - t:.0f} s ago"
