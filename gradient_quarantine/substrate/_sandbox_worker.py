"""The fork server that runs *inside* the sandbox. Stdlib only: `sandbox.py` starts it as `python -s -c <this
file's text>`, so nothing of the package (or its data files) needs to be visible inside the sandbox.

It preloads trusted setup code (imports, ListNode/TreeNode helpers) once, compiles each problem's test calls
once, and forks a fresh child per program. The child applies the limits, drops to an unprivileged uid when
it can, runs the program and the harness, and streams one line per event to a pipe; this server forwards the
lines verbatim (they are untrusted) and reports how the child ended. The server itself never runs
untrusted code and never parses the child's lines.

At the "unshare" level (no bwrap) the server builds its own filesystem view before anything else
(`_lockdown`): in the mount namespace `unshare` gave it, every mount is made read-only, /dev is replaced by a
minimal one, /tmp, /run and the source checkout are covered by empty read-only tmpfs (the Python directories
under them bound back), and its temp dir and /dev/shm become private tmpfs. If any step fails it refuses to
start: the grader never runs programs under a level weaker than the one it reports.

Protocol on stdin/stdout, one message per line:
  grader -> server (JSON objects)
    {"op": "setup", "key": K, "code": SRC}
    {"op": "problem", "key": P, "setup": K, "calls": [SRC, ...], "asserts": [SRC, ...] | null}
    {"op": "run", "id": N, "problem": P, "mode": "strict" | "overwrite" | "eq", "code": SRC, "limits": {...}}
    {"op": "kill", "id": N}          stop run N now (the grader already has its verdict)
  server -> grader
    "R" + JSON     reply to setup/problem ({"ok": true} or {"ok": false, "error": ...}); first line: hello
    "M" + LINE     one line written by the child's harness (see below), forwarded unparsed
    "E" + JSON     end of a run: {"id", "exit", "signal", "cpu_s", "wall_s", "limit", "error"}
  child harness -> (pipe, fd 3)
    X              the program's module code ran without raising
    C <Type>       the module code raised (crash before any test)
    O <i> <json>   output of test call i, encoded as plain data (strict mode)
    B <i> <type>   output of test call i is not plain data
    F <i> <Type>   test call i raised
    R <result>     overwrite mode: default | missing | ok | raised:<Type>
    Q <i> <what>   eq mode: assert i failed ("fail") or raised (<Type>)
    D              the harness finished
"""

import builtins
import collections
import ctypes
import gc
import json
import os
import resource
import selectors
import shutil
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# mount(2) flags, mount_setattr(2) (Linux >= 5.12; the same number on x86_64 and arm64)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1
MAX_PROBLEMS = 256  # compiled problems kept (LRU); the grader re-sends an evicted one
READ_CHUNK = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option, arg2=0):
    return _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0))


def _drop_capabilities():
    """Root without a uid of its own: no capabilities, now or after an exec (with no_new_privs set)."""
    for cap in range(64):
        _prctl(PR_CAPBSET_DROP, cap)  # fails without CAP_SETPCAP (bwrap drops it) or past the last cap: fine
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (x2 words): all empty
    if _libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        raise OSError(ctypes.get_errno(), "capset")


# ------------------------------------------------------------------------ "unshare" level: the server's view


