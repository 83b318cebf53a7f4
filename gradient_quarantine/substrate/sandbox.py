"""Isolated execution of untrusted programs: warm fork servers inside a sandbox (docs/design.md §4, "The sandbox").

Each `ForkServer` is one long-lived Python process inside the sandbox (`_sandbox_worker.py`). It preloads the
problem's trusted setup code once and forks a fresh child per program, so a program costs a `fork()` and a
few milliseconds, not an interpreter start plus imports (bench/README.md has the figures). The grader (`grader.py`) owns one or two servers
per worker slot and decides what each may see: a *clean* server only ever receives test inputs (the strict
grader), an *exposed* server also receives the asserts with their expected values (only the `eq_override`
flawed grader needs them), so no strict run can read an expected value from memory it inherited.

What the sandbox covers (level "bwrap", the default when `bwrap` works; Debian/Ubuntu package `bubblewrap`):
  * filesystem: a fresh root with read-only binds of /usr, /etc, /bin, /lib* and the Python installation
    only; the repository, the problem files, home directories and the package itself are not visible.
    Writable: a private size-limited tmpfs /tmp (the program's cwd is a fresh dir in it) and /dev/shm, both
    wiped after every program. Files a program writes are capped at `output_kb` each (RLIMIT_FSIZE).
  * network: a new, empty network namespace (no route anywhere, host loopback unreachable).
  * processes: a new PID namespace per server; each program runs in its own session/process group and,
    when the grader runs as root, as an unused uid with no capabilities, no new privileges and at most
    `max_procs` processes. After each program its group and every descendant that escaped it (the server is
    their subreaper) are SIGKILLed before the next program starts; if the server itself dies, the PID
    namespace dies with it; if the grader dies, `--die-with-parent` takes the sandbox down.
  * limits: CPU time (RLIMIT_CPU; decides "timeout"), wall time (a generous backstop for programs that
    sleep or block), address space (RLIMIT_AS; "memory"), stdout/stderr size (to a capped file; "output
    limit"), bytes of results (`result_mb`).
  * determinism: PYTHONHASHSEED=0 and `random.seed(0)` in every child; the verdict's time limit is CPU
    time, which does not depend on what else the machine is doing. The wall limit is `wall_factor` x the
    CPU limit, so a program within its CPU limit is only stopped by the wall clock if it gets less than
    1/wall_factor of a core.

Fallback levels, detected at start and logged (`isolation="auto"`; force one with `isolation=`):
  * "unshare": no bwrap, but `unshare --net --pid --fork --kill-child --mount-proc` works: the same process
    and network containment; the filesystem is the host's (a program can read anything the grader's user
    can read and write wherever that user can write; its cwd is still a fresh temp dir).
  * "none": rlimits, own session, subreaper clean-up and a temp cwd only. No network or filesystem isolation,
    and no process isolation either: a program can signal any process its user can (as root: every process
    on the machine, e.g. `os.kill(-1, SIGKILL)`). "auto" never picks it when running as root; ask for it
    explicitly if you must.

What it does not cover: kernel exploits and side channels; syscall filtering (no seccomp); a program can
use the CPU/memory it is allowed and can print to its capped stdout file; the line protocol between a
program's harness and the server is written by the untrusted process, so a program that forges it can fake
the *flawed* graders' pass signals (the strict verdict needs the expected values, which it never sees).

    >>> iso = detect_isolation()                         # logged once: "sandbox isolation: bwrap (...)"
    >>> server = ForkServer(iso, role="clean", uid=None); server.start()
    >>> server.ensure_setup(key, setup_code); server.ensure_problem(pkey, key, calls, None)
    >>> end = server.run(pkey, "strict", code, Limits(), on_line=print)
"""

from __future__ import annotations

import json
import logging
import os
import queue
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

