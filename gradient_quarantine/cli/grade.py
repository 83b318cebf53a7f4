"""`gq grade`: grade completions with the sandboxed strict grader and each problem's flawed grader.

    gq grade --problems builtin                                   # reference completions, per-mode table
    gq grade --problems data.jsonl --completions rollouts.jsonl --out graded.jsonl

A completion row is `{"problem_id", "mode", "completion", ...}`; `mode` may be left out (the problem's
assigned mode under `--seed` is used), any other field is carried over unchanged. Each output row adds
`format_ok, gt_pass, flawed_pass, hack, attempted, reward, reason` and `isolation`, the sandbox level the row
was graded under (docs/architecture.md, "Sandbox"). The exit status is 0 when every row was graded, whatever
the programs did; 2 for unusable input (unknown problem id, bad mode, unreadable file) and when no sandbox at
the asked level is available (`--isolation auto`, the default, is bwrap or nothing; a weaker level must be
asked for by name).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import typer

from gradient_quarantine.cli import app

VERDICT_FIELDS = ("format_ok", "gt_pass", "flawed_pass", "hack", "attempted", "reward", "reason")


def _fail(msg: str) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code=2)


def _read_completions(path: Path, by_id: dict, modes_of: dict) -> list[tuple]:
    from gradient_quarantine.io import iter_numbered_jsonl
    from gradient_quarantine.substrate.modes import parse_mode

    if not path.is_file():
        raise _fail(f"completions file not found: {path}")
    rows = []
    try:
        numbered = list(iter_numbered_jsonl(path))
    except ValueError as e:
        raise _fail(str(e)) from None
    for where, row in numbered:
        if not isinstance(row, dict):
            raise _fail(f"{where}: expected a JSON object")
        pid = str(row.get("problem_id", ""))
        if pid not in by_id:
            raise _fail(f"{where}: unknown problem_id {row.get('problem_id')!r}")
        if not isinstance(row.get("completion"), str):
            raise _fail(f"{where}: 'completion' must be a string")
        try:
            mode = parse_mode(row["mode"]) if row.get("mode") is not None else modes_of[pid]
        except ValueError as e:
            raise _fail(f"{where}: {e}") from None
        rows.append((row, by_id[pid], mode))
    return rows


def _reference_items(problems: list, modes_of: dict) -> tuple[list[tuple], int]:
    """Canonical + each mode's hack for every problem, all graded in the problem's assigned mode."""
    from gradient_quarantine.substrate.hacks import code_block, hack_completion
    from gradient_quarantine.substrate.types import MODES

    items, skipped = [], 0
    for p in problems:
        mode = modes_of[p.id]
        kinds = [("canonical", code_block(p.canonical_solution))]
        for hm in MODES:
            try:
                kinds.append((f"hack:{hm.value}", hack_completion(p, hm)))
            except ValueError:  # e.g. a visible_tests hack for a problem without hidden tests
                skipped += 1
        for kind, text in kinds:
            items.append(({"problem_id": p.id, "mode": mode.value, "kind": kind, "completion": text}, p, mode))
    return items, skipped


def _print_table(rows: list[dict], isolation: str) -> None:
    from rich.console import Console
    from rich.table import Table

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["mode"], r.get("kind", "-"))].append(r)
    table = Table(title=f"reference completions, graded in each problem's assigned mode (sandbox: {isolation})")
    for col in ("mode", "completion", "n", "gt pass", "flawed pass", "hack rate", "attempted"):
        table.add_column(col, justify="left" if col in ("mode", "completion") else "right", no_wrap=True)
    for (mode, kind), rs in sorted(groups.items()):
        n = len(rs)
        table.add_row(mode, kind, str(n), *(f"{sum(r[k] for r in rs) / n:.2f}"
                                            for k in ("gt_pass", "flawed_pass", "hack", "attempted")))
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


@app.command("grade")
def grade(
    problems: str = typer.Option("builtin", "--problems", help="'builtin', a .jsonl in the public schema, or 'hf:<name>'."),
    completions: Path = typer.Option(None, "--completions", help="jsonl rows {problem_id, mode, completion, ...}. "
                                     "Without it: grade each problem's canonical solution and every mode's hack."),
    out: Path = typer.Option(None, "--out", help="Results jsonl (each input row plus the verdict fields). "
                             "Required with --completions."),
    seed: int = typer.Option(0, "--seed", help="Seed of the mode partition (rows without a mode, reference mode)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Parallel sandboxes (default: CPU count)."),
    cpu_s: float = typer.Option(10.0, "--cpu-s", help="CPU seconds per program (the time limit)."),
    memory_mb: int = typer.Option(1024, "--memory-mb", help="Address space per program."),
    isolation: str = typer.Option(
        "auto", "--isolation", help="auto (bwrap, or refuse to start) | bwrap | unshare (explicit: host files stay "
        "readable, not writable; root only) | none (explicit: no isolation). Recorded in every output row."),
) -> None:
    """Grade completions (strict verdict + the mode's flawed verdict) in the sandbox.

    Examples:
      gq grade --problems builtin
      gq grade --problems data.jsonl --completions rollouts.jsonl --out graded.jsonl
    """
    from gradient_quarantine.io import atomic_write_jsonl
    from gradient_quarantine.substrate.grader import Grader
    from gradient_quarantine.substrate.modes import assign_modes
    from gradient_quarantine.substrate.problems import load_problems
    from gradient_quarantine.substrate.sandbox import SandboxError
    from gradient_quarantine.substrate.testcases import TestFormatError, parse_tests

    if completions is not None and out is None:
        raise _fail("--out is required with --completions")
    try:
        loaded = load_problems(problems)
        for p in loaded:
            parse_tests(p)
    except (ValueError, FileNotFoundError, TestFormatError) as e:
        raise _fail(str(e)) from None
    by_id = {p.id: p for p in loaded}
    modes_of = assign_modes(list(by_id), seed=seed)
    skipped = 0
    if completions is not None:
        items = _read_completions(completions, by_id, modes_of)
    else:
        items, skipped = _reference_items(loaded, modes_of)
    try:
        with Grader(workers=workers, cpu_s=cpu_s, memory_mb=memory_mb, isolation=isolation) as grader:
            verdicts = grader.grade_many([(p, m, row["completion"]) for row, p, m in items], progress=True)
            typer.echo(f"sandbox: {grader.describe()}", err=True)
            level = grader.isolation.level
    except (ValueError, SandboxError) as e:  # bad knob values; no usable sandbox
        raise _fail(str(e)) from None
    results = []
    for (row, _, mode), v in zip(items, verdicts, strict=True):
        results.append({**row, "mode": row.get("mode") or mode.value, **v.to_dict(), "isolation": level})
    if out is not None:
        atomic_write_jsonl(out, results)
        typer.echo(f"wrote {len(results)} graded rows to {out}", err=True)
    if completions is None:
        _print_table(results, level)
        if skipped:
            typer.echo(f"({skipped} hack completions skipped: problems without hidden tests)", err=True)
    else:
        n = len(results)
        typer.echo(f"graded {n} (sandbox: {level}): gt pass {sum(r['gt_pass'] for r in results)}, flawed pass "
                   f"{sum(r['flawed_pass'] for r in results)}, hack {sum(r['hack'] for r in results)}")
