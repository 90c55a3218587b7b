"""Options shared by several commands, so each flag means the same everywhere."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import typer

from spinnq.config import DEFAULT_DT
from spinnq.errors import InputError, one_line
from spinnq.files import (
    check_input,
    npy_header,
    save_npz,  # noqa: F401  (re-exported for the commands)
)
from spinnq.limits import check_memory

GraphArg = typer.Argument(..., help="A NIR graph file (.nir, HDF5 written by nir.write).",
                          show_default=False)
DtOpt = typer.Option(None, "--dt", help=f"Timestep in seconds (default: the graph's "
                     f"spinnq.dt, else the convention's, else {DEFAULT_DT:g}).",
                     show_default=False)
ResetOpt = typer.Option(None, "--reset", help="Reset after a spike: zero (to v_reset) or "
                        "subtract (v - v_threshold) (default: the graph's spinnq.reset, else "
                        "the convention's: subtract for snntorch, rockpool and sinabs, else "
                        "zero).",
                        show_default=False)
ConventionOpt = typer.Option(None, "--convention", help="How the graph's producer reads its "
                             "neuron parameters: nir (the NIR ODEs), snntorch, norse, "
                             "spikingjelly, rockpool or sinabs (default: the graph's "
                             "spinnq.convention, else nir). On the chip it sets the parameter "
                             "translation (the chip keeps its arithmetic) and the float "
                             "reference compared with.",
                             show_default=False)
IntegratorOpt = typer.Option(None, "--integrator", help="forward (Euler) or exponential "
                             "(default: the graph's metadata, else forward).", show_default=False)
RecordOpt = typer.Option(None, "--record", help="Node to record (repeatable); default: the "
                         "nodes feeding the Output nodes.")


def shown(text: object) -> str:
    """A name from a user's file (node, population, graph path) as terminal output: control
    characters escaped (an ESC or OSC sequence in a node name must not reach the terminal)
    and rich markup escaped (a name like '[red]x' is printed as it is, not styled)."""
    from rich.markup import escape

    return escape(one_line(str(text)))


def load_input(path: Path, flag: str = "--input") -> np.ndarray:
    """Load an input array from .npy, with a clear error for every way that can fail: a
    regular file (a FIFO would block), a .npy header, numbers, a size within the memory
    budget (read from the header before the data)."""
    path = check_input(path, flag)
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            fh.seek(0)
            shape, _, dtype = npy_header(fh) if head == b"\x93NUMPY" else ((), False, None)
            data_at = fh.tell()
    except OSError as e:
        raise InputError(f"cannot read ({(e.strerror or type(e).__name__).lower()})",
                         file=str(path)) from None
    except Exception:  # a header numpy cannot parse
        raise InputError(".npy file truncated or corrupt", file=str(path)) from None
    if head != b"\x93NUMPY":
        raise InputError("not a .npy array (write one with numpy.save)", file=str(path))
    if dtype.hasobject:
        raise InputError(".npy file holds Python objects, not numbers", file=str(path))
    n = math.prod(shape)
    if path.stat().st_size < data_at + n * dtype.itemsize:  # before allocating for it
        raise InputError(f".npy file truncated: its header says {shape} {dtype}",
                         file=str(path))
    check_memory(n * (dtype.itemsize + 8 + 4), f"{flag} of shape {shape} ({dtype})",
                 file=str(path))
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


# Measured per step (2-neuron graph, B = 1 and 100, one thread; tests/test_reliability_io.py
# checks both estimates against peak RSS). Float simulator: each recorded tensor of a step
# costs ~600 B of torch object overhead plus 8 B per element (the step's tensor and the
# stacked copy). Emulator: ~150 B per step plus ~32 B per recorded element and ~16 B per
# input element. Rounded up.
TENSOR_OVERHEAD = 640
SIM_BYTES_PER_ELEMENT = 8
EMU_STEP_OVERHEAD = 128
EMU_BYTES_PER_ELEMENT = 32
EMU_BYTES_PER_INPUT = 16
NOTE_ABOVE = 1 << 30  # say up front when a run will take more than this


def record_bytes(graph, batch: int, steps: int, record, kind: str = "emulator") -> int:
    """Bytes a run's recordings take at their peak (an estimate up front, calibrated on
    measurements): `kind` "simulate" (the float simulator: a tensor per node and step, two
    for neurons with a membrane) or "emulator" (deploy, energy)."""
    from spinnq.graph.nodes import STATEFUL

    batch, steps = int(batch), int(steps)
    elems = {n: math.prod(graph.shapes[n]) for n in record if n in graph.shapes}
    if kind == "simulate":
        # graphs without recurrent edges run layer by layer (`Simulator.steps`): a tensor
        # per chunk of steps, so no per-step tensor overhead
        overhead = TENSOR_OVERHEAD if graph.recurrent else 0
        per_step = 0
        for n, e in elems.items():
            tensors = 2 if isinstance(graph.nodes[n], STATEFUL) else 1
            per_step += tensors * (overhead + SIM_BYTES_PER_ELEMENT * batch * e)
        return steps * per_step
    n_in = math.prod(graph.input_shape)
    return steps * (EMU_STEP_OVERHEAD + batch * (EMU_BYTES_PER_ELEMENT * sum(elems.values())
                                                 + EMU_BYTES_PER_INPUT * n_in))


def state_bytes(graph, dt: float | None, batch: int) -> tuple[int, str | None, int]:
    """(bytes, largest node, its bytes) of a run's state: every node's output and state
    (3 copies of B x its elements, float32), and each Delay's history of
    rint(delay / dt) + 1 steps (twice: a step builds the next history from the last)."""
    import nir

    total, worst, worst_b = 0, None, 0
    for n, node in graph.nodes.items():
        e = math.prod(graph.shapes[n]) * int(batch) * 4
        b = 3 * e
        if isinstance(node, nir.Delay) and dt:
            depth = float(np.max(np.asarray(node.delay, dtype=np.float64), initial=0.0)) / dt
            b += 2 * e * (min(depth, 2.0**62) + 1)
        total += b
        if b > worst_b:
            worst, worst_b = n, b
    return int(total), worst, int(worst_b)


def check_run_memory(graph, *, batch: int, steps: int, record=(), dt: float | None = None,
                     kind: str = "emulator") -> int:
    """Refuse a run whose state and recordings exceed the memory budget (naming the node
    that takes most, and the figure), before anything is allocated; note a run above 1 GiB.
    Returns the estimate in bytes."""
    from spinnq.errors import GraphError
    from spinnq.limits import gib, memory_budget

    state, node, node_b = state_bytes(graph, dt, batch)
    rec = record_bytes(graph, batch, steps, record, kind)
    budget = memory_budget()
    if node_b > budget // 2:
        raise GraphError(f"its state takes about {gib(node_b)} for {batch} sample(s) "
                         f"(a Delay's history is rint(delay / dt) + 1 steps), over half the "
                         f"memory budget of {gib(budget)}", file=graph.source, node=node)
    check_memory(state + rec, f"this run ({steps:,} steps x {batch} sample(s): "
                 f"recordings {gib(rec)}, state {gib(state)}, largest '{node}')",
                 file=graph.source, hint="record fewer nodes (--record), steps or samples")
    if state + rec > NOTE_ABOVE:
        from spinnq.cli.app import err_console

        err_console.print(f"[yellow]note:[/] this run will take about {gib(state + rec)} "
                          "of memory (estimate)", soft_wrap=True, highlight=False)
    return state + rec


PROGRESS_MIN_STEPS = 2000  # shorter runs finish before a bar is worth drawing


def check_data_memory(graph, data: Path, *, batch: int, dt: float | None,
                      flag: str = "--data") -> None:
    """`check_run_memory` for a command that runs a labelled .npz in batches (evaluate,
    quantize): samples and steps read from the file's header, nothing loaded."""
    from spinnq.quant.data import npz_headers

    x = npz_headers(data, flag).get("x")
    if x is None or len(x[0]) < 2:
        return  # load_data names what is missing or wrong
    n, steps = x[0][0], x[0][1]
    check_run_memory(graph, batch=max(1, min(int(batch), n)), steps=steps,
                     record=graph.outputs, dt=dt)
