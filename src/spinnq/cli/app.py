"""The `spinnq` Typer app and its consoles: what every command module needs, and nothing
that imports a command module (so the command modules never import `spinnq.cli` itself)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    name="spinnq",
    help="Spiking networks from PyTorch through NIR to SpiNNaker2, with the cost measured.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(emoji=False)  # ":name:" in a node name stays text
err_console = Console(stderr=True, emoji=False)



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
