"""`gq report RUNS_DIR --out REPORT_DIR`: figures and tables A1-A7 and results.md, from run directories alone.

    gq report out/runs --out out/report
    gq report out/runs out/runs_long --out out/report --long-steps 200 --alpha 0.05
"""

from __future__ import annotations

from pathlib import Path

import typer

from gradient_quarantine.cli import app


@app.command("report")
def report(
    runs_dirs: list[Path] = typer.Argument(..., help="folders of run directories (or run directories)"),
    out: Path = typer.Option(Path("out/report"), "--out", "-o", help="where the report goes"),
    alpha: float = typer.Option(0.05, "--alpha", help="significance level of the paired tests (stated on every table)"),
    long_steps: int = typer.Option(200, "--long-steps", help="runs with at least this many steps go into A4"),
    method_arm: str = typer.Option("route2b", "--method-arm", help="the method's arm in A1 and as A5's reference"),
    baseline_arm: str = typer.Option("vanilla", "--baseline-arm", help="the arm every delta is taken against"),
) -> None:
    """Figures and tables A1-A7 and results.md, regenerated from run directories alone.

    A1 curves, A2 main table (+ per mode), A3 ablations, A4 long run, A5 held-out modes, A6 traces, A7 context;
    PNGs with their data as CSV, tables as markdown and CSV, results.md linking them. Partial or incomplete runs
    are listed in results.md, never dropped silently.

    Example: gq report out/runs --out out/report
    """
    from gradient_quarantine.analysis.report import build_report
    from gradient_quarantine.analysis.runs import load_runs

    if not 0 < alpha < 1:
        raise typer.BadParameter("alpha must be in (0, 1)", param_hint="--alpha")
    try:
        runs = load_runs(runs_dirs)
    except FileNotFoundError as e:
        typer.secho(str(e), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    files = build_report(runs_dirs, out, alpha=alpha, long_steps=long_steps, method_arm=method_arm,
                         baseline_arm=baseline_arm)
    complete = sum(r.complete for r in runs)
    typer.echo(f"{len(runs)} runs read: {complete} complete, {len(runs) - complete} partial or missing files "
               f"(listed in results.md)")
    typer.echo(f"{len(files)} files written to {out}")
    typer.echo(str(out / "results.md"))
