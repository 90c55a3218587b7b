"""spinnq's own errors: every failure a user can cause ends in one of these.

The CLI prints them as one readable line (no traceback); anything else escaping is a bug.
Each names *where* (file, node, population) and *what limit* was hit.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (CSI is \x9b)


class SpinnqError(Exception):
    """Base class: a problem with the user's input, configuration or environment."""

    def __init__(self, message: str, *, file: str | None = None, node: str | None = None):
        self.file = file
        self.node = node
        where = []
        if file:
            where.append(f"file {file}")
        if node:
            where.append(f"node '{node}'")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(one_line(prefix + message))


def one_line(text: str) -> str:
    """Control characters (newlines from a file name or a tampered value, terminal escape
    sequences from a node name) escaped, so an error message is always exactly one line
    and never drives the terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class GraphError(SpinnqError):
    """A NIR graph that cannot be read, or that spinnq cannot run (unsupported, malformed)."""


class InputError(SpinnqError):
    """Input data (arrays, options) that do not fit the graph or the command."""


class CompileError(SpinnqError):
    """A graph that cannot be mapped onto SpiNNaker2 (unsupported pattern, limits exceeded)."""


class CheckpointError(SpinnqError):
    """A checkpoint or run folder that cannot be loaded."""


class BackendError(SpinnqError):
    """A hardware or device backend that is not available here."""


class OutputError(SpinnqError):
    """An output path that cannot be written (a folder where a file is expected, no
    permission, /proc, an empty name); raised before any work where it can be checked."""


class SettingsError(InputError):
    """A setting (CLI flag, --set key=value, config.json entry) of the wrong type or range."""


class RunFolderError(SpinnqError):
    """A run folder that is in use by another run, or holds a run that --out would mix."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a resumable run: the message says how to continue (the CLI prints it
    and exits 130)."""
