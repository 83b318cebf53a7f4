"""Isolated execution of untrusted programs: warm fork servers inside a sandbox (docs/design.md §4, "The sandbox").

Each `ForkServer` is one long-lived Python process inside the sandbox (`_sandbox_worker.py`). It preloads the
problem's trusted setup code once and forks a fresh child per program, so a program costs a `fork()` and a
few milliseconds, not an interpreter start plus imports (bench/README.md has the figures). The grader (`grader.py`) owns one or two servers
per worker slot and decides what each may see: a *clean* server only ever receives test inputs (the strict
grader), an *exposed* server also receives the asserts with their expected values (only the `eq_override`
flawed grader needs them), so no strict run can read an expected value from memory it inherited.

What the sandbox covers (level "bwrap", the only one "auto" picks; Debian/Ubuntu package `bubblewrap`):
  * filesystem: a fresh root with read-only binds of /usr, /etc, /bin, /lib* and the Python installation
    only; the repository, the problem files, home directories and the package itself are not visible.
    Writable: a private size-limited tmpfs /tmp (the program's cwd is a fresh dir in it) and /dev/shm, both
    wiped after every program; the rest of the sandbox's root is read-only. Files a program writes are
    capped at `output_kb` each (RLIMIT_FSIZE). This holds wherever the checkout and the interpreter live: a
    venv under the host's /tmp (a clone in /tmp), in a home directory, on a path with spaces or reached
    through a symlink is bound *after* the private /tmp is mounted, under a read-only tmpfs of its own.
  * network: a new, empty network namespace (no route anywhere, host loopback unreachable).
  * processes: a new PID namespace per server; each program runs in its own session/process group and,
    when the grader runs as root, as an unused uid with no capabilities, no new privileges and at most
    `max_procs` processes (root without such a uid: still uid 0, but with every capability dropped). After
    each program its group and every descendant that escaped it (the server is their subreaper) are
    SIGKILLed before the next program starts; if the server itself dies, the PID namespace dies with it; if
    the grader dies, `--die-with-parent` takes the sandbox down.
  * limits: CPU time (RLIMIT_CPU; decides "timeout"), wall time (a generous backstop for programs that
    sleep or block), address space (RLIMIT_AS; "memory"), stdout/stderr size (to a capped file; "output
    limit"), bytes of results (`result_mb`).
  * determinism: PYTHONHASHSEED=0 and `random.seed(0)` in every child; the verdict's time limit is CPU
    time, which does not depend on what else the machine is doing. The wall limit is `wall_factor` x the
    CPU limit, so a program within its CPU limit is only stopped by the wall clock if it gets less than
    1/wall_factor of a core.

Fail closed: `isolation="auto"` is bwrap or a SandboxError that says why, what to install and which setting
accepts a weaker level; it never falls back. Weaker levels, only when asked for by name (`isolation=`,
`gq grade --isolation`, `grader.isolation` in a training config), are logged as a WARNING and recorded with
every result (`gq grade` rows, summary.json):
  * "unshare" (root only): `unshare --net --pid --mount --fork --kill-child --mount-proc`, the same process
    and network containment, and in its mount namespace every host mount read-only, a minimal /dev, empty
    read-only tmpfs over /tmp, /run (daemons' sockets), the source checkout and any directory others cannot
    traverse on the way to the interpreter (the Python directories bound back), and a private tmpfs as the
    temp dir and /dev/shm. The server refuses to start if any of that fails. Not covered: a program can READ
    every other file the grader's user can read (home directories, problem files outside the checkout) and
    connect to unix sockets outside the hidden directories.
  * "none": rlimits, own session, subreaper clean-up and a temp cwd only. No network or filesystem isolation,
    and no process isolation either: a program can read, write and delete the grader's user's files and
    signal any process its user can (as root: every process on the machine, e.g. `os.kill(-1, SIGKILL)`).

What it does not cover: kernel exploits and side channels; syscall filtering (no seccomp); a program can
use the CPU/memory it is allowed and can print to its capped stdout file; the line protocol between a
program's harness and the server is written by the untrusted process, so a program that forges it can fake
the *flawed* graders' pass signals (the strict verdict needs the expected values, which it never sees).

    >>> iso = detect_isolation()                         # bwrap (logged once), or SandboxError: why, what to do
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

LEVELS = ("bwrap", "unshare", "none")  # strongest first
COVERS = {
    "bwrap": "programs see only the system and Python directories (read-only) and a private /tmp; no network; "
             "own PID namespace",
    "unshare": "no network, own PID namespace, the host filesystem read-only with /tmp, /run and the source "
               "checkout hidden, a minimal /dev and a private temp dir; programs can still READ every other file "
               "the grader's user can (your home directory, problem files outside the checkout); needs root",
    "none": "rlimits and a temp cwd only: programs can read, write and delete the grader's user's files, use the "
            "network and signal its processes",
}


def weakest(*levels: str | None) -> str | None:
    """The weakest of the given isolation levels (None ignored, an unknown name counts as weakest): what a
    result graded under all of them is worth."""
    known = [lv for lv in levels if lv]
    return max(known, key=lambda lv: LEVELS.index(lv) if lv in LEVELS else len(LEVELS)) if known else None


@dataclass(frozen=True)
class Isolation:
    level: str  # "bwrap" | "unshare" | "none"
    prefix: tuple[str, ...]  # argv before the python command
    description: str
    env: dict = field(default_factory=dict, hash=False, compare=False)
    tmp_keep: tuple[str, ...] = ()  # bwrap: names in the private /tmp that are read-only mounts (never wiped)
    tmp_mb: int = 256  # size of the private temp dir

    @property
    def private_tmp(self) -> bool:
        """The program's temp dir is a tmpfs of the sandbox's own, wiped by the server after every program."""
        return self.level in ("bwrap", "unshare")


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
    candidates = {os.path.abspath(p) for p in candidates if p}
    real = sorted({os.path.realpath(p) for p in candidates if os.path.exists(p)} | {
        p for p in candidates if os.path.exists(p)})
    out: list[str] = []
    for p in real:  # drop paths inside another kept path
        if not any(_under(p, q) for q in real):
            out.append(p)
    return out


def _under(path: str, top: str) -> bool:
    return path != top and path.startswith(top.rstrip("/") + "/")


def _package_dir() -> str:
    return os.path.realpath(Path(__file__).resolve().parents[1])


def _hidden_paths(bound: list[str]) -> list[str]:
    """Our own package directory if it lies inside a bound path (a non-editable install): its data files
    (the built-in problems with their expected outputs) must not be readable by programs."""
    pkg = _package_dir()
    return [pkg] if any(_under(pkg, b) for b in bound) else []


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


def _bwrap_prefix(tmp_mb: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """bwrap's argv, and the names in the sandbox's /tmp that hold read-only binds (the wipe keeps them).

    bwrap mounts in argument order. The private /tmp comes first and the Python directories are bound after
    it, so an interpreter or venv under the host's /tmp (a checkout in /tmp) stays visible instead of being
    hidden by the private /tmp. Each top-level directory of /tmp that leads to one is a small tmpfs of its
    own, read-only once the binds are in: a program can neither write in it nor rename it away (a mount point).
    """
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
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
             "--size", str(64 * 1024 * 1024), "--tmpfs", "/dev/shm"]
    bound = _python_paths()
    made = {"/tmp"}
    tmp_tops: list[str] = []
    for p in bound:
        if p in ("/", "/tmp", "/proc", "/dev") or any(_under(p, d) for d in ("/proc", "/dev")):
            raise SandboxError(f"the Python installation at {p} cannot be made visible inside the sandbox")
        if _under(p, "/tmp"):
            top = "/tmp/" + p[len("/tmp/"):].split("/")[0]
            if top != p and top not in made:
                args += ["--size", str(1024 * 1024), "--tmpfs", top]
                made.add(top)
                tmp_tops.append(top)
        # Parent dirs bwrap would create copy the host's modes (e.g. /root 0700), which an unprivileged
        # child could not traverse: create them world-traversable first.
        for d in [str(a) for a in reversed(Path(p).parents) if str(a) != "/"]:
            if d not in made:
                args += ["--perms", "0755", "--dir", d]
                made.add(d)
        args += ["--ro-bind", p, p]
    for top in tmp_tops:
        args += ["--remount-ro", top]
    for p in _hidden_paths(bound):
        args += ["--tmpfs", p, "--remount-ro", p]
    args += ["--remount-ro", "/",  # the sandbox's root: nothing a program leaves there outlives it
             "--chdir", "/tmp", "--clearenv"]
    for k, v in _base_env("/tmp").items():
        args += ["--setenv", k, v]
    args.append("--")
    keep = tuple(sorted({p[len("/tmp/"):].split("/")[0] for p in bound if _under(p, "/tmp")}))
    return tuple(args), keep


_UNSHARE = ("unshare", "--net", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
            "--mount-proc")


def _unshare_lockdown(tmp_mb: int) -> dict:
    """What the "unshare" server hides and locks in its mount namespace (`_sandbox_worker._lockdown`)."""
    keep = _python_paths()
    pkg = _package_dir()
    source = pkg if os.path.basename(os.path.dirname(pkg)) in ("site-packages", "dist-packages") else os.path.dirname(pkg)
    cover = {"/tmp", "/run", source}
    # A directory others cannot traverse on the way to the interpreter (/root is 0700) is covered too, so the
    # interpreter is reachable by the unprivileged uid programs run as (and the rest of it is hidden).
    for p in keep:
        for a in [str(x) for x in reversed(Path(p).parents)][1:]:
            if not os.stat(a).st_mode & 0o001:
                cover.add(a)
                break
    cover = {c for c in cover if c not in keep and c != "/"}
    return {"host_mntns": os.readlink("/proc/self/ns/mnt"), "tmp_mb": tmp_mb, "keep": keep, "cover": sorted(cover)}


def _make_isolation(level: str, tmp_mb: int) -> Isolation:
    """Build `level` and prove it works here by starting a server under it; SandboxError says why not."""
    if level == "none":
        return Isolation("none", (), f"none: {COVERS['none']}", _base_env(tempfile.gettempdir()), tmp_mb=tmp_mb)
    tool = {"bwrap": "bwrap", "unshare": "unshare"}[level]
    if shutil.which(tool) is None:
        raise SandboxError(f"{tool} is not installed" + (" (Debian/Ubuntu package bubblewrap)" if level == "bwrap" else ""))
    if level == "bwrap":
        prefix, keep = _bwrap_prefix(tmp_mb)
        iso = Isolation("bwrap", prefix, f"bwrap: {COVERS['bwrap']}", tmp_keep=keep, tmp_mb=tmp_mb)
    else:
        if os.geteuid() != 0:
            raise SandboxError("the unshare level needs root (mount, PID and network namespaces without a user "
                               "namespace); without root, bwrap is the only sandbox")
        iso = Isolation("unshare", _UNSHARE, f"unshare: {COVERS['unshare']}", _base_env(tempfile.gettempdir()),
                        tmp_mb=tmp_mb)
    probe = ForkServer(iso, role="probe", uid=None, preload=())
    try:
        probe.start()
    except SandboxError as e:
        raise SandboxError(f"{tool} is installed but could not start a sandbox here: {e}") from None
    finally:
        probe.close()
    return iso


def refusal(why: str) -> str:
    """The message of a grader that will not start: why, what to install, which flag accepts a weaker level."""
    return (
        f"no sandbox that keeps graded programs away from the host's files is available here ({why}). Graded "
        "programs are untrusted (model output), so isolation 'auto' never falls back to a weaker level. Install "
        "bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, or run `bash scripts/setup.sh` as root) and "
        "start again. To accept a weaker level explicitly: `gq grade --isolation unshare`, or "
        "`--set grader.isolation=unshare` for `gq train` and queued jobs (unshare: "
        f"{COVERS['unshare']}). The level a result was graded under is recorded with it."
    )


_detected: dict[str, Isolation] = {}
_detect_lock = threading.Lock()


def detect_isolation(preference: str = "auto", tmp_mb: int = 256) -> Isolation:
    """The isolation to grade under. "auto" is "bwrap" or a SandboxError (it never falls back to a level that
    lets programs reach the host's files); "bwrap", "unshare" or "none" give exactly that level or a
    SandboxError saying why not. Each is probed once per process by starting a server under it, and logged
    at INFO (bwrap) or WARNING (a weaker level, asked for explicitly).
    """
    if preference not in ("auto", *LEVELS):
        raise ValueError(f"isolation must be 'auto', 'bwrap', 'unshare' or 'none', got {preference!r}")
    level = "bwrap" if preference == "auto" else preference
    key = f"{level}:{tmp_mb}"
    with _detect_lock:
        if key in _detected:
            return _detected[key]
        try:
            iso = _make_isolation(level, tmp_mb)
        except SandboxError as e:
            if preference == "auto":
                raise SandboxError(refusal(str(e))) from None
            raise SandboxError(f"isolation {level!r} is not available here: {e}") from None
        if iso.level == "bwrap":
            log.info("sandbox isolation: %s", iso.description)
        else:
            log.warning("sandbox isolation: %s (asked for explicitly; weaker than bwrap)", iso.description)
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
        iso = self.isolation
        if iso.level == "bwrap":
            tmp_root = "/tmp"  # the sandbox's own
        else:
            # a host dir: "unshare" mounts a private tmpfs over it inside its namespace, "none" uses it as is
            self._host_tmp = os.path.realpath(tempfile.mkdtemp(prefix="gq_sandbox_"))
            os.chmod(self._host_tmp, 0o711)  # a dropped uid must reach its run dir inside
            tmp_root = self._host_tmp
        cfg = {"uid": self.uid, "gid": self.uid, "private_tmp": iso.private_tmp, "tmp_keep": list(iso.tmp_keep),
               "tmp_root": tmp_root, "preload": list(self.preload), "role": self.role}
        if iso.level == "unshare":
            cfg["lockdown"] = _unshare_lockdown(iso.tmp_mb)
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
            raise SandboxError(f"sandbox did not start: {hello.get('error') or hello}")
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


__all__ = ["COVERS", "LEVELS", "ForkServer", "Isolation", "Limits", "RunEnd", "SandboxError", "ServerDied", "describe",
           "detect_isolation", "refusal", "weakest"]
