"""`gq`: the command-line entry point. Each subcommand lives in its own small module; heavy imports
(torch, transformers) are deferred into the command bodies so `gq --help` is instant."""

import typer

app = typer.Typer(
    name="gq",
    help="gradient_quarantine: route reward-hacking gradients into a deletable quarantine knob.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Each module below registers its command(s) on `app` when imported (order = order in `gq --help`).
from gradient_quarantine.cli import (  # noqa: E402,F401,I001
    grade,
    pairs,
    direction,
    warmstart,
    train,
    queue,
    report,
    study,
    detector,
)
