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
from spinnq.cli import quant  # noqa: E402,F401  (evaluate, quantize)
from spinnq.cli import run  # noqa: E402,F401  (spinnq run TASK)
from spinnq.cli import sweep  # noqa: E402,F401  (spinnq sweep TARGET)


def main() -> None:
    try:
        app()
    except SpinnqError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
