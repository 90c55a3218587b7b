"""The `spinnq` command. Each group of commands lives in its own module and registers on `app`;
`main` turns every `SpinnqError` into one readable line and exit code 2 (no traceback)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from spinnq.errors import SpinnqError

app = typer.Typer(
    name="spinnq",
    help="Spiking networks from PyTorch through NIR to SpiNNaker2, with the cost measured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)



def error_line(message: str) -> None:
    """One line on stderr, never wrapped at the terminal's width (a user error is one line
    to read, grep and paste into an issue)."""
    err_console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}",
                      highlight=False, soft_wrap=True)


def interrupted(e: BaseException) -> None:
    """Print how to continue after Ctrl-C (an `Interrupted` carries it), for commands to call
    before `raise typer.Exit(130)` (typer swallows KeyboardInterrupt itself)."""
    err_console.print(escape(str(e) or "interrupted"), style="yellow", highlight=False,
                      soft_wrap=True)


# Command modules register themselves on `app` when imported (order = order in --help).
from spinnq.cli import graph, s2  # noqa: E402,F401,I001
from spinnq.cli import energy  # noqa: E402,F401  (after graph and s2: order in --help)
from spinnq.cli import quant  # noqa: E402,F401  (evaluate, quantize)
from spinnq.cli import run  # noqa: E402,F401  (spinnq run TASK)
from spinnq.cli import sweep  # noqa: E402,F401  (spinnq sweep TARGET)


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
