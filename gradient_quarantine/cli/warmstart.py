"""`gq warmstart`: build (or find in the cache) the warm-started base model a preset names, and print its base
rates on the run's `eval` problems. `gq train` / `gq study` do the same automatically, so this command is for
looking at the starting point before a study, or for calibrating the warm start's settings.

    gq warmstart --preset demo
    gq warmstart --preset demo --set warmstart.hack_share=0.15 --set warmstart.epochs=3
    gq warmstart --preset demo --unhinted     # also the same eval problems with the hint removed (strict)

The last line printed is the checkpoint's directory (a plain Hugging Face checkpoint).
"""

from __future__ import annotations

import typer

from gradient_quarantine.cli import app


@app.command("warmstart")
def warmstart_cmd(
    preset: str = typer.Option(..., "--preset", help="A preset whose warmstart.enabled is true (e.g. demo), or a .yaml path."),
    set_: list[str] = typer.Option(None, "--set", help="Override one config key: --set warmstart.lr=2e-4 (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    unhinted: bool = typer.Option(
        False, "--unhinted", help="Also sample the eval problems with every hint removed (strict grading, same "
        "samples and seed; cached beside the checkpoint): is it the hint or the problem that stops a solve?"
    ),
) -> None:
    """Supervised warm start on the preset's `warmstart` problems (cached by its inputs), then its base rates.

    Example: gq warmstart --preset demo
    """
    from gradient_quarantine.cli.train import _fail, _quiet_libraries
    from gradient_quarantine.experiments.presets import ConfigError, build_config

    try:
        cfg = build_config(preset, set_ or [])
    except ConfigError as e:
        _fail(str(e))
    if not cfg.warmstart.enabled:
        _fail(f"preset {preset} has no warm start: add --set warmstart.enabled=true (and a data.split with a "
              "warmstart role)")  # fmt: skip
    if quiet:
        cfg.run.progress = False
    _quiet_libraries()
    import torch

    from gradient_quarantine.train.roles import run_problems
    from gradient_quarantine.train.warmstart import ensure_unhinted_rates, read_base_rates, warmstart_for

    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    device = "cuda" if cfg.run.device != "cpu" and torch.cuda.is_available() else "cpu"
    dtype = cfg.run.dtype if cfg.run.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    try:
        problems = run_problems(cfg)
        path = warmstart_for(cfg, problems, device=device, dtype=dtype)
    except ValueError as e:
        _fail(str(e))
    rates = read_base_rates(path)
    typer.echo(_rates_table(rates))
    if unhinted:
        typer.echo("")
        typer.echo(_rates_table(ensure_unhinted_rates(path, cfg, problems.eval, problems.modes_of, device=device,
                                                      dtype=dtype), unhinted=True))  # fmt: skip
    typer.echo(str(path))


def _rates_table(ev: dict, unhinted: bool = False) -> str:
    def row(name: str, r: dict) -> str:
        if not r or not r.get("n"):
            return f"{name:16s} (none)"
        return (f"{name:16s} solve {r['solve']:.3f}  attempt {r['attempt']:.3f}  hack {r['hack']:.3f}  "
                f"format {r['format']:.3f}  n={r['n']}")  # fmt: skip

    title = ("the same eval problems with every hint removed (strict; rows still by each problem's mode):"
             if unhinted else "base rates of the warm-started model on the eval problems:")  # fmt: skip
    lines = [title, row("overall", ev)]
    for key in ("hackable", "unhackable"):
        if key in ev:
            lines.append(row(key, ev[key]))
    lines += [row(m, r) for m, r in ev.get("by_mode", {}).items()]
    lines += [row(f"set {src}", r) for src, r in ev.get("by_source", {}).items()]
    return "\n".join(lines)
