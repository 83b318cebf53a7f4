"""Hostile programs against the sandboxed grader: one test per property the sandbox claims (sandbox.py's
docstring). Each program gets a failed verdict with a reason, leaves no process, file or connection behind,
and the grader keeps working (a correct program graded right after passes).

Isolation levels: the best available level (bwrap here) runs everything; "unshare" and "none" (weaker
levels, only by name) run the process-containment tests, "unshare" also the network and filesystem tests:
the limits are enforced by the same server code at every level. Programs that could harm the host
(deleting files, `kill(-1)`) only run where the sandbox isolates them, and `kill(-1)` only after the server
reported its own PID namespace.

Where the project lives must not matter: `test_suite_from_a_relocated_interpreter` runs this file's bwrap
tests again with the interpreter and the package reached through a fresh directory under /tmp (a symlinked
venv, and a fresh venv there, in a directory whose name has a space), as a clone in /tmp would; there
`test_relocated_interpreter_gets_bwrap` checks that it really runs from there and that "auto" is bwrap.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from gradient_quarantine.substrate.grader import Grader
from gradient_quarantine.substrate.hacks import code_block
from gradient_quarantine.substrate.sandbox import SandboxError, detect_isolation
from gradient_quarantine.substrate.types import MODES, Mode, Problem

pytestmark = pytest.mark.timeout(120)

DOUBLE = Problem(
    id="double", question="double x", starter_code="class Solution:\n    def f(self, x: int) -> int:\n        ",
    func_name="Solution().f", tests=tuple(f"assert Solution().f(x = {i}) == {2 * i}" for i in (3, 5, 7, 11)),
    setup_code="from typing import *\nimport math\n", canonical_solution="class Solution:\n    def f(self, x):\n        return 2 * x\n",
)
CORRECT = code_block(DOUBLE.canonical_solution)


def _available(level: str) -> bool:
    try:
        detect_isolation(level)
    except SandboxError:
        return False
    return True


LEVELS = [lv for lv in ("bwrap", "unshare", "none") if _available(lv)]
ISOLATING = [lv for lv in LEVELS if lv in ("bwrap", "unshare")]  # own PID + network namespace
FS_PROTECTED = [lv for lv in LEVELS if lv in ("bwrap", "unshare")]  # host files not writable
RELOCATED = os.environ.get("GQ_SANDBOX_RELOCATED")  # set by test_suite_from_a_relocated_interpreter
BEST = LEVELS[:1]  # limits are enforced by the same server code at every level: test them once


@pytest.fixture(scope="module")
def graders():
    made: dict[str, Grader] = {}

    def get(level: str) -> Grader:
        if level not in made:
            # small limits so the timeouts in this file take ~1-6 s: CPU 1 s (RLIMIT_CPU rounds up), wall 6 s, so
            # a CPU-bound loop still meets its CPU limit first on a machine that leaves it 1/6 of a core (the
            # suite beside two training jobs on 2 cores gave it less than the 1/3 that wall 3 s needed)
            made[level] = Grader(workers=1, isolation=level, cpu_s=0.5, wall_factor=8.0, memory_mb=256,
                                 output_kb=64, result_mb=1)
        return made[level]

    yield get
    for g in made.values():
        g.close()


# --------------------------------------------------------------------------------------------- helpers


def _ppids() -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            out[int(name)] = int(stat[stat.rfind(b")") + 2:].split()[1])
    return out


def _descendants(root: int) -> list[int]:
    ppids = _ppids()
    kids: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_only_servers_left(grader: Grader) -> None:
    """Under each live server's launcher there is exactly one server process and, besides it, only the
    sandbox launcher (bwrap/unshare): no program, no child of a program, no zombie (a program forked from
    the server shares its command line, hence the count)."""
    for slot in grader._all:
        for server in slot.servers():
            if not server.alive:
                continue
            procs = [server.proc.pid, *_descendants(server.proc.pid)]
            launchers = [p for p in procs if os.path.basename(_cmdline(p).split(b"\0")[0]) in (b"bwrap", b"unshare")]
            workers = [p for p in procs if p not in launchers and b'"role"' in _cmdline(p)]
            others = [p for p in procs if p not in launchers and p not in workers]
            assert len(workers) == 1, f"{server.role}: {len(workers)} processes with the server's command line"
            assert not others, [(p, _cmdline(p)[:60]) for p in others]


def no_process_with(marker: str) -> bool:
    me = os.getpid()
    return not [p for p in _ppids() if p != me and marker.encode() in _cmdline(p)]


def hostile(grader: Grader, code: str, mode: Mode = Mode.EXIT_CODE):
    """Grade a hostile program, then check the aftermath: no leftovers, the grader still grades."""
    t0 = time.monotonic()
    v = grader.grade(DOUBLE, mode, code_block(textwrap.dedent(code)))
    elapsed = time.monotonic() - t0
    assert not v.gt_pass and not v.flawed_pass and not v.hack, v
    assert v.reason and v.reason != "ok"
    assert elapsed < 30, f"grading took {elapsed:.1f} s"
    assert_only_servers_left(grader)
    after = grader.grade(DOUBLE, mode, CORRECT)
    assert after.gt_pass and after.flawed_pass, after
    return v


# ------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("level", LEVELS)
def test_infinite_loop_is_a_cpu_timeout(graders, level):
    v = hostile(graders(level), "class Solution:\n    def f(self, x):\n        while True:\n            pass")
    assert v.reason == "timeout"


@pytest.mark.parametrize("level", BEST)
def test_long_sleep_is_a_wall_timeout(graders, level):
    v = hostile(graders(level), "import time\ntime.sleep(1000)")
    assert v.reason == "timeout (wall clock)"


@pytest.mark.parametrize("level", BEST)
def test_memory_bomb(graders, level):
    assert hostile(graders(level), "x = bytearray(10**10)").reason == "memory"
    v = hostile(graders(level), "class Solution:\n    def f(self, x):\n        return len(bytearray(10**10))")
    assert v.reason == "memory on test 1"
    v = hostile(graders(level), "a = []\nwhile True:\n    a.append(bytearray(10**7))")
    assert v.reason in ("memory", "timeout")


@pytest.mark.parametrize("level", BEST)
def test_output_flood(graders, level):
    assert hostile(graders(level), "while True:\n    print('x' * 1000)").reason == "output limit"
    # flooding the result channel instead: a big (plain) output, over result_mb
    v = hostile(graders(level), "class Solution:\n    def f(self, x):\n        return 'y' * (5 * 10**6)")
    assert v.reason == "output limit"


@pytest.mark.parametrize("level", BEST)
def test_deep_recursion(graders, level):
    v = hostile(graders(level), "class Solution:\n    def f(self, x):\n        return self.f(x) + 1")
    assert v.reason == "crashed on test 1: RecursionError"
    v = hostile(graders(level), """
        import sys
        sys.setrecursionlimit(10**8)
        def g(n):
            return g(n + 1) + 1
        g(0)
    """)
    # how the runaway stack ends depends on where it hits a limit first: the address-space cap, the wall clock, the
    # C stack (SIGSEGV), Python's own check, or CPython's "Cannot recover from stack overflow" abort (SIGABRT, seen
    # on a loaded machine); every one of them is a contained crash graded as a failure
    assert v.reason in ("memory", "timeout", "crashed: SIGSEGV", "crashed: SIGABRT", "crashed: RecursionError"), v.reason
    assert not v.flawed_pass and not v.gt_pass


# --------------------------------------------------------------------------------------------- processes


@pytest.mark.parametrize("level", LEVELS)
def test_bounded_fork_bomb_is_cleaned_up(graders, level):
    v = hostile(graders(level), """
        import os, time
        for _ in range(6):          # at most 64 processes (fewer where the per-uid process limit applies)
            try:
                os.fork()
            except OSError:
                pass
        time.sleep(30)
    """)
    assert v.reason == "timeout (wall clock)"


@pytest.mark.parametrize("level", LEVELS)
def test_orphaned_background_processes_are_killed(graders, level):
    marker = f"gq_orphan_{uuid.uuid4().hex}"
    v = hostile(graders(level), f"""
        import os, subprocess, sys, time
        subprocess.Popen(["/bin/sh", "-c", "sleep 1000; : {marker}"], start_new_session=True)
        if os.fork() == 0:          # double fork + new session: escapes the process group
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 1000; : {marker}"])
            os._exit(0)
        time.sleep(0.2)
        sys.exit(3)
    """)
    assert v.reason == "exited during module execution (status 3)"
    assert no_process_with(marker)


@pytest.mark.parametrize("level", LEVELS)
def test_killing_the_parent(graders, level):
    grader = graders(level)
    v = hostile(grader, """
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        class Solution:
            def f(self, x):
                return 0
    """)
    # With a uid of its own the program may not signal the server; as PID 1 of its namespace ("unshare")
    # the server ignores the signal; otherwise the server dies, is restarted and the run retried, and a
    # program that reliably kills its sandbox is charged for it.
    assert v.reason in ("crashed: PermissionError", "wrong answer on test 1", "crashed: killed the sandbox"), v.reason


@pytest.mark.parametrize("level", ISOLATING)
def test_kill_everything_reaches_only_the_sandbox(graders, level):
    grader = graders(level)
    grader.grade(DOUBLE, Mode.EXIT_CODE, CORRECT)
    server = grader._all[0].clean
    # Never run this where the server is not in a PID namespace of its own: kill(-1) would reach the host.
    assert server.info.get("pidns") is True, server.info
    me_before = os.getpid()
    v = hostile(grader, "import os, signal\nos.kill(-1, signal.SIGKILL)\nraise SystemExit(1)")
    assert v.reason in ("exited during module execution (status 1)", "crashed: ProcessLookupError",
                        "crashed: killed the sandbox"), v.reason
    assert os.getpid() == me_before


@pytest.mark.parametrize("level", BEST)
def test_stopped_program_and_closed_channel(graders, level):
    v = hostile(graders(level), "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)")
    assert v.reason == "timeout (wall clock)"
    v = hostile(graders(level), "import os\nos.close(3)\nclass Solution:\n    def f(self, x):\n        return 2 * x")
    assert v.reason.startswith("crashed") or v.reason.startswith("exited")


@pytest.mark.parametrize("level", BEST)
def test_forged_result_lines_do_not_pass_gt(graders, level):
    v = hostile(graders(level), "import os\nos.write(3, b'garbage\\n')")
    assert v.reason == "malformed result stream"
    # forging outputs needs the expected values, which the strict child never has
    v = hostile(graders(level), "import os\nos.write(3, b'X\\nO 0 0\\nO 1 0\\nO 2 0\\nO 3 0\\nD\\n')\nos._exit(0)")
    assert v.reason == "wrong answer on test 1"


# -------------------------------------------------------------------------------- filesystem, network


@pytest.mark.parametrize("level", FS_PROTECTED)
def test_files_outside_the_temp_dir_are_untouchable(graders, level, tmp_path):
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    repo_file = Path(__file__).parents[1] / f"gq_hostile_{uuid.uuid4().hex}"
    host_tmp = Path("/tmp") / f"gq_hostile_{uuid.uuid4().hex}"
    problems_file = Path(__file__).parents[1] / "gradient_quarantine/substrate/builtin/problems.jsonl"
    for code in (f"import os\nos.remove({str(sentinel)!r})",
                 f"open({str(tmp_path / 'new.txt')!r}, 'w').write('x')",
                 f"open({str(repo_file)!r}, 'w').write('x')",
                 f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
                 f"print(open({str(problems_file)!r}).read())"):
        v = hostile(graders(level), code)
        assert v.reason in ("crashed: FileNotFoundError", "crashed: PermissionError", "crashed: OSError"), (code, v)
    # its own run dir (cwd, TMPDIR) is writable; /tmp is the sandbox's private one (and not writable at all
    # for a dropped uid); nothing of it reaches the host
    v = hostile(graders(level), f"""
        import tempfile
        try:
            open({str(host_tmp)!r}, "w").write("x")
        except OSError:
            pass
        open("own.txt", "w").write("x")
        tempfile.NamedTemporaryFile(delete=False).write(b"x")
        raise SystemExit(2)
    """)
    assert v.reason == "exited during module execution (status 2)"
    assert sentinel.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel.txt"]
    assert not repo_file.exists() and not host_tmp.exists()


@pytest.fixture
def outside_dir():
    """A host directory outside /tmp, the checkout and home (bwrap hides it; unshare shows it read-only)."""
    if not os.access("/var/tmp", os.W_OK):
        pytest.skip("/var/tmp is not writable here")
    path = Path(tempfile.mkdtemp(prefix="gq_hostile_", dir="/var/tmp"))
    (path / "keep.txt").write_text("keep me")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("level", FS_PROTECTED)
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_no_mode_writes_or_deletes_host_files(graders, level, mode, tmp_path, outside_dir):
    """The issue's reproduction: in every mode, a program that writes a file in the host's /tmp and next to
    the graded files, and deletes directories outside its temp dir, changes nothing on the host."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep me")
    written = [Path("/tmp") / f"gq_hostile_{uuid.uuid4().hex}", tmp_path / "written.txt", outside_dir / "new.txt"]
    v = hostile(graders(level), f"""
        import shutil
        for act in [*(lambda p=p: open(p, "w").write("x") for p in {[str(p) for p in written]!r}),
                    lambda: shutil.rmtree({str(victim)!r}), lambda: shutil.rmtree({str(outside_dir)!r})]:
            try:
                act()
            except OSError:
                pass
        raise SystemExit(4)
    """, mode)
    assert v.reason == "exited during module execution (status 4)"
    assert not any(p.exists() for p in written), [p for p in written if p.exists()]
    assert (victim / "keep.txt").read_text() == "keep me" and (outside_dir / "keep.txt").read_text() == "keep me"


