"""The job queue: jobs with ids, priorities and dependencies persisted in SQLite, run by workers that
may be killed at any moment without losing a job or running one twice at once.

    >>> q = JobQueue("out/queue.sqlite")
    >>> [a, b] = q.add([JobSpec(name="route2b_s41", kind="train", preset="demo", overrides={"seed": 41}),
    ...                 JobSpec(name="random_v_s41", kind="train", preset="demo", after=[0])], priority=5)
    >>> run_local(q, workers="auto")     # side by side, one per core; returns when nothing is left that could run

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
* A train job whose run directory already exists resumes (`gq train --resume RUN_DIR`); one whose run
  directory says `complete` is marked done without running again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    run_dir       TEXT,                        -- NULL until a train job's directory appears
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

    kind "train": runs `gq train --preset PRESET --set k=v ... --runs-dir RUNS --name <id>_<name>`.
    kind "command": runs `argv` after `str.format` with {job_id} {run_dir} {attempt} {name} {arm} {seed}
    (the way tests and custom sweeps run jobs without the trainer); its environment carries the same
    values as GQ_JOB_ID, GQ_RUN_DIR, GQ_ATTEMPT, GQ_RESUME (1 when the run dir already exists) and
    GQ_OVERRIDES (the resolved overrides as JSON).
    Override values "{run_dir:job=ID}" (a job in the queue) or "{run_dir:after=I}" (job I of the same add()
    batch) are replaced by that job's run directory at launch: how random-V finds the route2b run it is
    frout-matched to. The referenced job also becomes a dependency.

    Run directories: a train job's is created by the trainer (`<runs_dir>/<NNNN>_<name>`, the trainer numbers
    it) and found by the worker when it appears; a command job's is `<runs_dir>/<id>_<name>`.
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


# ----------------------------------------------------------------------------------------------------
# Process identity: a pid alone is not an identity (pids are reused), pid + start ticks is.


def proc_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (Linux /proc), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; field 3 is fields[0]
    return int(fields[19])  # field 22: starttime


def pid_alive(pid: int, start: int | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, when `start` is given, is the same process as then."""
    proc = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            stat = proc.read_text()
        except OSError:
            return False
        rest = stat[stat.rindex(")") + 2 :].split()
        if rest[0] in ("Z", "X"):  # a zombie has exited; its parent just has not reaped it
            return False
        return start is None or int(rest[19]) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class WorkerTag:
    """Who holds a running job: `host:pid:start:slot` (slot tells the threads of one process apart)."""

    host: str
    pid: int
    start: int | None
    slot: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.start if self.start is not None else '-'}:{self.slot}"

    @classmethod
    def parse(cls, tag: str) -> WorkerTag | None:
        parts = tag.split(":")
        if len(parts) != 4 or not parts[1].isdigit():
            return None  # e.g. a SLURM submission placeholder, judged by heartbeat age only
        return cls(parts[0], int(parts[1]), None if parts[2] == "-" else int(parts[2]), parts[3])

    @classmethod
    def here(cls, slot: str) -> WorkerTag:
        return cls(socket.gethostname(), os.getpid(), proc_start_ticks(os.getpid()), slot)

    def alive(self, stale: bool) -> bool:
        """Same host: ask the OS. Another host: trust the heartbeat (`stale` = no heartbeat for stale_s)."""
        if self.host == socket.gethostname():
            return pid_alive(self.pid, self.start)
        return not stale