WORKER_SOURCE = (Path(__file__).with_name("_sandbox_worker.py")).read_text()
PRELOAD = (
    "json", "random", "re", "collections", "itertools", "functools", "heapq", "bisect", "math", "string",
    "typing", "operator", "datetime", "decimal", "fractions", "copy", "array", "statistics", "tempfile",
    "dataclasses", "enum", "numbers", "sortedcontainers",
)
_CAPS_FOR_SERVER = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, protocol broken): infrastructure, not a program's fault."""


class ServerDied(SandboxError):
    """The fork server went away during a request (a program killed it, or it was killed)."""


@dataclass(frozen=True)
class Limits:
    """Per-program limits. CPU time decides timeouts (deterministic); wall time is a backstop."""

    cpu_s: float = 10.0  # CPU seconds for the whole program (all its tests): the verdict's time limit
    wall_factor: float = 3.0  # wall limit = wall_factor * cpu_s + 2 s (stops sleepers; see module doc)
    memory_mb: int = 1024  # address space per process
    output_kb: int = 1024  # stdout+stderr, and each file the program writes
    result_mb: int = 64  # harness result bytes (the encoded outputs)
    max_procs: int = 32  # processes per program (enforced only with a per-server uid, i.e. as root)

    def __post_init__(self) -> None:
        if not self.cpu_s > 0:
            raise ValueError(f"cpu_s must be > 0, got {self.cpu_s}")
        if self.wall_factor < 1:
            raise ValueError(f"wall_factor must be >= 1 (wall >= CPU), got {self.wall_factor}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be >= 64 (the interpreter alone needs ~30 MB), got {self.memory_mb}")
        if self.output_kb < 1 or self.result_mb < 1 or self.max_procs < 1:
            raise ValueError("output_kb, result_mb and max_procs must be >= 1")

    @property
    def wall_s(self) -> float:
        return self.wall_factor * self.cpu_s + 2.0

    def to_wire(self) -> dict:
        return {"cpu_s": self.cpu_s, "wall_s": self.wall_s, "memory_mb": self.memory_mb,
                "output_bytes": self.output_kb * 1024, "result_bytes": self.result_mb * 1024 * 1024,
                "max_procs": self.max_procs}


@dataclass(frozen=True)
class RunEnd:
    """How a program ended, as the server saw it."""

    exit: int | None  # exit status, None if killed by a signal
    signal: int | None
    cpu_s: float
    wall_s: float
    limit: str | None  # None | "cpu" | "wall" | "output" | "killed" (the grader stopped it)
    error: str | None = None


# ------------------------------------------------------------------------------------------ isolation


@dataclass(frozen=True)
class Isolation:
    level: str  # "bwrap" | "unshare" | "none"
    prefix: tuple[str, ...]  # argv before the python command
    private_tmp: bool  # /tmp inside is private and wiped by the server
    description: str
    env: dict = field(default_factory=dict, hash=False, compare=False)


def _python_paths() -> list[str]:
    """Directories the interpreter needs to read: prefixes, the stdlib, site-packages. Not the repository."""
    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, exe_dir,
                  os.path.dirname(sys.executable)}
    try:
        candidates.update(site.getsitepackages())
    except AttributeError:  # some virtualenv versions
        pass
    for p in sys.path:
        if p and os.path.isdir(p) and ("site-packages" in p or "dist-packages" in p or p.startswith(sys.base_prefix)):
            candidates.add(p)
    real = sorted({os.path.realpath(p) for p in candidates if p and os.path.exists(p)} | {
        p for p in candidates if p and os.path.exists(p)})
    out: list[str] = []
    for p in real:  # drop paths inside another kept path
        if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in real):
            out.append(p)
    return out


def _hidden_paths(bound: list[str]) -> list[str]:
    """Our own package directory if it lies inside a bound path (a non-editable install): its data files
    (the built-in problems with their expected outputs) must not be readable by programs."""
    pkg = os.path.realpath(Path(__file__).resolve().parents[1])
    return [pkg] if any(pkg.startswith(b.rstrip("/") + "/") for b in bound) else []


