"""The job queue: atomic claims, priorities, dependencies, kill/requeue, a SIGKILLed `gq queue run` that loses
no job and never runs one twice at once, resume of train jobs, and the submitit path (local executor).

Jobs here are tiny python commands (a sweep's `command`), so nothing needs the trainer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from gradient_quarantine.experiments import workers as workers_mod
from gradient_quarantine.experiments.jobrun import assign_run_dir, execute, format_override, gq_argv, job_argv
from gradient_quarantine.experiments.processes import WorkerTag, pid_alive, proc_start_ticks
from gradient_quarantine.experiments.queue import JobQueue, JobSpec, QueueError
from gradient_quarantine.experiments.workers import WorkerPlan, run_local

PY = sys.executable

# A resumable toy job. It holds an exclusive flock on its run dir while it runs, so a second copy running at the
# same time is detected (it writes CONCURRENT and fails). Arm "slow" sleeps on a fresh start (to be killed) and
# finishes when resumed; any other arm finishes at once.
JOB_PY = textwrap.dedent(
    """
    import fcntl, json, os, sys, time
    run_dir = os.environ["GQ_RUN_DIR"]
    os.makedirs(run_dir, exist_ok=True)
    lock = open(os.path.join(run_dir, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        open(os.path.join(run_dir, "CONCURRENT"), "w").close()
        sys.exit(3)
    with open(os.path.join(run_dir, "attempts.jsonl"), "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "resume": os.environ["GQ_RESUME"],
                            "attempt": os.environ["GQ_ATTEMPT"], "overrides": os.environ["GQ_OVERRIDES"]}) + "\\n")
    if sys.argv[1] == "slow" and os.environ["GQ_RESUME"] == "0":
        open(os.path.join(run_dir, "started"), "w").close()
        time.sleep(120)
    open(os.path.join(run_dir, "done"), "w").close()
    """
)


def _cmd(tmp: Path, arm: str = "{arm}") -> list[str]:
    job = tmp / "job.py"
    job.write_text(JOB_PY)
    return [PY, str(job), arm]


def _spec(tmp: Path, name: str, arm: str = "quick", **kw) -> JobSpec:
    return JobSpec(name=name, kind="command", argv=_cmd(tmp, arm), arm=arm, runs_dir=str(tmp / "runs"), **kw)


def _attempts(run_dir: str | Path) -> list[dict]:
    p = Path(run_dir) / "attempts.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.is_file() else []


def _wait(pred, timeout: float = 30.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _dead_tag() -> WorkerTag:
    """The tag of a worker process on this host that has exited."""
    p = subprocess.Popen([PY, "-c", "pass"])
    start = proc_start_ticks(p.pid)
    p.wait()
    return WorkerTag(os.uname().nodename, p.pid, start, "w0")


# ----------------------------------------------------------------------------------------------------


def test_claim_order_priority_then_age_and_dependencies(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    a, b = q.add([_spec(tmp_path, "a"), _spec(tmp_path, "b")], priority=0)
    c, d = q.add([_spec(tmp_path, "c"), _spec(tmp_path, "d", after=[0])], priority=5)
    me = WorkerTag.here("t")
    assert q.claim(me).id == c  # highest priority first
    assert q.claim(me).id == a  # d waits on c (running), so the oldest of priority 0
    assert q.display_status(q.get(d)) == f"waiting on {c}"
    q.finish(c, me, "done", 0, "ok")
    assert q.claim(me).id == d and q.claim(me).id == b and q.claim(me) is None


def test_claims_are_atomic_across_threads(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    ids = q.add([_spec(tmp_path, f"j{i}") for i in range(40)])
    got: list[int] = []
    lock = threading.Lock()

    def grab(k: int) -> None:
        qq = JobQueue(tmp_path / "q.sqlite")  # its own connection, as another process would have
        tag = WorkerTag.here(f"t{k}")
        while (job := qq.claim(tag)) is not None:
            with lock:
                got.append(job.id)

    threads = [threading.Thread(target=grab, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == ids  # every job claimed exactly once


def test_names_unique_per_runs_dir(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    q.add([_spec(tmp_path, "route2b_s41")])
    (j,) = q.add([_spec(tmp_path, "route2b_s41")])
    assert q.get(j).name == "route2b_s41_r2"


def test_dead_worker_requeues_then_fails_after_max_attempts(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    (jid,) = q.add([_spec(tmp_path, "a", max_attempts=2)])
    dead = _dead_tag()
    assert q.claim(dead).id == jid
    assert "worker gone" in q.display_status(q.get(jid))
    assert q.reap() == [(jid, "queued")]
    job = q.get(jid)
    assert job.status == "queued" and "requeued (attempt 1 of 2)" in job.reason
    assert q.claim(dead).id == jid
    assert q.reap() == [(jid, "failed")]
    job = q.get(jid)
    assert job.status == "failed" and "gave up after 2 attempts" in job.reason
    assert [e for _, e, _ in q.events(jid)].count("reaped") == 2


def test_live_worker_is_not_reaped_and_a_reaped_worker_loses_its_job(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite", stale_s=0.0)
    (jid,) = q.add([_spec(tmp_path, "a")])
    me = WorkerTag.here("w0")
    assert q.claim(me).id == jid
    time.sleep(0.05)
    assert q.reap() == []  # same host, pid alive: a stale heartbeat alone does not kill a local worker
    assert q.heartbeat(jid, me) == "ok"
    other = WorkerTag("some-other-host", 12345, 1, "w0")  # another host: judged by heartbeat age only
    with q._tx() as c:
        c.execute("UPDATE jobs SET worker=? WHERE id=?", (str(other), jid))
    assert q.reap() == [(jid, "queued")]
    assert q.heartbeat(jid, other) == "lost" and not q.finish(jid, other, "done", 0, "late")


def test_run_local_dependencies_and_failures(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    a, b, bad, blocked = q.add([
        _spec(tmp_path, "a"),
        _spec(tmp_path, "b", overrides={"routing.frout_from": "{run_dir:after=0}"}),
        JobSpec(name="bad", kind="command", argv=[PY, "-c", "print('boom'); raise SystemExit(7)"],
                runs_dir=str(tmp_path / "runs")),
        JobSpec(name="blocked", kind="command", argv=[PY, "-c", "pass"], runs_dir=str(tmp_path / "runs"),
                after=[2]),
    ])
    assert q.get(b).deps == [a]
    outs = run_local(q, workers=2, heartbeat_s=0.2, poll_s=0.1, install_signal_handlers=False)
    assert {o.job_id: o.status for o in outs} == {a: "done", b: "done", bad: "failed"}
    # b ran after a and received a's run directory in place of the reference
    assert json.loads(_attempts(q.get(b).run_dir)[0]["overrides"]) == {"routing.frout_from": q.get(a).run_dir}
    assert q.get(bad).rc == 7 and "exit code 7" in q.get(bad).reason and "boom" in q.get(bad).reason
    assert q.get(blocked).status == "queued" and "blocked" in q.display_status(q.get(blocked))
    assert q.outlook() == (0, 0, 0)  # nothing runnable, running or able to become runnable: run_local returned


def test_kill_running_and_queued_then_requeue_resumes(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "q.sqlite")
    slow, queued = q.add([_spec(tmp_path, "slow", arm="slow"), _spec(tmp_path, "later")])
    assert q.kill(queued).startswith("cancelled") and q.get(queued).status == "killed"
    t = threading.Thread(target=run_local, args=(q, 1), kwargs={"heartbeat_s": 0.2, "poll_s": 0.1,
                                                                 "install_signal_handlers": False})
    t.start()
    assert _wait(lambda: q.get(slow).run_dir and (Path(q.get(slow).run_dir) / "started").exists())
    pid = _attempts(q.get(slow).run_dir)[0]["pid"]
    q.kill(slow)
    t.join(30)
    assert not t.is_alive() and q.get(slow).status == "killed" and not pid_alive(pid)
    with pytest.raises(QueueError, match="only queued or running"):
        q.kill(slow)
    assert "resume from" in q.requeue(slow)
    assert q.get(slow).status == "queued" and q.get(slow).attempts == 0
    run_local(q, 1, heartbeat_s=0.2, poll_s=0.1, install_signal_handlers=False)
    att = _attempts(q.get(slow).run_dir)
    assert q.get(slow).status == "done" and [a["resume"] for a in att] == ["0", "1"]
    with pytest.raises(QueueError, match="--force"):
        q.requeue(slow)


def test_sigkilled_worker_loses_no_job_and_never_runs_one_twice(tmp_path: Path) -> None:
    """SIGKILL a real `gq queue run` mid-job: its job process dies with it (PR_SET_PDEATHSIG), the job stays
    in the queue, and the next `gq queue run` resumes it once; the job behind it is not lost either."""
    db, runs = tmp_path / "q.sqlite", tmp_path / "runs"
    sweep = tmp_path / "toy.yaml"
    sweep.write_text(json.dumps({"name": "toy", "seeds": [1], "arms": [{"name": "slow"}, {"name": "quick"}],
                                 "command": _cmd(tmp_path)}))
    gq = gq_argv()
    add = subprocess.run(gq + ["queue", "add", str(sweep), "--db", str(db), "--runs-dir", str(runs)],
                         capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stderr
    q = JobQueue(db)
    slow, quick = [j.id for j in q.jobs()]
    worker = subprocess.Popen(gq + ["queue", "run", "--db", str(db), "--heartbeat-s", "0.5", "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run_dir = Path(q.get(slow).run_dir)
        assert _wait(lambda: (run_dir / "started").exists(), 120), "the job never started"
        job_pid = _attempts(run_dir)[0]["pid"]
        assert pid_alive(job_pid)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert _wait(lambda: not pid_alive(job_pid), 10), "the job outlived its SIGKILLed worker (would run twice)"
    assert q.get(slow).status == "running" and "worker gone" in q.display_status(q.get(slow))
    assert q.get(quick).status == "queued"

    again = subprocess.run(gq + ["queue", "run", "--db", str(db), "--heartbeat-s", "0.5"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    s, k = q.get(slow), q.get(quick)
    assert (s.status, k.status) == ("done", "done")
    assert s.attempts == 2 and k.attempts == 1
    att = _attempts(run_dir)
    assert [a["resume"] for a in att] == ["0", "1"]  # started once, resumed once
    assert not (run_dir / "CONCURRENT").exists()
    assert any(e == "reaped" for _, e, _ in q.events(slow))
    ls = subprocess.run(gq + ["queue", "ls", "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0 and "done: 2" in ls.stdout


def test_train_job_command_resume_and_run_dir_choice(tmp_path: Path) -> None:
    """The queue's side of the `gq train` contract: the queue reserves `<NNNN>_<name>` at the first start and
    records it before anything runs, passes it with --run-dir, passes it alone (resume) once config.json exists,
    and does not re-run a complete run."""
    q = JobQueue(tmp_path / "q.sqlite")
    (jid,) = q.add([JobSpec(name="route2b_s41", kind="train", preset="demo",
                            overrides={"arm": "route2b", "seed": 41, "pair_modes": ["exit_code"], "routing.k": 2},
                            runs_dir=str(tmp_path / "runs"))])
    assert q.get(jid).run_dir is None  # chosen when it first starts
    with pytest.raises(QueueError, match="reserved when it first starts"):
        job_argv(q, q.get(jid))
    runs = (tmp_path / "runs").resolve()
    runs.mkdir()
    (runs / "0007_route2b_s41").mkdir()  # a run made here by hand (`gq train`): its number is not reused
    me = WorkerTag.here("w0")
    q.claim(me)
    ours = assign_run_dir(q, q.get(jid), me)
    assert ours == runs / "0008_route2b_s41" and ours.is_dir() and not any(ours.iterdir())
    assert q.get(jid).run_dir == str(ours) and assign_run_dir(q, q.get(jid), me) == ours  # later attempts: same
    argv, env = job_argv(q, q.get(jid))
    assert argv[len(gq_argv()):] == [
        "train", "--preset", "demo", "--set", "arm=route2b", "--set", "seed=41",
        "--set", 'pair_modes=["exit_code"]', "--set", "routing.k=2",
        "--name", "route2b_s41", "--run-dir", str(ours),
    ]
    assert env["GQ_RESUME"] == "0" and env["GQ_RUN_DIR"] == str(ours)
    (ours / "config.json").write_text("{}")
    argv, env = job_argv(q, q.get(jid))
    assert argv[len(gq_argv()):] == ["train", "--run-dir", str(ours)] and env["GQ_RESUME"] == "1"
    # A worker that lost the job before its first start reserves nothing.
    (other,) = q.add([JobSpec(name="vanilla_s41", preset="demo", runs_dir=str(runs))])
    assert q.claim(me).id == other and q.finish(other, me, "queued", None, "put back")
    assert assign_run_dir(q, q.get(other), me) is None and not list(runs.glob("*_vanilla_s41"))
    (ours / "summary.json").write_text(json.dumps({"status": "complete"}))
    out = execute(q, q.get(jid), me)
    assert out.status == "done" and "already complete" in q.get(jid).reason
    assert format_override("name", "0.5") == 'name="0.5"'  # a string YAML would read as a number stays a string
    assert format_override("grpo.lr", 0.5) == "grpo.lr=0.5" and format_override("run.progress", False) == "run.progress=false"


def test_killed_train_job_resumes_in_the_run_directory_the_queue_chose(tmp_path: Path, monkeypatch) -> None:
    """A real `gq train` job SIGKILLed mid-run (after step 3; checkpoint 2 exists) fails; requeued, it resumes in
    the directory the queue chose at its first start, and no other directory appears."""
    from faults import KILL_ENV, arm_kill_after_step

    from gradient_quarantine.io import read_jsonl

    runs = tmp_path / "runs"
    q = JobQueue(tmp_path / "q.sqlite")
    sets = {"steps": 4, "run.checkpoint_every": 2, "eval.every": 2, "run.cache_dir": str(tmp_path / "cache")}
    (jid,) = q.add([JobSpec(name="smoke_s41", preset="smoke", overrides=sets, runs_dir=str(runs))])
    arm_kill_after_step(monkeypatch, 3)  # the job's environment is the worker's
    (out,) = run_local(q, 1, heartbeat_s=0.5, poll_s=0.1, install_signal_handlers=False)
    run_dir = runs.resolve() / "0001_smoke_s41"
    assert out.status == "failed" and "killed by signal 9" in out.reason and q.get(jid).run_dir == str(run_dir)
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3]

    monkeypatch.delenv(KILL_ENV)
    assert q.requeue(jid) == f"queued; it will resume from {run_dir}"
    (out,) = run_local(q, 1, heartbeat_s=0.5, poll_s=0.1, install_signal_handlers=False)
    assert out.status == "done" and q.get(jid).run_dir == str(run_dir)
    assert [p.name for p in runs.iterdir() if not p.name.startswith(".")] == [run_dir.name]
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    commands = [ln for ln in Path(q.get(jid).log).read_text().splitlines() if ln.startswith("$ ")]
    assert commands[0].endswith(f"--name smoke_s41 --run-dir {run_dir}")  # started there ...
    assert commands[1].endswith(f"train --run-dir {run_dir}")  # ... and resumed there with its saved config


def test_submitit_local_executor_runs_jobs(tmp_path: Path) -> None:
    from gradient_quarantine.experiments.slurm import SlurmOptions, parse_time_min, run_submitit

    q = JobQueue(tmp_path / "q.sqlite")
    a, b = q.add([_spec(tmp_path, "a"), _spec(tmp_path, "b", overrides={"ref": "{run_dir:after=0}"})])
    results = run_submitit(q, cluster="local", opts=SlurmOptions(gpus=0, time="10"), folder=tmp_path / "submitit",
                           poll_s=0.3, heartbeat_s=0.3)
    assert {r["job_id"]: r["status"] for r in results} == {a: "done", b: "done"}
    assert q.get(a).status == q.get(b).status == "done"
    assert json.loads(_attempts(q.get(b).run_dir)[0]["overrides"]) == {"ref": q.get(a).run_dir}
    events = [e for _, e, _ in q.events(a)]
    assert events[:4] == ["added", "claimed", "submitted", "transferred"]  # placeholder -> node hand-off
    assert [parse_time_min(t) for t in ("90", "2h", "1:30:00", "2-00:00:00", "90:00")] == [90, 120, 90, 2880, 90]


# A job that reports progress like the trainer (summary.json, metrics.jsonl), records when it ran and with
# which thread limit, then sleeps: side by side, two of them overlap in time.
TIMED_JOB_PY = textwrap.dedent(
    """
    import json, os, sys, time
    run_dir = os.environ["GQ_RUN_DIR"]
    os.makedirs(run_dir, exist_ok=True)
    t0 = time.time()
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump({"status": "running", "steps_done": 1, "steps": 3}, f)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "perf/step_time_s": 0.5}) + "\\n")
    time.sleep(float(sys.argv[1]))
    with open(os.path.join(run_dir, "ran.json"), "w") as f:
        json.dump({"start": t0, "end": time.time(), "omp": os.environ.get("OMP_NUM_THREADS")}, f)
    """
)


def _timed(tmp: Path, name: str, sleep: float = 1.5, **kw) -> JobSpec:
    job = tmp / "timed_job.py"
    job.write_text(TIMED_JOB_PY)
    return JobSpec(name=name, kind="command", argv=[PY, str(job), str(sleep)], runs_dir=str(tmp / "runs"), **kw)


def test_worker_plan_auto_is_one_job_per_core_or_gpu(monkeypatch) -> None:
    monkeypatch.setattr(workers_mod, "cpu_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU
    plan = WorkerPlan.make("auto")
    assert plan.workers == 4 and all(e["OMP_NUM_THREADS"] == "1" for e in plan.env)  # one torch thread each
    assert "CUDA_VISIBLE_DEVICES" not in plan.env[0]
    two = WorkerPlan.make(2)
    assert two.workers == 2 and [e["OMP_NUM_THREADS"] for e in two.env] == ["2", "2"]
    assert WorkerPlan.make(1).env == [{}]  # one job at a time: its environment is left as it was
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    gpu = WorkerPlan.make("auto")
    assert gpu.workers == 2 and [e["CUDA_VISIBLE_DEVICES"] for e in gpu.env] == ["3", "5"]  # one GPU each
    with pytest.raises(ValueError):
        WorkerPlan.make(0)


def test_side_by_side_respects_dependencies_and_reports_progress(tmp_path: Path) -> None:
    """Two independent jobs overlap in time; the job that depends on one of them starts after it ended;
    each job ran with cores // workers threads; the progress callback saw each running job's step."""
    q = JobQueue(tmp_path / "q.sqlite")
    a, b, c = q.add([_timed(tmp_path, "a"), _timed(tmp_path, "b"), _timed(tmp_path, "c", after=[1])])
    seen: list[list] = []
    outs = run_local(q, workers=2, heartbeat_s=0.2, poll_s=0.1, install_signal_handlers=False,
                     on_progress=seen.append, progress_s=0.2)  # fmt: skip
    assert sorted(o.status for o in outs) == ["done"] * 3
    ran = {j: json.loads((Path(q.get(j).run_dir) / "ran.json").read_text()) for j in (a, b, c)}
    assert ran[a]["start"] < ran[b]["end"] and ran[b]["start"] < ran[a]["end"], "a and b must run side by side"
    assert ran[c]["start"] >= ran[b]["end"], "c waits for its dependency"
    assert {r["omp"] for r in ran.values()} == {str(max(1, workers_mod.cpu_count() // 2))}
    both = [snap for snap in seen if len(snap) == 2]
    assert both, "progress must show both running jobs at once"
    p = next(p for snap in seen for p in snap if p.steps == 3)
    assert (p.steps_done, p.step_s, p.eta_s) == (1, 0.5, 1.0) and "step 1/3" in p.line()
    assert {p.slot for snap in both for p in snap} == {"w0", "w1"}


def test_run_view_prints_each_running_job_when_not_a_terminal() -> None:
    import io

    from rich.console import Console

    from gradient_quarantine.cli.queue import RunView, parse_workers
    from gradient_quarantine.experiments.workers import JobProgress

    buf = io.StringIO()
    view = RunView(Console(file=buf, width=200), every_s=0.0)
    with view:
        view.event("[w0] job 1 a: start")
        jobs = [JobProgress("w0", 1, "vanilla_s41", time.time() - 120, 7, 24, 41.0),
                JobProgress("w1", 2, "route2b_s41", time.time() - 60)]  # fmt: skip
        view.progress(jobs)
        view.progress(jobs)  # nothing new: not printed again
    lines = buf.getvalue().splitlines()
    assert lines[0].endswith("[w0] job 1 a: start")  # not eaten as rich markup
    assert [ln.split(" ", 1)[1] for ln in lines[1:]] == [
        "[w0] job 1 vanilla_s41: step 7/24, 41 s/step, ~12 min left (2 min in)",
        "[w1] job 2 route2b_s41: starting (60 s in)",
    ]
    assert parse_workers("auto") == "auto" and parse_workers("3") == 3