def kill_group(pgid: int | None, start: int | None, sig: int = signal.SIGKILL) -> bool:
    """Kill what is left of a job's process group, without hitting an unrelated one after pid reuse.

    A pid cannot be handed out again while a process group with that id still has members, so: the leader
    alive with the same start ticks -> ours; leader gone but the group exists -> its orphans, ours;
    a different process with that pid -> ours is long gone, leave it.
    """
    if not pgid or pgid <= 1:
        return False
    leader_start = proc_start_ticks(pgid)
    if leader_start is not None and start is not None and leader_start != start:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# ----------------------------------------------------------------------------------------------------


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

    # -- adding --------------------------------------------------------------------------------------
    def add(self, specs: list[JobSpec], priority: int = 0) -> list[int]:
        """Insert a batch of jobs (and their dependencies) in one transaction; returns their ids.

        Names are made unique per runs directory (a repeated name gets `_r2`, `_r3`, ...), so the trainer's
        run directory `<NNNN>_<name>` can be told apart from every other job's.
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
                run_dir = str(Path(runs_dir) / f"{jid:04d}_{name}") if s.kind == "command" else None
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
                if tag is not None and tag.host == socket.gethostname():
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
        if tag is not None and tag.host == socket.gethostname():
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
        if rd is not None and ((rd / "config.json").exists() if job.kind == "train" else rd.is_dir()):
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


# ----------------------------------------------------------------------------------------------------
# Running one job


def gq_argv() -> list[str]:
    """How to call `gq` from here: the entry-point script beside this interpreter, else via python -c."""
    script = Path(sys.executable).with_name("gq")
    if script.exists():
        return [str(script)]
    found = shutil.which("gq")
    if found:
        return [found]
    return [sys.executable, "-c", "from gradient_quarantine.cli import app; app()"]


def resolve_overrides(q: JobQueue, job: Job) -> dict[str, Any]:
    """Replace "{run_dir:job=ID}" values with that (finished) job's run directory."""
    out = {}
    for k, v in (job.spec.get("overrides") or {}).items():
        if _is_ref(v, "job"):
            dep = q.get(int(v[len("{run_dir:job=") : -1]))
            if dep.status != "done" or not dep.run_dir:
                raise QueueError(f"{k} refers to job {dep.id} ({dep.name}), which is {dep.status} with no run dir")
            v = dep.run_dir
        out[k] = v
    return out


def format_override(key: str, value: Any) -> str:
    """`key=value` for `--set`; non-strings as JSON/YAML literals so types survive the command line."""
    import yaml

    if isinstance(value, str) and yaml.safe_load(value) == value:
        return f"{key}={value}"
    return f"{key}={json.dumps(value)}"  # JSON is YAML: a string that YAML would read as a number stays quoted


def _summary_status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def job_argv(q: JobQueue, job: Job) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment for one attempt of `job`.

    A train job whose run directory exists (config.json written) resumes; otherwise it starts fresh.
    """
    run_dir = Path(job.run_dir) if job.run_dir else None
    overrides = resolve_overrides(q, job)
    resume = run_dir is not None and run_dir.exists() and any(run_dir.iterdir())
    env = {
        "GQ_JOB_ID": str(job.id),
        "GQ_RUN_DIR": str(run_dir or ""),
        "GQ_ATTEMPT": str(job.attempts),
        "GQ_RESUME": "1" if resume else "0",
        "GQ_OVERRIDES": json.dumps(overrides),
    }
    if job.kind == "command":
        fmt = {"job_id": job.id, "run_dir": run_dir, "attempt": job.attempts, "name": job.name,
               "arm": job.arm or "", "seed": "" if job.seed is None else job.seed}
        return [a.format(**fmt) for a in job.spec["argv"]], env
    if run_dir is not None and (run_dir / "config.json").exists():
        return gq_argv() + ["train", "--resume", str(run_dir)], env
    argv = gq_argv() + ["train", "--preset", job.spec["preset"]]
    for k, v in overrides.items():
        argv += ["--set", format_override(k, v)]
    argv += ["--runs-dir", job.spec["runs_dir"], "--name", job.name]
    return argv, env


def find_new_run_dir(runs_dir: Path, name: str, before: set[str]) -> Path | None:
    """The trainer's `<NNNN>_<name>` directory that appeared since `before` (names are unique per queue)."""
    pat = re.compile(rf"^\d{{4,}}_{re.escape(name)}$")
    try:
        new = [p for p in runs_dir.iterdir() if p.name not in before and pat.match(p.name) and p.is_dir()]
    except OSError:
        return None
    return max(new, key=lambda p: p.name) if new else None


