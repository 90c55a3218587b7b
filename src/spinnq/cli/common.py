"""Options shared by several commands, so each flag means the same everywhere."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import typer

from spinnq.config import DEFAULT_DT
from spinnq.errors import InputError

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
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise InputError(f"not a .npy array ({type(e).__name__}: {e})", file=str(path)) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise InputError(f"expected a numeric array, got dtype {getattr(arr, 'dtype', '?')}",
                         file=str(path))
    return arr


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays atomically (a half-written result never replaces a complete one) as an
    .npz for `np.load`: integer/bool arrays (spikes) deflated, float arrays (voltages) stored,
    because deflating float32 noise costs seconds per 100 MB and saves little."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        for name, a in arrays.items():
            a = np.asanyarray(a)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if a.dtype.kind in "fc" else \
                zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    tmp.replace(path)
    return path
