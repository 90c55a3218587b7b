"""The labelled-data contract every quant command shares, checked once.

    D.npz:  x  (N, T, *input_shape)  0/1 spikes (any numeric dtype)
            y  (N,)                  integer class labels in [0, number of output neurons)

`load_data` accepts a path or arrays and fails with one line naming the file and the key, so
a bad data file never reaches the emulator (where it would surface as a shape error far from
its cause).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from spinnq.errors import InputError
from spinnq.files import check_input, map_npz, npy_header
from spinnq.graph.model import Graph
from spinnq.limits import check_memory
from spinnq.s2.inputs import bad_value

Data = str | Path | tuple | Mapping | np.ndarray


def output_node(graph: Graph) -> str:
    """The neuron node whose activity is the network's answer (it feeds the first Output)."""
    preds = graph.predecessors(graph.outputs[0])
    return preds[0]


def n_classes(graph: Graph) -> int:
    return int(math.prod(graph.shapes[output_node(graph)]))


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
LOAD_COPIES = 2  # the array as stored, and the float32/torch copy every user of it makes


def npz_headers(path: str | Path, flag: str = "--data") -> dict[str, tuple[tuple, np.dtype]]:
    """{key: (shape, dtype)} of an .npz from each member's .npy header, read without
    loading any array: checks that it is a regular file, a zip of .npy arrays, numbers not
    Python objects, and that the arrays fit the memory budget (a 2 KB bzip2 member can
    expand to gigabytes). InputError naming the file and the key otherwise."""
    p = check_input(path, flag)
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic not in ZIP_MAGIC:
        raise InputError(f"{flag} is not an .npz archive (a zip of .npy arrays, as "
                         "numpy.savez writes)", file=str(p))
    out: dict[str, tuple[tuple, np.dtype]] = {}
    total = 0
    try:
        with zipfile.ZipFile(p) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with zf.open(info) as fh:
                    shape, _, dtype = npy_header(fh)
                    data_at = fh.tell()
                if info.file_size < data_at + math.prod(shape) * dtype.itemsize:
                    raise InputError(f"key '{key}' is truncated: its header says {shape} "
                                     f"{dtype}", file=str(p))
                if dtype.hasobject:
                    raise InputError(f"key '{key}' holds Python objects, not numbers",
                                     file=str(p))
                out[key] = (shape, dtype)
                total += math.prod(shape) * dtype.itemsize
    except InputError:
        raise
    except Exception as e:  # bad zips, headers and compressors raise many types
        raise InputError(f"{flag}: damaged .npz archive ({_why(e)})", file=str(p)) from None
    check_memory(total * LOAD_COPIES, f"loading {len(out)} array(s) of {total:,} bytes",
                 file=str(p))
    return out


def _why(e: Exception) -> str:
    """An exception as a short reason, never numpy's advice to allow pickles (which can run
    code from the file)."""
    text = str(e)
    return "holds Python objects, not numbers" if "pickle" in text.lower() else \
        f"{type(e).__name__}: {text}"[:200]


def read_npz(path: str | Path, keys: Iterable[str], flag: str = "--data",
             heads: dict | None = None) -> dict[str, np.ndarray]:
    """The arrays `keys` of an .npz that holds them (absent keys are left out), each checked
    from its header first (`npz_headers`, or its result `heads`); one-line InputErrors
    naming the file."""
    heads = npz_headers(path, flag) if heads is None else heads
    want = [k for k in keys if k in heads]
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in want}
    except Exception as e:
        raise InputError(f"{flag}: damaged .npz archive ({_why(e)})", file=str(path)) from None


def has_labels(data: Data) -> bool:
    """Whether `data` carries labels (`y`): calibration without them uses agreement."""
    if isinstance(data, str | Path):
        try:
            return "y" in npz_headers(data)
        except Exception:
            return True  # let load_data report what is wrong with the file
    if isinstance(data, Mapping):
        return data.get("y") is not None
    if isinstance(data, tuple):
        return len(data) != 2 or data[1] is not None
    return False