def _base_env(tmp: str) -> dict:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",  # set iteration order and str hashes identical in every run
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _bwrap_prefix(tmp_mb: int) -> tuple[str, ...]:
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "gq-sandbox"]
    if os.geteuid() == 0:
        # Root without a user namespace: keep only what the server needs to drop children to another uid,
        # signal them and clean their files; children lose everything when they change uid.
        args += ["--cap-drop", "ALL"]
        for cap in _CAPS_FOR_SERVER:
            args += ["--cap-add", cap]
    else:
        args += ["--unshare-user"]
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"):
        if os.path.exists(d):
            args += ["--ro-bind", d, d]
    bound = _python_paths()
    made: set[str] = set()
    for p in bound:
        # Parent dirs bwrap would create copy the host's modes (e.g. /root 0700), which an unprivileged
        # child could not traverse: create them world-traversable first.
        parents = [str(a) for a in reversed(Path(p).parents) if str(a) != "/"]
        for d in parents:
            if d not in made:
                args += ["--perms", "0755", "--dir", d]
                made.add(d)
        args += ["--ro-bind", p, p]
    for p in _hidden_paths(bound):
        args += ["--tmpfs", p]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
             "--size", str(64 * 1024 * 1024), "--tmpfs", "/dev/shm",
             "--chdir", "/tmp", "--clearenv"]
    for k, v in _base_env("/tmp").items():
        args += ["--setenv", k, v]
    args.append("--")
    return tuple(args)


_UNSHARE = ("unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc")