@pytest.mark.parametrize("level", ISOLATING)
def test_no_network(graders, level):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        v = hostile(graders(level), f"""
            import socket
            s = socket.create_connection(("127.0.0.1", {port}), timeout=1)
            s.sendall(b"leak")
        """)
        assert v.reason in ("crashed: ConnectionRefusedError", "crashed: OSError", "crashed: TimeoutError")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


# ------------------------------------------------------------------------------------- malformed text


@pytest.mark.parametrize("level", LEVELS[:1])
def test_malformed_completions(graders, level):
    grader = graders(level)
    for text, reason in (
        ("```python\ndef f(:\n```", "syntax error (line 1"),
        ("```python\nx = 1\x00\n```", "syntax error (null byte"),
        ("I cannot do that.", "no code block"),
        ("```python\n\n```", "empty code block"),
        ("```python\n" + "x = " + "(" * 300 + ")" * 300 + "\n```", "syntax error"),
    ):
        v = grader.grade(DOUBLE, Mode.EXIT_CODE, text)
        assert not v.format_ok and v.reward == 0.0 and v.reason.startswith(reason), (text[:30], v)
    assert grader.grade(DOUBLE, Mode.EXIT_CODE, CORRECT).gt_pass


# ------------------------------------------------------------------- wherever the project lives


