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

# Command modules register themselves on `app` when imported (order = order in --help).
from spinnq.cli import graph, s2  # noqa: E402,F401,I001
from spinnq.cli import energy  # noqa: E402,F401  (after graph and s2: order in --help)
from spinnq.cli import run  # noqa: E402,F401  (spinnq run TASK)


def error_line(message: str) -> None:
    """One line on stderr, never wrapped at the terminal's width (a user error is one line
    to read, grep and paste into an issue)."""
    err_console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}",
                      highlight=False, soft_wrap=True)


def main() -> None:
    try:
        app()
    except SpinnqError as e:
        error_line(str(e))
        sys.exit(2)
    except KeyboardInterrupt as e:  # Interrupted carries how to continue
        _interrupted(e)
        sys.exit(130)
    except SystemExit as e:  # typer turns Ctrl-C into a silent exit 130: say what to do
        ki = _cause(e, KeyboardInterrupt)
        if ki is not None:
            _interrupted(ki)
        raise


def _cause(e: BaseException, kind: type) -> BaseException | None:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _interrupted(e: BaseException) -> None:
    err_console.print(escape(str(e) or "interrupted"), style="yellow", highlight=False,
                      soft_wrap=True)
