"""The labelled-data contract every quant command shares, checked once.

    D.npz:  x  (N, T, *input_shape)  0/1 spikes (any numeric dtype)
            y  (N,)                  integer class labels in [0, number of output neurons)

`load_data` accepts a path or arrays and fails with one line naming the file and the key, so
a bad data file never reaches the emulator (where it would surface as a shape error far from
its cause).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from spinnq.errors import InputError
from spinnq.files import map_npz
from spinnq.graph.model import Graph
from spinnq.s2.inputs import bad_value

Data = str | Path | tuple | Mapping | np.ndarray


def output_node(graph: Graph) -> str:
    """The neuron node whose activity is the network's answer (it feeds the first Output)."""
    preds = graph.predecessors(graph.outputs[0])
    return preds[0]


def n_classes(graph: Graph) -> int:
    return int(math.prod(graph.shapes[output_node(graph)]))


def has_labels(data: Data) -> bool:
    """Whether `data` carries labels (`y`): calibration without them uses agreement."""
    if isinstance(data, str | Path):
        try:
            with np.load(data, allow_pickle=False) as f:
                return "y" in f.files
        except Exception:
            return True  # let load_data report what is wrong with the file
    if isinstance(data, Mapping):
        return data.get("y") is not None
    if isinstance(data, tuple):
        return len(data) != 2 or data[1] is not None
    return False


def _arrays(data: Data, labels: bool) -> tuple[object, object, str | None]:
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.exists():
            raise InputError("no such file", file=str(path))
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = set(f.files)
                x = (map_npz(path, "x") if "x" in keys else None)  # stored: mapped, no copy
                x = f["x"] if x is None and "x" in keys else x
                y = f["y"] if "y" in keys else None
        except Exception as e:
            raise InputError(f"not an .npz archive with arrays 'x' and 'y' "
                             f"({type(e).__name__}: {e})", file=str(path)) from None
        if x is None:
            raise InputError(f"key 'x' is missing (the spikes, (N, T, *input_shape)); keys: "
                             f"{sorted(keys) or 'none'}", file=str(path))
        if y is None and labels:
            raise InputError(f"key 'y' is missing (the labels, (N,) integers); keys: "
                             f"{sorted(keys)}", file=str(path))
        return x, y, str(path)
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
    raw_x, raw_y, src = _arrays(data, labels)
    try:
        x = np.asarray(raw_x)
    except Exception as e:
        raise InputError(f"key 'x' is not an array ({type(e).__name__})", file=src) from None
    if x.dtype.kind not in "biuf":
        raise InputError(f"key 'x' must be numbers (0/1 spikes), got dtype {x.dtype}", file=src)
    if x.ndim < 3:
        raise InputError(f"key 'x' has shape {x.shape}; expected (N, T, *input_shape)",
                         file=src)
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"key 'x' has no samples or no timesteps: shape {x.shape}", file=src)
    if graph is not None and tuple(x.shape[2:]) != tuple(graph.input_shape):
        raise InputError(f"key 'x' has samples of shape {tuple(x.shape[2:])} per step; the "
                         f"graph{' ' + graph.source if graph.source else ''} takes "
                         f"{tuple(graph.input_shape)}", file=src)
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