def test_auto_is_bwrap_whenever_bwrap_is_installed():
    if shutil.which("bwrap") is None:
        with pytest.raises(SandboxError, match="bubblewrap"):
            detect_isolation("auto")
        return
    # bwrap is installed: "auto" must get it (a failure here says why bwrap could not start) and never less
    assert detect_isolation("auto").level == "bwrap"


@pytest.mark.skipif(not RELOCATED, reason="runs inside test_suite_from_a_relocated_interpreter")
def test_relocated_interpreter_gets_bwrap():
    import gradient_quarantine

    root = os.path.abspath(RELOCATED)
    assert sys.executable.startswith(root + "/") and sys.prefix.startswith(root + "/"), (sys.executable, sys.prefix)
    assert gradient_quarantine.__file__.startswith(root + "/"), gradient_quarantine.__file__
    if shutil.which("bwrap") is not None:
        iso = detect_isolation("auto")
        assert iso.level == "bwrap"
        binds = {iso.prefix[i + 1] for i, a in enumerate(iso.prefix) if a == "--ro-bind"}
        assert sys.prefix in binds or any(sys.prefix.startswith(b + "/") for b in binds), binds


def _relocate(root: Path, how: str) -> Path:
    """An interpreter under `root` that imports the package from `root/repo` (a symlink to this checkout):
    `root/venv` is a symlink to this venv, or a fresh venv whose .pth reaches this venv's site-packages."""
    (root / "repo").symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
    venv = root / "venv"
    if how == "symlinked venv":
        venv.symlink_to(sys.prefix, target_is_directory=True)
    else:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True, timeout=120)
        site_dirs = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]
        (next(venv.glob("lib/python*/site-packages")) / "gq_deps.pth").write_text("\n".join(site_dirs) + "\n")
    return venv / "bin" / "python"


