"""Process identity and process groups for the queue: who holds a job, whether that holder still lives, and a
job process that dies with its worker.

    >>> tag = WorkerTag.here("w0")                  # host:pid:start_ticks:w0, written into the job's row
    >>> tag.alive(stale=False)                      # same host: ask the OS; another host: trust the heartbeat
    >>> proc = spawn_in_own_group(["gq", "train", ...], stdout=log, env=env)
    >>> kill_group(proc.pid, proc_start_ticks(proc.pid))   # what is left of the job, never an unrelated group

A pid alone is not an identity (pids are reused); pid + start ticks (Linux /proc) is. A job runs in its own
session (process group = the job) and is started through an exec wrapper that sets `PR_SET_PDEATHSIG=SIGKILL`,
so a SIGKILLed worker takes its job with it instead of leaving an orphan the queue would start again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO


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

    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self, stale: bool) -> bool:
        """Same host: ask the OS. Another host: trust the heartbeat (`stale` = no heartbeat for stale_s)."""
        if self.on_this_host():
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


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group we started and still wait on (so its id cannot have been reused)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def terminate(proc: subprocess.Popen, grace_s: float) -> None:
    """Stop a job's whole group: SIGTERM and `grace_s` seconds to exit, then SIGKILL (at once when 0)."""
    signal_group(proc.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
    try:
        proc.wait(timeout=grace_s if grace_s > 0 else 5.0)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def spawn_in_own_group(
    argv: list[str], *, stdout: IO[bytes], env: dict[str, str], cwd: str | None = None
) -> subprocess.Popen:
    """Start `argv` as a job: its own session (process group = the job; kill the job = kill the group), stdout
    and stderr to `stdout`, no stdin, through `exec_with_parent_death_signal` so it dies with this process."""
    return subprocess.Popen(
        [sys.executable, "-m", "gradient_quarantine.experiments.processes", "--exec", *argv],
        stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**env, "GQ_PARENT_PID": str(os.getpid())}, cwd=cwd, start_new_session=True,
    )  # fmt: skip


def exec_with_parent_death_signal(argv: list[str]) -> None:
    """Exec wrapper (`python -m gradient_quarantine.experiments.processes --exec ARGV`): die with the worker.

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


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--exec":
        exec_with_parent_death_signal(sys.argv[2:])
    else:
        sys.exit("usage: python -m gradient_quarantine.experiments.processes --exec COMMAND [ARGS...]")
