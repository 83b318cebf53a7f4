"""`gq study SWEEP`: the end-to-end study in one resumable command (the README's main job).

It is the three steps a researcher would type, in order, in one study directory:

    gq queue add SWEEP --seeds ... --runs-dir STUDY/runs --db STUDY/queue.sqlite   (once; skipped if queued)
    gq queue run --db STUDY/queue.sqlite                                         (runs / resumes the jobs)
    gq report STUDY/runs --out STUDY/report                                       (figures, tables, results.md)

and then prints the main table (A2). Independent jobs run side by side, one per CPU core with one torch
thread each on a 2-core machine (`--workers auto`); random-V waits for the route2b run it is matched to. While
they run, each running job's step, s/step and time left are shown. Running it again continues where it
stopped: finished jobs are not re-run, a job killed mid-run resumes from its last checkpoint (the queue passes
`--resume`).

    gq study demo                      # embedded SmolLM2-135M, vanilla / route2b / random-V, seed 41
    gq study demo --seeds 41,42,43     # the same with three seeds (three times the work, on all cores)
    gq study demo -w 1                 # one job at a time
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from gradient_quarantine.cli import app


@app.command("study")
def study(
    sweep: str = typer.Argument("demo", help="sweep name (experiments/sweeps/NAME.yaml) or path to a sweep .yaml"),
    seeds: str = typer.Option("41", "--seeds", help="comma-separated seeds (the demo runs one by default)"),
    out: Path = typer.Option(None, "--out", help="study directory (default out/study_<sweep>)"),
    workers: str = typer.Option("auto", "--workers", "-w", help="jobs at once: a number, or auto (one per CPU "
                                "core, each with cores // workers torch threads; one per GPU on a GPU machine)"),
    sets: list[str] = typer.Option([], "--set", help="key=value override for every job (e.g. steps=5)"),
) -> None:
    """Run a sweep end to end through the queue, then the report; resumable.

    Example: gq study demo
    """
    from rich.console import Console

    from gradient_quarantine.analysis.report import build_report
    from gradient_quarantine.analysis.runs import load_runs
    from gradient_quarantine.cli.queue import RunView, parse_workers
    from gradient_quarantine.experiments.presets import parse_set
    from gradient_quarantine.experiments.queue import JobQueue, QueueError
    from gradient_quarantine.experiments.sweep import SweepError, add_sweep, load_sweep
    from gradient_quarantine.experiments.workers import run_local

    console = Console(stderr=True)
    out = out or Path("out") / f"study_{Path(sweep).stem}"
    runs_dir, db, report_dir = out / "runs", out / "queue.sqlite", out / "report"
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    t0 = time.time()
    try:
        spec = load_sweep(sweep)
        extra = dict(parse_set(s) for s in sets)
        q = JobQueue(db)
        queued = [j for j in q.jobs() if j.sweep == spec.name]
        if not queued:
            ids, _ = add_sweep(q, spec, seeds=seed_list or None, extra=extra, runs_dir=runs_dir)
            console.print(f"[bold]study {spec.name}[/]: queued {len(ids)} jobs in {db}")
        else:
            console.print(f"[bold]study {spec.name}[/]: resuming ({len(queued)} jobs already in {db}; "
                          "--seeds/--set apply only when the study is first queued)")
    except (SweepError, ValueError) as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None

    for job in q.jobs():
        if job.status in ("failed", "killed"):
            console.print(f"  job {job.id} {job.name} was {job.status} ({job.reason}); requeueing it")
            q.requeue(job.id, force=True)

    try:
        with RunView(console) as view:  # events, and each running job's step / s per step / time left
            outcomes = run_local(q, workers=parse_workers(workers), on_event=view.event, on_progress=view.progress)
    except (QueueError, ValueError) as e:  # e.g. no sandbox for the training jobs: nothing was started
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    failed = [o for o in outcomes if o.status != "done"]

    runs = load_runs([runs_dir]) if runs_dir.exists() else []
    if not runs:
        typer.secho(f"no run directories under {runs_dir}; nothing to report", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    build_report([runs_dir], report_dir)
    _print_main_table(report_dir, console)
    console.print(f"study took {(time.time() - t0) / 60:.1f} min this time; "
                  f"{sum(r.complete for r in runs)}/{len(runs)} runs complete; report: {report_dir / 'results.md'}")
    if failed:
        for o in failed:
            console.print(f"[red]job {o.job_id} {o.status}: {o.reason}[/]")
        raise typer.Exit(1)
    typer.echo(str(report_dir / "results.md"))


def _print_main_table(report_dir: Path, console) -> None:
    """The study's closing summary: one row per arm with the key columns of A2 (`a2_main.md`) and of the
    ablation arms in A3 (`a3_ablations.md`, where random-V is); those files keep the full tables."""
    from rich.table import Table

    cols = ("arm", "n", "deploy hack", "deploy solve", "Δ hack vs vanilla", "p (hack)", "knob-on hack", "frout")
    table = Table(title="Summary: deploy (knob off) per arm, mean ± SEM over seeds",
                  caption=f"full tables: {report_dir}/a2_main.md, a3_ablations.md")
    for c in cols:
        table.add_column(c)
    by_arm: dict[str, dict[str, str]] = {}  # an arm in both tables (route2b) takes A3's gauges too
    for name in ("a2_main.md", "a3_ablations.md"):
        path = report_dir / name
        lines = [ln for ln in path.read_text().splitlines() if ln.startswith("|")] if path.is_file() else []
        cells = [[c.strip() for c in ln.strip().strip("|").split(" | ")] for ln in lines]
        if len(cells) < 3:
            continue
        header, rows = cells[0], cells[2:]  # cells[1] is the |---| rule
        for r in rows:
            row = by_arm.setdefault(r[0], {})
            for c, v in zip(header, r, strict=False):
                if not row.get(c):  # first non-empty value wins
                    row[c] = v
    for row in by_arm.values():
        table.add_row(*(row.get(c, "") for c in cols))
    if by_arm:
        console.print(table)
    else:
        console.print(f"(no rows in {report_dir}/a2_main.md or a3_ablations.md; see results.md)")