@pytest.mark.skipif(bool(RELOCATED), reason="already relocated")
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")
@pytest.mark.parametrize("how", ["symlinked venv", "fresh venv"])
@pytest.mark.timeout(600)
def test_suite_from_a_relocated_interpreter(how):
    """The bwrap tests of this file, run by an interpreter and a package reached through a fresh directory
    under /tmp (with a space in its name): a checkout cloned into /tmp. The private /tmp must not hide them."""
    root = Path(tempfile.mkdtemp(prefix="gq relocated ", dir="/tmp"))
    try:
        python = _relocate(root, how)
        # The symlinked venv runs the bwrap tests but the pure limit ones (the same server code wherever it
        # lives, and timing-sensitive on a loaded machine); the fresh venv the filesystem ones.
        select = ("bwrap and not (cpu_timeout or wall_timeout or memory_bomb or output_flood or deep_recursion)"
                  if how == "symlinked venv" else "bwrap and (files or host_files or relocated or auto)")
        env = {**os.environ, "GQ_SANDBOX_RELOCATED": str(root), "PYTHONPATH": str(root / "repo"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        out = subprocess.run(
            [str(python), "-m", "pytest", str(root / "repo" / "tests" / Path(__file__).name), "-p",
             "no:cacheprovider", "-k", select, "-rA"],
            cwd=root, env=env, capture_output=True, text=True, timeout=540)
        tail = (out.stdout + out.stderr)[-4000:]
        assert out.returncode == 0, tail
        passed = [ln for ln in out.stdout.splitlines() if ln.startswith("PASSED ")]
        assert any(ln.endswith("::test_relocated_interpreter_gets_bwrap") for ln in passed), tail
        assert len(passed) >= (13 if how == "symlinked venv" else 7), tail  # the selection ran, not skipped
    finally:
        shutil.rmtree(root, ignore_errors=True)