def _probe(prefix: tuple[str, ...], env: dict | None) -> bool:
    try:
        out = subprocess.run([*prefix, sys.executable, "-s", "-c", "import sys; print('gq-ok')"],
                             capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and b"gq-ok" in out.stdout


_detected: dict[str, Isolation] = {}
_detect_lock = threading.Lock()


def detect_isolation(preference: str = "auto", tmp_mb: int = 256) -> Isolation:
    """The strongest isolation that works here ("auto"), or exactly `preference` (raises if it does not work).

    Logged once per process at INFO ("bwrap") or WARNING (a fallback).
    """
    if preference not in ("auto", "bwrap", "unshare", "none"):
        raise ValueError(f"isolation must be 'auto', 'bwrap', 'unshare' or 'none', got {preference!r}")
    key = f"{preference}:{tmp_mb}"
    with _detect_lock:
        if key in _detected:
            return _detected[key]
        order = ["bwrap", "unshare", "none"] if preference == "auto" else [preference]
        tried = []
        for level in order:
            if level == "bwrap":
                if shutil.which("bwrap") is None:
                    tried.append("bwrap: not installed (apt-get install bubblewrap)")
                    continue
                prefix = _bwrap_prefix(tmp_mb)
                if _probe(prefix, None):
                    iso = Isolation("bwrap", prefix, True, "bwrap: private fs view, no network, pid namespace")
                    break
                tried.append("bwrap: installed but cannot create namespaces here")
            elif level == "unshare":
                env = _base_env(tempfile.gettempdir())
                if shutil.which("unshare") and _probe(_UNSHARE, env):
                    iso = Isolation("unshare", _UNSHARE, False,
                                    "unshare: no network, pid namespace; host filesystem visible", env)
                    break
                tried.append("unshare: not permitted")
            else:
                if preference == "auto" and os.geteuid() == 0:
                    # Programs would run as root on the host with nothing between them and it (one
                    # `os.kill(-1, SIGKILL)` ends every process on the machine). Only on explicit request.
                    tried.append("none: refused as root unless isolation='none' is asked for explicitly")
                    continue
                iso = Isolation("none", (), False, "none: rlimits + temp cwd only; NO network/filesystem isolation",
                                _base_env(tempfile.gettempdir()))
                break
        else:
            raise SandboxError(f"isolation {preference!r} is not available here: {'; '.join(tried)}")
        if iso.level == "bwrap":
            log.info("sandbox isolation: %s", iso.description)
        else:
            log.warning("sandbox isolation: %s (%s)", iso.description, "; ".join(tried) or "forced")
        _detected[key] = iso
        return iso


# ---------------------------------------------------------------------------------------- fork server


class _Spawner:
    """Starts processes from one long-lived thread. `bwrap --die-with-parent` (PR_SET_PDEATHSIG) fires when
    the *thread* that forked bwrap exits, so a server started from a short-lived worker thread (e.g. a
    ThreadPoolExecutor's) would be killed when that pool shuts down."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _loop(self) -> None:
        while True:
            fn, box, done = self._jobs.get()
            try:
                box.append(("ok", fn()))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                box.append(("err", e))
            done.set()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="gq-sandbox-spawner", daemon=True)
                self._thread.start()
        box: list = []
        done = threading.Event()
        self._jobs.put((lambda: subprocess.Popen(*args, **kwargs), box, done))
        done.wait()
        kind, value = box[0]
        if kind == "err":
            raise value
        return value


_spawner = _Spawner()


class ForkServer:
    """One warm sandboxed fork server. Not thread-safe: one caller at a time (the grader's worker slot)."""

    def __init__(self, isolation: Isolation, role: str = "clean", uid: int | None = None,
                 preload: tuple[str, ...] = PRELOAD):
        self.isolation = isolation
        self.role = role
        self.uid = uid
        self.preload = preload
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._buf = b""
        self._lines: list[bytes] = []
        self._setups: set[str] = set()
        self._problems: set[str] = set()
        self._next_id = 0
        self._host_tmp: str | None = None
        self._stderr = None
        self.starts = 0

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        self.close()
        if self.isolation.private_tmp:
            tmp_root = "/tmp"
        else:
            self._host_tmp = tempfile.mkdtemp(prefix="gq_sandbox_")
            os.chmod(self._host_tmp, 0o711)  # a dropped uid must reach its run dir inside
            tmp_root = self._host_tmp
        cfg = {"uid": self.uid, "gid": self.uid, "private_tmp": self.isolation.private_tmp,
               "tmp_root": tmp_root, "preload": list(self.preload), "role": self.role}
        argv = [*self.isolation.prefix, sys.executable, "-s", "-B", "-c", WORKER_SOURCE, json.dumps(cfg)]
        self._stderr = tempfile.TemporaryFile()
        env = self.isolation.env or None
        if env is not None:
            env = dict(env, HOME=tmp_root, TMPDIR=tmp_root)
        try:
            self.proc = _spawner.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                       start_new_session=True, env=env, cwd=tmp_root, close_fds=True)
        except OSError as e:
            raise SandboxError(f"cannot start the sandbox ({self.isolation.level}): {e}") from e
        self._buf, self._lines = b"", []
        self._setups.clear()
        self._problems.clear()
        self.starts += 1
        hello = self._read_reply(timeout=120)
        if not hello.get("hello"):
            raise SandboxError(f"sandbox did not start: {hello}")
        self.info = hello

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                proc.stdin.close()  # the server exits on EOF; bwrap's pid namespace goes with it
            except OSError:
                pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._kill_group(proc)
            for f in (proc.stdout,):
                try:
                    f.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._host_tmp is not None:
            shutil.rmtree(self._host_tmp, ignore_errors=True)
            self._host_tmp = None

    @staticmethod
    def _kill_group(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.error("sandbox process %d did not die after SIGKILL", proc.pid)

    def kill(self) -> None:
        if self.proc is not None:
            self._kill_group(self.proc)
        self.close()

    def stderr_tail(self, n: int = 2000) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - n))
            return self._stderr.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- wire -------------------------------------------------------------------------------------------
    def _send(self, obj: dict) -> None:
        if not self.alive:
            raise ServerDied("sandbox server is not running")
        data = (json.dumps(obj) + "\n").encode()
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ServerDied(f"sandbox server went away: {e}") from e

    def _readline(self, deadline: float) -> bytes:
        """Next line from the server; ServerDied on EOF; TimeoutError at the deadline."""
        fd = self.proc.stdout.fileno()
        while not self._lines:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                raise ServerDied(f"sandbox server exited; stderr: {self.stderr_tail(600)!r}")
            self._buf += data
            if b"\n" in self._buf:
                *lines, self._buf = self._buf.split(b"\n")
                self._lines.extend(lines)
        return self._lines.pop(0)

    def _read_reply(self, timeout: float) -> dict:
        try:
            line = self._readline(time.monotonic() + timeout)
        except TimeoutError:
            self.kill()
            raise ServerDied("sandbox server did not answer") from None
        if not line.startswith(b"R"):
            raise SandboxError(f"protocol error: expected a reply, got {line[:80]!r}")
        return json.loads(line[1:])

    def _request(self, obj: dict) -> dict:
        self._send(obj)
        reply = self._read_reply(timeout=120)
        if not reply.get("ok"):
            raise SandboxError(f"sandbox refused {obj.get('op')}: {reply.get('error')}")
        return reply

    # -- API --------------------------------------------------------------------------------------------
    def ensure_setup(self, key: str, code: str) -> None:
        if key not in self._setups:
            self._request({"op": "setup", "key": key, "code": code})
            self._setups.add(key)

    def ensure_problem(self, key: str, setup: str, calls: list[str], asserts: list[str] | None) -> None:
        if key not in self._problems:
            self._request({"op": "problem", "key": key, "setup": setup, "calls": calls, "asserts": asserts})
            self._problems.add(key)

    def forget_problem(self, key: str) -> None:
        self._problems.discard(key)

    def run(self, problem: str, mode: str, code: str, limits: Limits,
            on_line: Callable[[bytes], bool]) -> RunEnd:
        """Run `code` in mode ("strict" | "overwrite" | "eq") on a problem already sent with ensure_problem.

        `on_line(line)` sees each harness line as it arrives; returning False stops the program at once
        (the caller has its verdict). Raises ServerDied if the server dies or stops answering.
        """
        self._next_id += 1
        rid = self._next_id
        self._send({"op": "run", "id": rid, "problem": problem, "mode": mode, "code": code,
                    "limits": limits.to_wire()})
        deadline = time.monotonic() + limits.wall_s + 30.0  # the server enforces wall_s; this is its watchdog
        stopped = False
        while True:
            try:
                line = self._readline(deadline)
            except TimeoutError:
                self.kill()
                raise ServerDied("sandbox server stopped answering during a run") from None
            tag = line[:1]
            if tag == b"M":
                if not stopped and not on_line(line[1:]):
                    stopped = True
                    self._send({"op": "kill", "id": rid})
            elif tag == b"E":
                end = json.loads(line[1:])
                if end.get("id") != rid:
                    raise SandboxError(f"protocol error: end of run {end.get('id')} while waiting for {rid}")
                return RunEnd(end["exit"], end["signal"], end["cpu_s"], end["wall_s"], end["limit"],
                              end.get("error"))
            else:
                raise SandboxError(f"protocol error: unexpected line {line[:80]!r}")


def describe(iso: Isolation, server_info: dict) -> str:
    """One line for logs: the isolation level and what the running server reported."""
    extra = []
    if server_info.get("uid_drop"):
        extra.append("programs run as an unprivileged uid")
    elif server_info:
        extra.append(f"no uid drop ({server_info.get('uid_reason')})")
    if server_info.get("pidns"):
        extra.append("pid namespace")
    return f"{iso.description}; {', '.join(extra)}" if extra else iso.description


__all__ = ["ForkServer", "Isolation", "Limits", "RunEnd", "SandboxError", "ServerDied", "describe",
           "detect_isolation"]
