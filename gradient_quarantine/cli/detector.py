"""`gq detector eval`: measure a detector recipe offline, on completions runs already sampled and graded.

    gq detector eval out/runs/0001_vanilla_s41 --out det.json
    gq detector eval RUN_A RUN_B --recipe-option k=2 --recipe-option granularity=token
    gq detector eval RUN --pair-modes overwrite_tests,visible_tests      # in-mode vs held-out-mode hacks
    gq detector eval RUN --adapter final                                # the run's trained policy

Builds the first run's detector (`routing.detector.build_detector`, the run's pair set and recipe) on the
warm-start policy (or the run's final adapter), scores every distinct policy completion of the runs' rollouts.jsonl
as the gate would, and prints AUC, TPR at 5 % FPR and the mean gate on hack / non-hack rows, overall, per mode
and in-mode / held-out-mode (analysis/detector_eval.py). `--out` keeps every figure and the per-row scores.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gradient_quarantine.cli import app

detector_app = typer.Typer(
    help="Measure the hack detector (v_grad and its band) offline on runs' graded completions.",
    no_args_is_help=True,
)
app.add_typer(detector_app, name="detector")


@detector_app.command("eval")
def eval_cmd(
    run_dirs: list[Path] = typer.Argument(
        ..., help="Run directories (config.json, split.json, rollouts.jsonl) of one model."
    ),
    recipe_option: list[str] = typer.Option(
        None,
        "--recipe-option",
        "-r",
        help="Override one DetectorRecipe field of the run's recipe: key=value (repeatable), e.g. k=2, "
        "granularity=token, direction=random.",
    ),
    pair_modes: str = typer.Option(
        None,
        "--pair-modes",
        help="Build the detector from these modes' pairs only (comma-separated); the report "
        "then splits hacks into in-mode and held-out-mode.",
    ),
    pair_sides: str = typer.Option(
        None,
        "--pair-sides",
        help="template: canonical solution vs the mode's hack template; on_policy: the scored policy's own "
        "completions on the pair problems vs the same with the hack inserted (default: the run's routing.pair_sides).",
    ),
    on_policy_samples: int = typer.Option(
        None, "--on-policy-samples", min=1, help="With --pair-sides on_policy: completions per pair problem."
    ),
    adapter: str = typer.Option(
        "none",
        "--adapter",
        help="none: the warm-start policy with a fresh zero adapter; final: the run's "
        "train.safetensors (one run only).",
    ),
    out: Path = typer.Option(None, "--out", help="Write every figure and the per-row scores here (JSON)."),
    batch_size: int = typer.Option(
        4, "--batch-size", min=1, help="Completions per forward/backward when scoring."
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Score only the first N distinct completions."),
    cache_dir: Path = typer.Option(
        None,
        "--cache-dir",
        help="Where the warm start is cached (default: the run's recorded path, its "
        "run.cache_dir, out/cache).",
    ),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default: the run's run.device)."),
    threads: int = typer.Option(
        None, "--threads", min=1, help="torch threads (default: the run's run.torch_threads)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Score every policy completion of the runs with the first run's detector; print AUC, TPR at 5 % FPR, gates.

    Example: gq detector eval docs/results/demo/runs/0001_vanilla_s41 --out det.json
    """
    from gradient_quarantine.analysis.detector_eval import DetectorEvalError, evaluate_detector
    from gradient_quarantine.cli.train import _fail, _quiet_libraries

    _quiet_libraries()
    modes = [m.strip() for m in pair_modes.split(",") if m.strip()] if pair_modes is not None else None
    try:
        res = evaluate_detector(
            run_dirs, recipe_options=recipe_option or [], pair_modes=modes, pair_sides=pair_sides,
            on_policy_samples=on_policy_samples, adapter=adapter, batch_size=batch_size,
            limit=limit, cache_dir=cache_dir, device=device, threads=threads, progress=not quiet, out=out,
            log=lambda msg: typer.echo(msg, err=True),
        )  # fmt: skip
    except DetectorEvalError as e:
        _fail(str(e))
        return
    _print(res.result)
    if out is not None:
        typer.echo(f"wrote {out}")


def _print(r: dict) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    d, rec = r["detector"], r["recipe"]

    def f(x: float | None, spec: str = ".3f") -> str:
        return "-" if x is None else format(x, spec)

    title = (f"detector on {r['scoring']['n_scored']} distinct policy completions ({', '.join(Path(p).name for p in r['runs'])}); "
             f"{d['kind']} k={rec['k']} {d['granularity']} from {d['n_pairs']} pairs of {', '.join(d['pair_modes'])}; "
             f"adapter {r['adapter']['kind']}")  # fmt: skip
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("hacks", no_wrap=True)
    for col in ("n hack", "n other", "AUC", "TPR@.05", "f hack", "f other"):
        table.add_column(col, justify="right", no_wrap=True)

    def add(name: str, x: dict) -> None:
        table.add_row(name, str(x["n_hack"]), str(x["n_clean"]), f(x["auc"]), f(x["tpr_at_5fpr"]),
                      f(x["gate_hack"]), f(x["gate_clean"]))  # fmt: skip

    add("all", r["overall"])
    for m, x in r["by_mode"].items():
        add(m, x)
    if r["in_mode"] is not None:
        add("in-mode", r["in_mode"])
        add("held-out-mode", r["heldout_mode"])
    console = Console()
    console.print(table)
    console.print("AUC: score, hacks vs other rows (ties half); TPR@.05: share of hacks above the 95th percentile of "
                  "the other rows' scores (5 % FPR); f: mean gate")  # fmt: skip
    band = f"band [{d['band_lower']:+.4f}, {d['band_upper']:+.4f}] width {d['band_width']:+.4f}"
    loo = (
        f", leave-one-pair-out separation {d['loo_separation']:.2f}"
        if d["loo_separation"] is not None
        else ""
    )
    console.print(f"{band}{loo}; pair modes: {d['pair_modes_source']}; {r['timing']['wall_s']:.0f} s")
    if d["matched_control"]:
        console.print("note: the run is a frout-matched control: its live gate was not this band's")
    s = r["scoring"]
    if s["n_label_conflicts"]:
        console.print(
            f"note: {s['n_label_conflicts']} duplicate completions had a different label (first kept)"
        )
