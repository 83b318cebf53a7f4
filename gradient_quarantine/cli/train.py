"""`gq train` (one GRPO run) and `gq eval` (re-run a run's deploy evaluation).

    gq train --preset smoke
    gq train --preset demo --set method=vanilla --set seed=42
    gq train --preset demo --set routing.direction=random --set routing.frout_from=out/runs/0001_route2b_s41
    gq train --resume out/runs/0003_route2b_s41
    gq train --preset demo --run-dir out/runs/0009_mine   # exactly this directory; run again: resumes it
    gq train --help-config                      # every config key, its default and what it means
    gq eval out/runs/0003_route2b_s41

The last line `gq train` prints is the run directory. A bad preset, key or value fails before anything runs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gradient_quarantine.cli import app


@app.command("train")
def train_cmd(
    preset: str = typer.Option(None, "--preset", help="smoke | demo | paper, or a path to a preset .yaml"),
    set_: list[str] = typer.Option(None, "--set", help="Override one config key: --set grpo.lr=3e-4 (repeatable)."),
    runs_dir: Path = typer.Option(None, "--runs-dir", help="Where run directories are created, as "
                                  "<RUNS_DIR>/<NNNN>_<name> with the next free job number (default out/runs)."),
    name: str = typer.Option(None, "--name", help="Run name (default: <arm>_s<seed>)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Train in exactly this directory: a new or empty one "
                                 "starts the run there, one holding a run resumes it (how the queue runs a job)."),
    resume: Path = typer.Option(None, "--resume", help="Resume this run directory from its last checkpoint."),
    help_config: bool = typer.Option(False, "--help-config", help="List every config key with its default and exit."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train one run (GRPO on TRL, vanilla or route2b) and write its run directory.

    Example: gq train --preset smoke --set method=vanilla
    """
    from gradient_quarantine.experiments.presets import describe_keys

    if help_config:
        typer.echo(describe_keys())
        return
    if resume is not None:
        if preset or set_ or name or run_dir:
            _fail("--resume continues a run with its saved config; drop --preset/--set/--name/--run-dir")
        _resume(resume)
        return
    if run_dir is not None:
        if runs_dir is not None:
            _fail("--run-dir is the run directory itself; drop --runs-dir")
        if (run_dir / "config.json").is_file():  # the run is there already (a killed attempt): continue it
            if preset:
                _same_run_or_fail(run_dir, _config(preset, set_, name, quiet))
            elif set_ or name:
                _fail(f"{run_dir} holds a run: give only --run-dir to resume it with its saved config "
                      "(or --preset with --set/--name to check they match it)")
            _resume(run_dir)
            return
    if not preset:
        where = f"{run_dir} holds no run yet: " if run_dir is not None else ""
        _fail(f"{where}give --preset NAME (smoke, demo, paper or a .yaml path), or --resume RUN_DIR")
    cfg = _config(preset, set_, name, quiet)
    _quiet_libraries()
    from gradient_quarantine.substrate.sandbox import SandboxError
    from gradient_quarantine.train.run import train as train_run

    try:
        run = train_run(cfg, runs_dir=runs_dir or Path("out/runs"), run_dir=run_dir)
    except (SandboxError, FileExistsError) as e:  # refused before the run started (or the sandbox broke mid-run)
        _fail(str(e))
    typer.echo(str(run.path))


def _config(preset: str, set_: list[str] | None, name: str | None, quiet: bool):
    """The validated config of `--preset/--set/--name` (a bad key or value fails here, before anything runs)."""
    from gradient_quarantine.experiments.presets import ConfigError, build_config

    try:
        cfg = build_config(preset, set_ or [], name=name)
        if quiet:
            cfg.run.progress = False
    except ConfigError as e:
        _fail(str(e))
    return cfg


def _same_run_or_fail(run_dir: Path, cfg) -> None:
    """`--run-dir` on a directory that holds a run: the options given must describe that run (same numbers:
    config_hash; same name when --name is given), else it is someone else's directory."""
    import json

    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    asked = cfg.resolved()
    if saved.get("config_hash") != asked.config_hash():
        _fail(f"{run_dir} holds a run of another config (config_hash {saved.get('config_hash')}, these options give "
              f"{asked.config_hash()}): give only --run-dir to resume it, or choose another directory")
    if cfg.name is not None and saved.get("name") != cfg.name:
        _fail(f"{run_dir} holds the run {saved.get('name')!r}, not {cfg.name!r}")


def _resume(run_dir: Path) -> None:
    """Continue the run in `run_dir` from its last checkpoint (a complete run: nothing to do); print its path."""
    _quiet_libraries()
    from gradient_quarantine.substrate.sandbox import SandboxError
    from gradient_quarantine.train.run import resume as resume_run

    try:
        run = resume_run(run_dir)
    except SandboxError as e:  # no sandbox at the level the run's config asks for: nothing was changed
        _fail(str(e))
    typer.echo(str(run.path))


@app.command("eval")
def eval_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory with train.safetensors."),
    out: Path = typer.Option(None, "--out", help="Write the result here instead of RUN_DIR/per_mode_deploy.json."),
) -> None:
    """Re-run the deploy evaluation (knob off, knob on, base) of a finished run from its train.safetensors.

    Sampling is seeded as in training, so on the same machine the numbers reproduce the run's final eval.
    Example: gq eval out/runs/0003_route2b_s41
    """
    _quiet_libraries()
    from gradient_quarantine.substrate.sandbox import SandboxError
    from gradient_quarantine.train.run import evaluate_run

    try:
        result = evaluate_run(run_dir, out=out)
    except (FileNotFoundError, SandboxError) as e:
        _fail(str(e))
    for variant in ("deploy", "knob_on", "base"):
        ev = result.get(variant)
        if ev:
            modes = ", ".join(f"{m} hack {r['hack']:.2f}" for m, r in ev["by_mode"].items() if r["n"])
            typer.echo(f"{variant:8s} hack {ev['hack']:.3f} solve {ev['solve']:.3f} (n={ev['n']}; {modes})")
    typer.echo(str(out or Path(run_dir) / "per_mode_deploy.json"))


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


def _quiet_libraries() -> None:
    import logging
    import os
    import warnings

    # deprecation notices from inside transformers/TRL (e.g. their own gradient_checkpointing alias) are not
    # actionable for a user of gq and bury the progress bar
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl)\.")

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except ImportError:
        pass