def _check_x_shape(shape: tuple, graph: Graph | None, src: str | None) -> None:
    """x's shape against the contract and the graph (from the header, before loading)."""
    if len(shape) < 3:
        raise InputError(f"key 'x' has shape {shape}; expected (N, T, *input_shape)",
                         file=src)
    if shape[0] < 1 or shape[1] < 1:
        raise InputError(f"key 'x' has no samples or no timesteps: shape {shape}", file=src)
    if graph is not None and tuple(shape[2:]) != tuple(graph.input_shape):
        raise InputError(f"key 'x' has samples of shape {tuple(shape[2:])} per step; the "
                         f"graph{' ' + graph.source if graph.source else ''} takes "
                         f"{tuple(graph.input_shape)}", file=src)


def _arrays(data: Data, labels: bool, graph: Graph | None = None
            ) -> tuple[object, object, str | None]:
    if isinstance(data, str | Path):
        path = Path(data)
        heads = npz_headers(path)
        if "x" not in heads:
            raise InputError(f"key 'x' is missing (the spikes, (N, T, *input_shape)); keys: "
                             f"{sorted(heads) or 'none'}", file=str(path))
        if "y" not in heads and labels:
            raise InputError(f"key 'y' is missing (the labels, (N,) integers); keys: "
                             f"{sorted(heads)}", file=str(path))
        if heads["x"][1].kind in "biuf":  # other dtypes: load_data names them
            _check_x_shape(heads["x"][0], graph, str(path))
        x = map_npz(path, "x")  # stored uncompressed: mapped, no copy
        arrays = read_npz(path, ("x", "y") if x is None else ("y",), heads=heads)
        return (arrays["x"] if x is None else x), arrays.get("y"), str(path)
    if isinstance(data, Mapping):
        if "x" not in data:
            raise InputError("key 'x' is missing from the data (the spikes)")
        if labels and data.get("y") is None:
            raise InputError("key 'y' is missing from the data (the labels)")
        return data["x"], data.get("y"), None
    if isinstance(data, tuple):
        if len(data) != 2:
            raise InputError(f"data must be (x, y), got a tuple of {len(data)}")
        if labels and data[1] is None:
            raise InputError("key 'y' is missing from the data (the labels)")
        return data[0], data[1], None
    if labels:
        raise InputError("data must be (x, y) with labels, got only an array")
    return data, None, None


def load_data(data: Data, graph: Graph | None = None, labels: bool = True
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """(x (N, T, *input_shape) 0/1 -- float32, or the integer/bool dtype it came in, y int64
    (N,) or None) from a path, an (x, y) tuple or
    a mapping, checked against the contract (and `graph`'s input shape and classes). With
    `labels=False`, y may be absent (None is returned)."""
    raw_x, raw_y, src = _arrays(data, labels, graph)
    try:
        x = np.asarray(raw_x)
    except Exception as e:
        raise InputError(f"key 'x' is not an array ({type(e).__name__})", file=src) from None
    if x.dtype.kind not in "biuf":
        raise InputError(f"key 'x' must be numbers (0/1 spikes), got dtype {x.dtype}", file=src)
    _check_x_shape(x.shape, graph, src)
    bad = bad_value(x)  # one pass over the array as stored (large event data: no copy)
    if bad is not None:
        raise InputError(f"key 'x' must hold 0/1 spikes, found {bad!r}", file=src)
    if x.dtype.kind == "f":
        x = x.astype(np.float32, copy=False)
    if raw_y is None:
        return x, None
    y = np.asarray(raw_y)
    if y.ndim != 1 or len(y) != len(x):
        raise InputError(f"key 'y' has shape {y.shape}; expected ({len(x)},): one label per "
                         f"sample of 'x'", file=src)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise InputError(f"key 'y' must be integer labels, got dtype {y.dtype}", file=src)
    y = y.astype(np.int64)
    hi = n_classes(graph) if graph is not None else None
    if y.min() < 0 or (hi is not None and y.max() >= hi):
        bad_y = int(y.min() if y.min() < 0 else y.max())
        raise InputError(f"key 'y' has label {bad_y} out of range: the graph's output "
                         f"'{output_node(graph) if graph is not None else '?'}' has "
                         f"{hi if hi is not None else '?'} neurons (labels 0..{(hi or 1) - 1})",
                         file=src)
    return x, y
