"""Fault injection for the resume tests, from outside the trainer (no production module carries a test hook).

A run is made to fail right after its run directory records step k as done: `RunDir.write_summary("running", k)`
is the last thing a step writes (after its metrics row, rollouts, eval, direction refresh and checkpoint, when
due; docs/run_directory.md, summary.json), so the failure leaves exactly what a crash after step k leaves.

    >>> with crash_after_step(3):                  # in this process: RuntimeError("injected crash after step 3")
    ...     train(cfg, runs_dir=tmp)
    >>> subprocess.run(gq_train_argv, env=kill_after_step_env(3))   # a child `gq train` SIGKILLs itself
    >>> arm_kill_after_step(monkeypatch, 3)        # every Python process this test starts (a queue's jobs), too

A child process gets the fault through `fault_hooks/sitecustomize.py`, which Python imports at start-up when
`PYTHONPATH` holds that folder; it arms the kill only when `KILL_ENV` is set, and sandboxed programs never see it
(the sandbox clears the environment).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from gradient_quarantine.train.rundir import RunDir

KILL_ENV = "GQ_FAULT_KILL_AFTER_STEP"
HOOK_DIR = Path(__file__).resolve().parent / "fault_hooks"


def _after_step(step: int, fault: Callable[[int], None]) -> Callable[[], None]:
    """Wrap `RunDir.write_summary` so that `fault(step)` runs once the summary says step `step` is done; returns
    the function that undoes it."""
    original = RunDir.write_summary

    def write_summary(self, status, steps_done, *args, **kwargs):
        original(self, status, steps_done, *args, **kwargs)
        if status == "running" and steps_done == step:
            fault(step)

    RunDir.write_summary = write_summary

    def undo() -> None:
        RunDir.write_summary = original

    return undo


@contextmanager
def crash_after_step(step: int) -> Iterator[None]:
    """Within the block, a run in this process raises `RuntimeError("injected crash after step <step>")` once
    step `step` is recorded (the trainer's own error handling then marks the run failed)."""

    def crash(k: int) -> None:
        raise RuntimeError(f"injected crash after step {k}")

    undo = _after_step(step, crash)
    try:
        yield
    finally:
        undo()


def install_kill_after_step(step: int) -> None:
    """This process SIGKILLs itself once its run records step `step` (a real kill: nothing is flushed or
    cleaned up). Called by `fault_hooks/sitecustomize.py` in a child process."""
    _after_step(step, lambda _: os.kill(os.getpid(), signal.SIGKILL))


def kill_after_step_env(step: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) plus what makes a Python child process SIGKILL itself after step `step`."""
    out = dict(os.environ if env is None else env)
    out[KILL_ENV] = str(step)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(HOOK_DIR), out.get("PYTHONPATH", "")) if p)
    return out


def arm_kill_after_step(monkeypatch, step: int) -> None:
    """Python processes started from now on (e.g. the jobs of a queue this test runs) SIGKILL themselves after
    step `step`; `monkeypatch.delenv(KILL_ENV)` disarms it, and the end of the test undoes it."""
    env = kill_after_step_env(step)
    for key in (KILL_ENV, "PYTHONPATH"):
        monkeypatch.setenv(key, env[key])