def _exec_with_parent_death_signal(argv: list[str]) -> None:
    """Exec wrapper (`python -m gradient_quarantine.experiments.queue --exec ARGV`): die with the worker.

    PR_SET_PDEATHSIG survives exec, so the job process gets SIGKILL the moment the worker thread that
    started it dies, even by SIGKILL. Without this the job would run on as an orphan while the queue,
    seeing a dead worker, starts it again: the "run twice at once" the queue must never do.
    """
    expected_parent = int(os.environ.pop("GQ_PARENT_PID", "0"))
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if expected_parent and os.getppid() != expected_parent:
        os._exit(70)  # the worker died before the signal was armed
    os.execvp(argv[0], argv)


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
    run_dir = Path(job.run_dir) if job.run_dir else None
    if job.kind == "train" and run_dir is not None and _summary_status(run_dir) == "complete":
        q.finish(job.id, worker, "done", 0, "run directory already complete; not run again")
        return Outcome(job.id, "done", "already complete")
    if job.kind == "train" and run_dir is not None and not (run_dir / "config.json").exists():
        # Killed before the trainer wrote its config: nothing to resume; a fresh start makes a new directory.
        _rmdir_if_empty(run_dir)
        run_dir = None
    try:
        argv, extra_env = job_argv(q, job)
    except (QueueError, KeyError, ValueError) as e:
        q.finish(job.id, worker, "failed", None, f"could not build its command: {e}")
        return Outcome(job.id, "failed", str(e))
    log_path = Path(job.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(job.spec.get("runs_dir") or (run_dir.parent if run_dir else DEFAULT_RUNS_DIR))
    runs_dir.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in runs_dir.iterdir()}
    cwd = job.spec.get("cwd")
    env = {**os.environ, **(env or {}), **extra_env, "GQ_PARENT_PID": str(os.getpid())}
    with open(log_path, "ab") as log:
        log.write(f"\n=== job {job.id} attempt {job.attempts} by {worker} at {time.ctime()}\n"
                  f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gradient_quarantine.experiments.queue", "--exec", *argv],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=cwd if cwd and Path(cwd).is_dir() else None,
                start_new_session=True,  # its own process group: kill the job = kill the group
            )
        except OSError as e:
            q.finish(job.id, worker, "failed", None, f"could not start: {e}")
            return Outcome(job.id, "failed", str(e))
    q.set_child(job.id, worker, proc.pid, proc_start_ticks(proc.pid))

    def discover() -> None:
        nonlocal run_dir
        if run_dir is None and job.kind == "train":
            found = find_new_run_dir(runs_dir, job.name, before)
            if found is not None and q.set_run_dir(job.id, worker, found):
                run_dir = found

    killing = stopping = False
    kill_sent_at = 0.0
    while True:
        try:
            rc = proc.wait(timeout=heartbeat_s)
            break
        except subprocess.TimeoutExpired:
            pass
        discover()
        state = q.heartbeat(job.id, worker)
        if state == "lost":
            # Someone reaped this job (we stalled past stale_s); it may already run elsewhere. Stop now.
            _terminate(proc, 0.0)
            return Outcome(job.id, "lost", "job was taken away from this worker")
        if (state == "kill" or (stop is not None and stop.is_set())) and not (killing or stopping):
            killing, stopping = state == "kill", state != "kill"
            kill_sent_at = time.time()
            _signal_group(proc.pid, signal.SIGTERM)
        if (killing or stopping) and time.time() - kill_sent_at > kill_grace_s:
            _signal_group(proc.pid, signal.SIGKILL)
    _signal_group(proc.pid, signal.SIGKILL)  # anything the job left behind in its group
    discover()
    if killing or q.get(job.id).kill_requested:
        status, reason = "killed", f"killed by user (exit {rc})"
    elif stopping:
        status, reason = "queued", "worker stopped; put back in the queue"
    elif rc == 0 and job.kind == "train" and (run_dir is None or _summary_status(run_dir) != "complete"):
        status = "failed"
        where = f"{run_dir}/summary.json says status={_summary_status(run_dir)!r}" if run_dir else (
            f"no run directory {runs_dir}/NNNN_{job.name} appeared")
        reason = f"exited 0 but {where}"
    elif rc == 0:
        status, reason = "done", "exit 0"
    else:
        what = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
        status, reason = "failed", f"{what}; last log line: {_last_line(log_path)}"
    q.finish(job.id, worker, status, rc, reason)
    return Outcome(job.id, status, reason)


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(proc: subprocess.Popen, grace_s: float) -> None:
    _signal_group(proc.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
    try:
        proc.wait(timeout=grace_s if grace_s > 0 else 5.0)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _last_line(path: Path, limit: int = 300) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:limit] if lines else "(empty log)"


# ----------------------------------------------------------------------------------------------------
# Local workers


def job_isolation(job: Job) -> str:
    """The sandbox level a train job's grader will ask for: its run directory's config.json when it resumes,
    else its `grader.isolation` override, else its preset's, else "auto"."""
    from gradient_quarantine.experiments.presets import ConfigError, load_preset

    if job.run_dir and (Path(job.run_dir) / "config.json").is_file():
        try:
            config = json.loads((Path(job.run_dir) / "config.json").read_text(encoding="utf-8"))
            return str((config.get("grader") or {}).get("isolation") or "auto")
        except (OSError, ValueError):
            return "auto"
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


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--exec":
        _exec_with_parent_death_signal(sys.argv[2:])
    else:
        sys.exit("usage: python -m gradient_quarantine.experiments.queue --exec COMMAND [ARGS...]")
