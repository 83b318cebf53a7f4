"""`gq queue ...`: add a sweep, list, run (local workers or SLURM via submitit), kill, requeue, show.

    gq queue add demo --seeds 41,42 --priority 5      # a shipped sweep (experiments/sweeps/demo.yaml) or a path
    gq queue ls
    gq queue run                                      # side by side: --workers auto (one job per core / GPU)
    gq queue run --executor slurm --partition gpu --gpus 1 --time 12:00:00 --max-running 16
    gq queue kill 7 ; gq queue requeue 7 ; gq queue show 7
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from gradient_quarantine.cli import app

queue_app = typer.Typer(
    help="The job queue: jobs with priorities and dependencies in SQLite; local workers or SLURM (submitit).",
    no_args_is_help=True,
)
app.add_typer(queue_app, name="queue")

DB_OPT = typer.Option(Path("out/queue.sqlite"), "--db", help="queue database (SQLite file)")


def _queue(db: Path, stale_s: float = 120.0):
    from gradient_quarantine.experiments.queue import JobQueue

    return JobQueue(db, stale_s=stale_s)


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(msg, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


WORKERS_HELP = "jobs at once: a number, or auto (one per CPU core, one per GPU on a GPU machine)"


def parse_workers(value: str) -> int | str:
    """`--workers`: "auto" or a positive count."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        _fail(f"--workers {value!r}: use a positive number or auto")
    return n


class RunView:
    """What `gq queue run` and `gq study` show while local workers run: every event as a timestamped line, and
    each running job's progress (step k/N, s/step, time left): a live table under the events on a terminal,
    else one line per running job when a step has finished since the last report (at most every `every_s`)."""

    def __init__(self, console, every_s: float = 60.0):
        self.console = console
        self.every_s = every_s
        self.live = None
        self._last: tuple = ()
        self._last_t = float("-inf")

    def __enter__(self) -> RunView:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=1, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def event(self, msg: str) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')} {msg}", markup=False, highlight=False)

    def progress(self, jobs) -> None:
        if self.live is not None:
            self.live.update(self._table(jobs))
            return
        key = tuple((p.job_id, p.steps_done) for p in jobs)
        if jobs and key != self._last and time.monotonic() - self._last_t >= self.every_s:
            self._last, self._last_t = key, time.monotonic()
            for p in jobs:
                self.event(p.line())

    @staticmethod
    def _table(jobs):
        from rich.table import Table

        from gradient_quarantine.experiments.workers import fmt_duration

        table = Table(title=f"running ({len(jobs)})", title_justify="left", box=None, pad_edge=False)
        for col in ("worker", "job", "step", "s/step", "left", "running for"):
            table.add_column(col)
        for p in jobs:
            step = f"{p.steps_done or 0}/{p.steps}" if p.steps else "starting"
            table.add_row(p.slot, f"{p.job_id} {p.name}", step, f"{p.step_s:.0f}" if p.step_s else "-",
                          fmt_duration(p.eta_s), fmt_duration(time.time() - p.started))  # fmt: skip
        return table


