"""The `spinnq` command: the command table (`COMMANDS`) on the Typer app of `cli.app`, and
`main`, which turns every `SpinnqError` into one readable line and exit code 2 (no traceback).
"""

from __future__ import annotations

import sys

import typer

from spinnq.cli import energy, graph, quant, run, s2, sweep
from spinnq.cli.app import app, console, err_console, error_line, interrupted
from spinnq.errors import SpinnqError

__all__ = ["COMMANDS", "app", "console", "err_console", "error_line", "interrupted", "main"]

# Every command, in the order of `spinnq --help`: (name, function). A command module only
# defines functions (typer options as defaults); registering them is this table's job.
COMMANDS = (
    ("inspect", graph.inspect), ("simulate", graph.simulate_cmd),
    ("deploy", s2.deploy), ("export", s2.export_cmd), ("energy", energy.energy_cmd),
    ("energy-fit", energy.energy_fit_cmd),
    ("evaluate", quant.evaluate_cmd), ("quantize", quant.quantize_cmd), ("run", run.run_cmd),
    ("sweep", sweep.sweep_cmd),
)
for _name, _fn in COMMANDS:
    app.command(_name)(_fn)


def main() -> None:
    """`spinnq`: every user error is one line on stderr and exit 2 - spinnq's own errors and
    click's usage errors (bad flag types, missing options) alike; no traceback."""
    try:
        rv = app(standalone_mode=False)
    except SpinnqError as e:
        error_line(str(e))
        sys.exit(2)
    except typer.Abort:
        error_line("aborted")
        sys.exit(1)
    except typer.TyperException as e:  # click's usage errors (typer vendors click)
        if type(e).__name__ == "NoArgsIsHelpError":  # `spinnq` alone: the help text
            e.show()
            sys.exit(e.exit_code)
        ctx = getattr(e, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        error_line(f"{e.format_message()}{where}")
        sys.exit(getattr(e, "exit_code", 2))
    if isinstance(rv, int) and rv:  # typer.Exit(code), Ctrl-C (130)
        sys.exit(rv)
