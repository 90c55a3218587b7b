"""Options shared by several commands, so each flag means the same everywhere."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import typer

from spinnq.config import DEFAULT_DT
from spinnq.errors import InputError
from spinnq.files import save_npz  # noqa: F401  (re-exported for the commands)

GraphArg = typer.Argument(..., help="A NIR graph file (.nir, HDF5 written by nir.write).",
                          show_default=False)
DtOpt = typer.Option(None, "--dt", help=f"Timestep in seconds (default: the graph's "
                     f"spinnq.dt, else the convention's, else {DEFAULT_DT:g}).",
                     show_default=False)
ResetOpt = typer.Option(None, "--reset", help="Reset after a spike: zero (to v_reset) or "
                        "subtract (v - v_threshold) (default: the graph's spinnq.reset, else "
                        "the convention's: subtract for snntorch and rockpool, else zero).",
                        show_default=False)
ConventionOpt = typer.Option(None, "--convention", help="How the graph's producer reads its "
                             "neuron parameters: nir (the NIR ODEs), snntorch, norse, "
                             "spikingjelly or rockpool (default: the graph's spinnq.convention, "
                             "else nir). On the chip it sets the parameter translation (the "
                             "chip keeps its arithmetic) and the float reference compared with.",
                             show_default=False)
IntegratorOpt = typer.Option("forward", "--integrator", help="forward (Euler) or exponential.")
RecordOpt = typer.Option(None, "--record", help="Node to record (repeatable); default: the "
                         "nodes feeding the Output nodes.")


def load_input(path: Path) -> np.ndarray:
    """Load an input array from .npy, with a clear error for every way that can fail."""
    if not path.exists():
        raise InputError("no such file", file=str(path))
    if path.is_dir():
        raise InputError("is a folder, not a .npy file", file=str(path))
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as e:
        raise InputError(f"cannot read ({(e.strerror or type(e).__name__).lower()})",
                         file=str(path)) from None
    if head != b"\x93NUMPY":
        raise InputError("not a .npy array (write one with numpy.save)", file=str(path))
    try:
        arr = _load_mapped(path)
    except ValueError as e:
        # numpy's text would suggest allow_pickle=True, which can run code: never say that
        objects = "pickle" in str(e) or "Python objects" in str(e)
        why = "holds Python objects, not numbers" if objects else "truncated or corrupt"
        raise InputError(f".npy file {why}", file=str(path)) from None
    except Exception:  # truncated headers and data raise several types
        raise InputError(".npy file truncated or corrupt", file=str(path)) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise InputError(f"expected a numeric array, got dtype {getattr(arr, 'dtype', '?')}",
                         file=str(path))
    return arr


def _load_mapped(path: Path) -> np.ndarray:
    """The .npy array mapped, not read: a large input costs no copy (pages are read as the
    engine reaches them; copy-on-write, so the file is never changed); read as usual where
    the file cannot be mapped."""
    try:
        arr = np.load(path, mmap_mode="c", allow_pickle=False)
    except OSError:  # a file system without mmap
        return np.load(path, allow_pickle=False)
    return arr.view(np.ndarray) if isinstance(arr, np.memmap) else arr


def record_bytes(graph, batch: int, steps: int, record) -> int:
    """Bytes the recorded arrays will take: spikes (1 B) and v (4 B) per element and step,
    the same layout simulate and deploy write (an estimate up front, not a measurement)."""
    per = sum(math.prod(graph.shapes[n]) for n in record if n in graph.shapes)
    return int(batch) * int(steps) * per * 5


PROGRESS_MIN_STEPS = 2000  # shorter runs finish before a bar is worth drawing


def warn_memory(nbytes: int, limit: int = 1 << 30) -> None:
    """Say up front when the recorded arrays alone will take more than `limit` (1 GiB), and
    refuse when they cannot fit in this machine's memory at all."""
    if nbytes <= limit:
        return
    total = _total_memory()
    if total and nbytes > total:
        raise InputError(f"recording would take about {nbytes / 2**30:.1f} GiB, more than this "
                         f"machine's {total / 2**30:.1f} GiB; record fewer nodes (--record), "
                         "steps or samples")
    from spinnq.cli.app import err_console

    err_console.print(f"[yellow]note:[/] the recorded arrays will take about "
                      f"{nbytes / 2**30:.1f} GiB in memory (estimate; peak about twice that "
                      "while the .npz is compressed)", soft_wrap=True, highlight=False)


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