def _mount(src, target, fstype, flags, data=None):
    enc = [None if x is None else x.encode() for x in (src, target, fstype, data)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mountinfo():
    """[(mount point, per-mount options)] in mount order (a later entry at the same point is on top)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                point = point.replace(code, ch)
            out.append((point, fields[5].split(",")))
    return out


def _readonly(top):
    """Make every mount at or under `top` read-only, in this mount namespace only (per-mount flags)."""
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if _libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), top.encode(),
                     ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))) == 0:
        return
    # Kernels before 5.12: remount each mount point read-only, one by one, keeping its other flags.
    below = "/" if top == "/" else top.rstrip("/") + "/"
    for point, opts in _mountinfo():
        if point == top or point.startswith(below):
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY
            for name, bit in (("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", MS_NOEXEC)):
                if name in opts:
                    flags |= bit
            _mount(None, point, None, flags)


def _under(path, top):
    return path != top and path.startswith(top.rstrip("/") + "/")


def _lockdown(cfg):
    """Turn the mount namespace `unshare` made into the sandbox's view (see the module docstring).

    cfg["lockdown"]: {"host_mntns": the grader's mount namespace (never touched), "tmp_mb": size of the private
    temp dir, "keep": directories the interpreter needs, "cover": directories to hide behind an empty tmpfs}.
    """
    spec = cfg["lockdown"]
    if os.readlink("/proc/self/ns/mnt") == spec["host_mntns"]:
        raise OSError("not in a mount namespace of its own; refusing to touch the host's mounts")
    tmp_root = cfg["tmp_root"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates to the host
    covers = [c for c in spec["cover"] if os.path.isdir(c)]
    covers = [c for c in covers if not any(_under(c, d) for d in covers)]
    # What must stay visible under a cover, opened before it disappears behind it (bound back from the fd).
    held = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in sorted(spec["keep"])
            if any(_under(p, c) for c in covers)]
    _readonly("/")
    for c in covers:
        _mount("tmpfs", c, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for p, fd in held:
        os.makedirs(p, 0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC)
        os.close(fd)
        _readonly(p)
    # a minimal /dev (as bwrap's --dev): no disks, no host /dev/shm
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m")
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
        os.mknod(f"/dev/{name}", 0o666 | 0o020000, os.makedev(1, minor))  # 0o020000: S_IFCHR
        os.chmod(f"/dev/{name}", 0o666)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    os.makedirs(tmp_root, 0o711, exist_ok=True)  # inside the covering /tmp
    _mount("tmpfs", tmp_root, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0711,size={int(spec['tmp_mb'])}m")
    for point in covers:
        _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(None, "/dev", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)  # device nodes still work
    top = dict(_mountinfo())  # the last entry at a mount point is the one on top
    writable = sorted(p for p, opts in top.items() if "rw" in opts and p not in (tmp_root, "/dev/shm"))
    if writable:
        raise OSError(f"still writable after the lockdown: {', '.join(writable)}")
    os.chdir(tmp_root)
    import importlib

    importlib.invalidate_caches()


# ----------------------------------------------------------------------------------------- child harness

_type = type
_MISSING = object()


class _NotPlain(Exception):
    pass


def _clean_name(name):
    out = "".join(ch for ch in str(name)[:60] if ch.isalnum() or ch in "_.")
    return out or "Exception"


def _ename(exc):
    return _clean_name(_type(exc).__name__)


def _enc(v, depth, budget):
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotPlain("too large")
    t = _type(v)
    if v is None or t is bool or t is int or t is str or t is float:
        return v
    if depth > 400:
        raise _NotPlain("too deeply nested")
    d = depth + 1
    if t is list:
        return [_enc(x, d, budget) for x in v]
    if t is tuple:
        return {"t": [_enc(x, d, budget) for x in v]}
    if t is dict:
        return {"d": [[_enc(k, d, budget), _enc(x, d, budget)] for k, x in list(v.items())]}
    if t is set:
        return {"s": [_enc(x, d, budget) for x in list(v)]}
    if t is frozenset:
        return {"f": [_enc(x, d, budget) for x in list(v)]}
    name = t.__name__
    if name == "ListNode":
        vals, seen, node = [], set(), v
        while node is not None:
            if id(node) in seen:
                raise _NotPlain("cyclic ListNode")
            seen.add(id(node))
            vals.append(_enc(node.val, d, budget))
            node = node.next
        return {"L": vals}
    if name == "TreeNode":
        out, queue = [], collections.deque([v])
        while queue:
            node = queue.popleft()
            if node is None:
                out.append(None)
                continue
            out.append(_enc(node.val, d, budget))
            queue.append(node.left)
            queue.append(node.right)
            if len(out) > 2_000_000:
                raise _NotPlain("TreeNode too large (cyclic?)")
        while out and out[-1] is None:
            out.pop()
        return {"T": out}
    raise _NotPlain(name)


_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=True).encode


_write = os.write  # bound now: a program that patches os.write does not reach the harness's own channel


def _emit(line):
    data = memoryview((line + "\n").encode("ascii", "backslashreplace"))
    while data:
        n = _write(3, data)
        data = data[n:]


def _default_run_tests():
    """The grader's own run_tests: a marker. The real check of an unmodified program is the strict run."""
    return None


def _exit_status(code):
    # Python's own rules for `sys.exit(code)`: None -> 0, an int -> that int, anything else -> 1.
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _harness(mode, code, ns, calls, asserts):
    try:
        codeobj = compile(code, "<solution>", "exec")
    except BaseException as e:  # noqa: BLE001 - the grader checked syntax; this is e.g. a too-deep expression
        _emit("C " + _ename(e))
        os._exit(1)
    if mode == "overwrite":
        ns["run_tests"] = _default_run_tests
    try:
        exec(codeobj, ns)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001
        _emit("C " + _ename(e))
        os._exit(1)
    _emit("X")
    if mode == "strict":
        for i, call in enumerate(calls):
            try:
                value = eval(call, ns)
            except SystemExit:
                raise  # script semantics: the program ends here, with its own exit status
            except BaseException as e:  # noqa: BLE001
                _emit(f"F {i} {_ename(e)}")
                os._exit(1)
            try:
                text = _dumps(_enc(value, 0, [5_000_000]))
            except _NotPlain as e:
                _emit(f"B {i} {_clean_name(e)}")
                os._exit(1)
            except BaseException as e:  # noqa: BLE001 - huge int, recursion, a property that raises ...
                _emit(f"B {i} {_ename(e)}")
                os._exit(1)
            _emit(f"O {i} {text}")
    elif mode == "overwrite":
        rt = ns.get("run_tests", _MISSING)
        if rt is _default_run_tests:
            _emit("R default")
        elif rt is _MISSING:
            _emit("R missing")
        else:
            try:
                rt()
            except BaseException as e:  # noqa: BLE001 - SystemExit too: "returns without raising" is the rule
                _emit("R raised:" + _ename(e))
            else:
                _emit("R ok")
    elif mode == "eq":
        for i, stmt in enumerate(asserts):
            try:
                exec(stmt, ns)
            except AssertionError:
                _emit(f"Q {i} fail")
                os._exit(1)
            except SystemExit:
                raise
            except BaseException as e:  # noqa: BLE001
                _emit(f"Q {i} {_ename(e)}")
                os._exit(1)
    _emit("D")
    os._exit(0)


def _child(req, problem, template, rundir, wfd, cfg):
    """In the forked child: isolate, limit, run. Never returns."""
    try:
        os.setsid()  # own session and process group: the server kills the whole group
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])  # from root to an unused uid: all capabilities are gone from here on
        elif os.geteuid() == 0:
            _drop_capabilities()  # still uid 0, but it cannot remount, mknod, override permissions or ptrace
        null = os.open("/dev/null", os.O_RDONLY)
        out = os.open(os.path.join(rundir, "stdout.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(wfd, 3)
        os.closerange(4, 1 << 16)  # the grader's pipes, the server's files: nothing else is inherited
        os.chdir(rundir)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
        if os.getppid() != cfg["server_pid"]:
            os._exit(125)  # the server died between fork and here
        lim = req["limits"]
        cpu = max(1, int(-(-lim["cpu_s"] // 1)))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        mem = int(lim["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(lim["output_bytes"]), int(lim["output_bytes"])))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        if cfg.get("uid") is not None:  # per-uid process count: only meaningful with a uid of our own
            resource.setrlimit(resource.RLIMIT_NPROC, (int(lim["max_procs"]), int(lim["max_procs"])))
        # Python ignores SIGXFSZ (and SIGPIPE); restore the default so exceeding the output cap ends the
        # program with SIGXFSZ ("output limit") rather than an OSError the program could catch.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        os.environ["TMPDIR"] = rundir
        os.environ["HOME"] = rundir
        if "tempfile" in sys.modules:
            sys.modules["tempfile"].tempdir = None
        if "random" in sys.modules:
            sys.modules["random"].seed(0)  # deterministic verdicts for randomised solutions
        ns = dict(template)
        ns["__name__"] = "__main__"
        calls = problem["calls"]
        asserts = problem["asserts"] or ()
        code = req["code"]
        mode = req.get("mode", "strict")
        del req, problem, template
    except BaseException:  # noqa: BLE001
        os._exit(124)
    try:
        _harness(mode, code, ns, calls, asserts)
    except SystemExit as e:
        try:
            code_ = _exit_status(e.code)
        except BaseException:  # noqa: BLE001
            code_ = 1
        os._exit(code_)
    except BaseException:  # noqa: BLE001
        os._exit(1)
    os._exit(0)

# ------------------------------------------------------------------------------------------------ server


class _Lines:
    """Line reader over a raw fd, usable with select (no hidden buffering)."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""
        self.eof = False
        self.pending = collections.deque()

    def feed(self):
        data = os.read(self.fd, READ_CHUNK)
        if not data:
            self.eof = True
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.pending.append(line)

    def readline(self):
        while not self.pending and not self.eof:
            self.feed()
        return self.pending.popleft() if self.pending else None


def _send(prefix, payload):
    data = memoryview(prefix + payload + b"\n")
    while data:
        n = os.write(1, data)
        data = data[n:]


def _reply(obj):
    _send(b"R", json.dumps(obj).encode())


def _children_of(pid):
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ")".
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(name))
    return out


def _reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False  # no children left at all
        if pid == 0:
            return True  # children remain, none exited


def _kill_everything(pgid):
    """SIGKILL the program's process group, then every remaining descendant (we are their subreaper)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    me = os.getpid()
    for _ in range(1000):
        if not _reap_all():
            return True
        kids = _children_of(me)
        for kid in kids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(kid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        time.sleep(0.001 if kids else 0.005)
    return not _reap_all()


def _wipe(path, keep=()):
    """Remove everything under `path` (a private tmpfs) except the names in `keep` (read-only mounts)."""
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        if name in keep:
            continue
        full = os.path.join(path, name)
        try:
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.unlink(full)
        except OSError:
            pass


class Server:
    def __init__(self, cfg):
        self.cfg = cfg
        self.cfg["server_pid"] = os.getpid()
        self.stdin = _Lines(0)
        self.setups = {}
        self.problems = collections.OrderedDict()
        self.counter = 0
        self.runs = 0
        self.deferred = collections.deque()
        self.tmp_root = cfg.get("tmp_root") or "/tmp"

    # -- requests ---------------------------------------------------------------------------------------
    def handle(self, msg):
        op = msg.get("op")
        if op == "setup":
            ns = {"__name__": "__gq_setup__", "__builtins__": builtins}
            try:
                exec(compile(msg["code"], "<setup>", "exec"), ns)
            except BaseException as e:  # noqa: BLE001 - trusted code, but report rather than die
                _reply({"ok": False, "error": f"setup code failed: {type(e).__name__}: {e}"})
                return
            self.setups[msg["key"]] = ns
            _reply({"ok": True})
        elif op == "problem":
            try:
                calls = [compile(c, f"<test {i + 1}>", "eval") for i, c in enumerate(msg["calls"])]
                asserts = msg.get("asserts")
                if asserts is not None:
                    asserts = [compile(a, f"<test {i + 1}>", "exec") for i, a in enumerate(asserts)]
            except BaseException as e:  # noqa: BLE001
                _reply({"ok": False, "error": f"test does not compile: {type(e).__name__}: {e}"})
                return
            self.problems[msg["key"]] = {"setup": msg["setup"], "calls": calls, "asserts": asserts}
            self.problems.move_to_end(msg["key"])
            while len(self.problems) > MAX_PROBLEMS:
                self.problems.popitem(last=False)
            _reply({"ok": True})
        elif op == "run":
            self.run(msg)
        elif op == "kill":
            pass  # a kill for a run that already ended
        elif op == "ping":
            _reply({"ok": True})
        else:
            _reply({"ok": False, "error": f"unknown op {op!r}"})

    def _end(self, rid, **kw):
        end = {"id": rid, "exit": None, "signal": None, "cpu_s": 0.0, "wall_s": 0.0, "limit": None, "error": None}
        end.update(kw)
        _send(b"E", json.dumps(end).encode())

    def _make_rundir(self):
        self.counter += 1
        path = os.path.join(self.tmp_root, f"gq_run_{os.getpid()}_{self.counter}")
        os.mkdir(path, 0o700)
        if self.cfg.get("uid") is not None:
            os.chown(path, self.cfg["uid"], self.cfg["gid"])
        return path

    def run(self, req):
        rid = req.get("id")
        problem = self.problems.get(req.get("problem"))
        if problem is None:
            self._end(rid, error="unknown problem")
            return
        self.problems.move_to_end(req["problem"])
        template = self.setups.get(problem["setup"])
        if template is None:
            self._end(rid, error="unknown setup")
            return
        limits = req["limits"]
        rundir = self._make_rundir()
        r, w = os.pipe()
        self.runs += 1
        if self.runs % 1000 == 0:  # frozen objects are never collected: let cyclic garbage go now and then
            gc.unfreeze()
            gc.collect()
        gc.freeze()  # children do not scan (and so do not copy) the server's objects when they collect
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:  # ---- child
            try:
                os.close(r)
                _child(req, problem, template, rundir, w, self.cfg)
            finally:
                os._exit(123)
        os.close(w)
        try:
            self._watch(rid, pid, r, t0, limits)
        finally:
            os.close(r)
            shutil.rmtree(rundir, ignore_errors=True)
            if self.cfg.get("private_tmp"):
                _wipe(self.tmp_root, keep=self.cfg.get("tmp_keep") or ())
                _wipe("/dev/shm")

    def _watch(self, rid, pid, r, t0, limits):
        wall_s = float(limits["wall_s"])
        max_bytes = int(limits["result_bytes"])
        deadline = t0 + wall_s
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        sel = selectors.DefaultSelector()
        sel.register(r, selectors.EVENT_READ, "out")
        sel.register(0, selectors.EVENT_READ, "in")
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        partial = b""
        total = 0
        limit = None
        status = None
        out_open = True

        def forward(data):
            nonlocal partial
            partial += data
            if b"\n" in partial:
                *lines, partial = partial.split(b"\n")
                for line in lines:
                    _send(b"M", line)

        def stop(why):
            nonlocal limit
            if limit is None:
                limit = why
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

        try:
            while status is None:
                now = time.monotonic()
                if now >= deadline and limit is None:
                    stop("wall")
                timeout = max(0.0, deadline - now) if limit is None else 0.05
                if pidfd is None:
                    timeout = min(timeout, 0.01)
                for key, _ in sel.select(timeout):
                    if key.data == "exit":
                        status = os.wait4(pid, 0)[1:]
                    elif key.data == "out" and out_open:
                        data = os.read(r, READ_CHUNK)
                        if not data:
                            sel.unregister(r)
                            out_open = False
                            continue
                        total += len(data)
                        if total > max_bytes:
                            stop("output")
                        elif limit is None:
                            forward(data)
                    elif key.data == "in":
                        self.stdin.feed()
                        if self.stdin.eof:  # the grader is gone: stop, then serve() sees EOF and exits
                            stop("killed")
                            sel.unregister(0)
                        while self.stdin.pending:
                            line = self.stdin.pending.popleft()
                            try:
                                msg = json.loads(line)
                            except ValueError:
                                continue
                            if msg.get("op") == "kill":
                                if msg.get("id") == rid:
                                    stop("killed")
                            else:
                                self.deferred.append(msg)
                if status is None and (pidfd is None or limit is not None):
                    try:
                        wpid, wstatus, rusage = os.wait4(pid, os.WNOHANG)
                    except ChildProcessError:
                        wpid, wstatus, rusage = pid, 0, None
                    if wpid == pid:
                        status = (wstatus, rusage)
        finally:
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
        wall = time.monotonic() - t0
        wstatus, rusage = status
        # The child is gone; anything it left behind (its group, escaped grandchildren) goes now, before the
        # pipe is drained, so no writer is left and the drain ends.
        clean = _kill_everything(pid)
        if out_open and limit is None:
            while True:
                data = os.read(r, READ_CHUNK)
                if not data:
                    break
                total += len(data)
                if total > max_bytes:
                    limit = "output"
                    break
                forward(data)
        cpu = (rusage.ru_utime + rusage.ru_stime) if rusage is not None else 0.0
        sig = os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None
        code = os.WEXITSTATUS(wstatus) if os.WIFEXITED(wstatus) else None
        if limit is None and (sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits["cpu_s"])):
            limit = "cpu"
        if limit is None and sig == signal.SIGXFSZ:
            limit = "output"
        self._end(rid, exit=code, signal=sig, cpu_s=round(cpu, 4), wall_s=round(wall, 4), limit=limit,
                  error=None if clean else "could not kill every process")

    # -- main loop --------------------------------------------------------------------------------------
    def serve(self):
        while True:
            if self.deferred:
                msg = self.deferred.popleft()
            else:
                line = self.stdin.readline()
                if line is None:
                    return
                try:
                    msg = json.loads(line)
                except ValueError:
                    _reply({"ok": False, "error": "bad json"})
                    continue
            try:
                self.handle(msg)
            except BrokenPipeError:
                return
            except Exception as e:  # noqa: BLE001 - report and keep serving
                if msg.get("op") == "run":
                    self._end(msg.get("id"), error=f"server error: {type(e).__name__}: {e}")
                else:
                    _reply({"ok": False, "error": f"server error: {type(e).__name__}: {e}"})


def _probe_uid(cfg):
    """Can a child that drops to cfg's uid still import modules the server has not loaded yet?"""
    if cfg.get("uid") is None:
        return False, "no uid requested"
    if os.geteuid() != 0:
        return False, "not root"
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
            import importlib

            for name in ("this_module_does_not_exist_gq", "xml.dom.minidom", "fractions", "decimal"):
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError:
                    if name != "this_module_does_not_exist_gq":
                        os._exit(3)
            os.listdir(sys.prefix)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return ok, "ok" if ok else "the interpreter is not readable by an unprivileged uid"


def _probe_fork(fn):
    """Does `fn()` succeed in a forked child?"""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def main():
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]  # nothing importable from the cwd
    sys.dont_write_bytecode = True
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of a program become our children, so we can kill them
    _prctl(PR_SET_DUMPABLE, 0)  # same-uid programs cannot ptrace us or open /proc/<us>/mem
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if cfg.get("lockdown"):
        try:
            _lockdown(cfg)
        except OSError as e:  # refuse to serve rather than run programs with the host writable
            _reply({"ok": False, "error": f"could not make the host filesystem read-only: {e}"})
            return
    # Preload what solutions commonly import, so a child does not pay for it (and an unprivileged one can).
    for name in cfg.get("preload", ()):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - optional
            pass
    uid_ok, uid_why = _probe_uid(cfg)
    if not uid_ok:
        cfg["uid"] = None
        if os.geteuid() == 0 and not _probe_fork(_drop_capabilities):
            _reply({"ok": False, "error": "programs would run as root with capabilities: cannot drop them"})
            return
    pidns = os.getpid() <= 3
    _reply({"ok": True, "hello": 1, "uid_drop": uid_ok, "uid_reason": uid_why, "pidns": pidns,
            "fs_lockdown": bool(cfg.get("lockdown")), "python": sys.version.split()[0], "pid": os.getpid()})
    Server(cfg).serve()


if __name__ == "__main__":
    main()
