"""Options shared by several commands, so each flag means the same everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from spinnq.config import DEFAULT_DT
from spinnq.errors import InputError
from spinnq.files import save_npz  # noqa: F401  (re-exported for the commands)

GraphArg = typer.Argument(..., help="A NIR graph file (.nir, HDF5 written by nir.write).",
                          show_default=False)
DtOpt = typer.Option(DEFAULT_DT, "--dt", help="Timestep in seconds.")
ResetOpt = typer.Option("zero", "--reset", help="Reset after a spike: zero (to v_reset) or "
                        "subtract (v - v_threshold).")
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
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        # numpy's text would suggest allow_pickle=True, which can run code: never say that
        why = "holds Python objects, not numbers" if "pickle" in str(e) else "truncated or corrupt"
        raise InputError(f".npy file {why}", file=str(path)) from None
    except Exception:  # truncated headers and data raise several types
        raise InputError(".npy file truncated or corrupt", file=str(path)) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise InputError(f"expected a numeric array, got dtype {getattr(arr, 'dtype', '?')}",
                         file=str(path))
    return arr