@queue_app.command("add")
def add(
    sweep: str = typer.Argument(..., help="sweep name (experiments/sweeps/NAME.yaml) or path to a sweep .yaml"),
    priority: int = typer.Option(0, "--priority", "-p", help="higher runs first (ties: oldest first)"),
    seeds: str = typer.Option("", "--seeds", help="comma-separated seeds, replacing the sweep's (e.g. 41,42)"),
    sets: list[str] = typer.Option([], "--set", help="key=value override for every job (strongest)"),
    runs_dir: Path = typer.Option(Path("out/runs"), "--runs-dir", help="where the run directories go"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="queue the valid jobs, skip the rest"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the jobs (and any problems); queue nothing"),
    db: Path = DB_OPT,
) -> None:
    """Expand a sweep into jobs (arm x seed), validate each with the trainer's config, and queue them.

    Example: gq queue add demo --seeds 41 --set steps=10
    """
    from gradient_quarantine.experiments.sweep import (
        SweepError,
        add_sweep,
        describe,
        expand,
        load_sweep,
        validate,
    )

    try:
        spec = load_sweep(sweep)
        seed_list = [int(s) for s in seeds.split(",") if s.strip()] or None
        extra = _parse_sets(sets)
        if dry_run:
            jobs = expand(spec, seed_list, extra)
            problems = validate(jobs)
            for row in describe(jobs):
                mark = "" if row["name"] not in problems else "   <- " + problems[row["name"]]
                after = f" after {', '.join(row['after'])}" if row["after"] else ""
                typer.echo(f"{row['name']}: preset={row['preset']}{after} {row['overrides']}{mark}")
            typer.echo(f"{len(jobs)} jobs, {len(problems)} invalid (dry run: nothing queued)")
            return
        ids, skipped = add_sweep(_queue(db), spec, seeds=seed_list, extra=extra, priority=priority,
                                 runs_dir=runs_dir, skip_invalid=skip_invalid)
    except (SweepError, ValueError) as e:
        _fail(str(e))
    for name, why in skipped.items():
        typer.secho(f"skipped {name}: {why}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"queued {len(ids)} jobs ({', '.join(map(str, ids)) or 'none'}) from sweep {spec.name} in {db}")


def _parse_sets(sets: list[str]) -> dict:
    from gradient_quarantine.experiments.presets import parse_set

    return dict(parse_set(s) for s in sets)


@queue_app.command("ls")
def ls(
    db: Path = DB_OPT,
    status: str = typer.Option("", "--status", help="only jobs in this state (queued/running/done/failed/killed)"),
) -> None:
    """List jobs: id, priority, state (with why it waits), attempts, run directory, last reason."""
    from rich.console import Console
    from rich.table import Table

    q = _queue(db)
    jobs = q.jobs(status or None)
    by_id = {j.id: j for j in q.jobs()}
    table = Table(show_lines=False)
    for col in ("id", "pri", "status", "name", "sweep", "try", "deps", "run dir / reason"):
        table.add_column(col, overflow="fold")
    colours = {"done": "green", "failed": "red", "killed": "magenta", "running": "cyan"}
    for j in jobs:
        st = q.display_status(j, by_id)
        detail = j.run_dir or ""
        if j.reason and j.status != "done":
            detail = f"{detail}\n{j.reason}" if detail else j.reason
        c = colours.get(j.status, "")
        table.add_row(str(j.id), str(j.priority), f"[{c}]{st}[/{c}]" if c else st, j.name, j.sweep or "",
                      f"{j.attempts}/{j.max_attempts}", ",".join(map(str, j.deps)), detail)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped or logged: do not fold paths at 80 columns
    console.print(table)
    counts = {s: sum(1 for j in by_id.values() if j.status == s) for s in ("queued", "running", "done", "failed", "killed")}
    typer.echo("  ".join(f"{k}: {v}" for k, v in counts.items()))


@queue_app.command("run")
def run(
    workers: str = typer.Option("auto", "--workers", "-w", help=WORKERS_HELP + " (local executor)"),
    executor: str = typer.Option("local", "--executor", help="local | slurm | submitit-local (submitit's local runner)"),
    partition: str = typer.Option(None, "--partition", help="SLURM partition"),
    gpus: int = typer.Option(1, "--gpus", help="GPUs per job (SLURM)"),
    time_limit: str = typer.Option("24:00:00", "--time", help="time limit per job (SLURM --time forms, or 90m, 2h)"),
    cpus: int = typer.Option(None, "--cpus", help="CPUs per job (SLURM)"),
    mem_gb: int = typer.Option(None, "--mem-gb", help="memory per job in GB (SLURM)"),
    account: str = typer.Option(None, "--account", help="SLURM account"),
    qos: str = typer.Option(None, "--qos", help="SLURM QOS"),
    max_running: int = typer.Option(8, "--max-running", help="jobs submitted at once (slurm / submitit-local)"),
    forever: bool = typer.Option(False, "--forever", help="keep polling for new jobs instead of exiting when idle"),
    heartbeat_s: float = typer.Option(5.0, "--heartbeat-s", help="seconds between a worker's heartbeats"),
    stale_s: float = typer.Option(120.0, "--stale-s", help="a worker on another host silent this long is dead"),
    db: Path = DB_OPT,
) -> None:
    """Run queued jobs until nothing is left that could run. A killed worker loses no job: the next `queue run`
    puts its job back (a train job resumes from its run directory).

    Independent jobs run side by side (`--workers auto`: one per CPU core, each with cores // workers torch
    threads; one per GPU on a GPU machine); a job waits for its dependencies (random-V for its route2b run).
    While they run, each running job's step, s/step and time left are shown.

    Example: gq queue run ;  gq queue run -w 1 ;  gq queue run --executor slurm --partition gpu --gpus 1 --time 12:00:00
    """
    q = _queue(db, stale_s)

    def say(msg: str) -> None:
        typer.echo(f"{time.strftime('%H:%M:%S')} {msg}")

    if executor == "local":
        from rich.console import Console

        from gradient_quarantine.experiments.queue import QueueError
        from gradient_quarantine.experiments.workers import run_local

        n_workers = parse_workers(workers)
        try:
            with RunView(Console(highlight=False)) as view:
                outcomes = run_local(q, n_workers, heartbeat_s=heartbeat_s, forever=forever, on_event=view.event,
                                     on_progress=view.progress)  # fmt: skip
        except (QueueError, ValueError) as e:  # e.g. no sandbox for the queued train jobs: nothing was started
            _fail(str(e))
        statuses = [o.status for o in outcomes]
    elif executor in ("slurm", "submitit-local"):
        from gradient_quarantine.experiments.slurm import SlurmOptions, run_submitit

        opts = SlurmOptions(partition=partition, gpus=gpus, time=time_limit, cpus=cpus, mem_gb=mem_gb,
                            account=account, qos=qos)
        cluster = "slurm" if executor == "slurm" else "local"
        results = run_submitit(q, cluster=cluster, opts=opts, max_running=max_running, forever=forever,
                               heartbeat_s=max(heartbeat_s, 10.0) if cluster == "slurm" else heartbeat_s,
                               poll_s=15.0 if cluster == "slurm" else 1.0, on_event=say)
        statuses = [r.get("status", "?") for r in results]
    else:
        _fail(f"--executor {executor!r}: use local, slurm or submitit-local")
    done = statuses.count("done")
    say(f"idle: {done} done, {len(statuses) - done} not done this session; `gq queue ls --db {db}` for details")
    if any(s == "failed" for s in statuses):
        raise typer.Exit(1)


@queue_app.command("kill")
def kill(ids: list[int] = typer.Argument(..., help="job ids"), db: Path = DB_OPT) -> None:
    """Cancel queued jobs or stop running ones (their run directories stay; `requeue` resumes them)."""
    from gradient_quarantine.experiments.queue import QueueError

    q = _queue(db)
    for i in ids:
        try:
            typer.echo(f"job {i}: {q.kill(i)}")
        except QueueError as e:
            _fail(str(e))


@queue_app.command("requeue")
def requeue(
    ids: list[int] = typer.Argument(..., help="job ids"),
    force: bool = typer.Option(False, "--force", help="also requeue a job that is done"),
    db: Path = DB_OPT,
) -> None:
    """Put failed/killed jobs back in the queue with a fresh attempt budget; existing run dirs resume."""
    from gradient_quarantine.experiments.queue import QueueError

    q = _queue(db)
    for i in ids:
        try:
            typer.echo(f"job {i}: {q.requeue(i, force=force)}")
        except QueueError as e:
            _fail(str(e))


@queue_app.command("show")
def show(job_id: int = typer.Argument(..., help="job id"), lines: int = typer.Option(20, "--lines", "-n"),
         db: Path = DB_OPT) -> None:
    """One job: its spec, history of events and the tail of its log."""
    import json
    from dataclasses import replace

    from gradient_quarantine.experiments.jobrun import job_argv
    from gradient_quarantine.experiments.queue import QueueError

    q = _queue(db)
    try:
        j = q.get(job_id)
    except QueueError as e:
        _fail(str(e))
    typer.echo(f"job {j.id} {j.name} [{q.display_status(j)}] priority {j.priority}, attempts {j.attempts}/{j.max_attempts}")
    typer.echo(f"spec: {json.dumps(j.spec)}")
    unstarted = j.kind == "train" and not j.run_dir  # its run directory is reserved when it first starts
    typer.echo(f"run dir: {'(reserved when it first starts)' if unstarted else j.run_dir}\nlog: {j.log}")
    if j.status == "queued":
        shown = replace(j, run_dir=str(Path(j.spec["runs_dir"]) / f"NNNN_{j.name}")) if unstarted else j
        try:
            note = " (NNNN: the next free job number there)" if unstarted else ""
            typer.echo("next command: " + " ".join(job_argv(q, shown)[0]) + note)
        except QueueError as e:
            typer.echo(f"next command: (not yet: {e})")
    for t, ev, detail in q.events(job_id):
        typer.echo(f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t))} {ev}: {detail or ''}")
    log = Path(j.log)
    if log.is_file():
        typer.echo(f"--- last {lines} lines of {log}")
        typer.echo("\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
