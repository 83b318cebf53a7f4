"""`gq pairs build`: write a pair set (prompt, clean completion, hack completion) for the router.

    gq pairs build --problems builtin --out pairs.jsonl --per-mode 4
    gq pairs build --problems builtin --out placebo.jsonl --per-mode 4 --kind placebo
    gq pairs build --problems builtin --out gradient_quarantine/substrate/builtin/pairs.jsonl --kind both  # shipped
    gq pairs build --problems data.jsonl --out held.jsonl --mode overwrite_tests --mode visible_tests
    gq pairs build --problems builtin --out pairs.jsonl --split out/runs/0001_vanilla_s41/split.json  # pairs role
"""

from __future__ import annotations

from pathlib import Path

import typer

from gradient_quarantine.cli import app

pairs_app = typer.Typer(help="Build pair sets (clean vs hack completions) for the router.", no_args_is_help=True)
app.add_typer(pairs_app, name="pairs")


@pairs_app.command("build")
def build(
    out: Path = typer.Option(..., "--out", help="Pair file to write (jsonl)."),
    problems: str = typer.Option("builtin", "--problems", help="'builtin', a .jsonl in the public schema, or 'hf:<name>'."),
    per_mode: int = typer.Option(4, "--per-mode", min=1, help="Pairs per mode (the first problems of the mode by id)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mode partition (must match the run's partition seed)."),
    mode: list[str] = typer.Option(None, "--mode", help="Only these modes (repeatable); default: all four."),
    kind: str = typer.Option(
        "hack", "--kind",
        help="'hack' pairs, 'placebo' pairs (the 'hack' side is a second clean solution), or 'both' in one file.",
    ),
    split: Path = typer.Option(
        None, "--split",
        help="A run's split.json: build from its `pairs` role only, with its modes (so the pair set shares no "
        "problem with that run's warm start, training or eval).",
    ),
) -> None:
    """Partition the problems into modes (seeded), then write `--per-mode` pairs for each requested mode.

    Example: gq pairs build --problems builtin --out pairs.jsonl --per-mode 4
    """
    from gradient_quarantine.substrate.modes import assign_modes
    from gradient_quarantine.substrate.pairs import build_pairs, build_placebo_pairs, write_pairs
    from gradient_quarantine.substrate.problems import load_problems

    try:
        loaded = load_problems(problems)
        modes_of = assign_modes([p.id for p in loaded], seed=seed)
        if split is not None:
            import json

            from gradient_quarantine.substrate.types import Mode

            record = json.loads(split.read_text(encoding="utf-8"))
            if not record.get("split"):
                raise ValueError(f"{split} records no split (the run shared its problems across stages)")
            role_ids = set(record["split"]["roles"]["pairs"])
            missing = sorted(role_ids - {p.id for p in loaded})
            if missing:
                raise ValueError(f"{split}: pairs-role problems not in --problems {problems}: {missing[:5]}")
            loaded = [p for p in loaded if p.id in role_ids]
            modes_of = {pid: Mode(m) for pid, m in record["modes"].items() if pid in role_ids}
        modes = mode or None
        if kind not in ("hack", "placebo", "both"):
            raise ValueError(f"--kind must be 'hack', 'placebo' or 'both', got {kind!r}")
        rows = []
        if kind in ("hack", "both"):
            rows += build_pairs(loaded, modes_of, modes=modes, per_mode=per_mode)
        if kind in ("placebo", "both"):
            rows += build_placebo_pairs(loaded, modes_of, modes=modes, per_mode=per_mode)
        write_pairs(out, rows)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from e
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r['kind']}/{r['mode']}"
        counts[key] = counts.get(key, 0) + 1
    typer.echo(f"wrote {len(rows)} pairs to {out} ({', '.join(f'{k}: {n}' for k, n in counts.items())})")
