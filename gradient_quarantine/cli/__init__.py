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

# Each module below registers its command(s) on `app` when imported.
from gradient_quarantine.cli import grade  # noqa: E402,F401
from gradient_quarantine.cli import direction  # noqa: E402,F401
from gradient_quarantine.cli import train  # noqa: E402,F401
from gradient_quarantine.cli import pairs  # noqa: E402,F401
from gradient_quarantine.cli import queue  # noqa: E402,F401
from gradient_quarantine.cli import report  # noqa: E402,F401
from gradient_quarantine.cli import study  # noqa: E402,F401
