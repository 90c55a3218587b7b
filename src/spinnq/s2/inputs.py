"""The chip's input: 0/1 spikes of the `spike_list` source population, checked once for every
engine and backend (an input error names what is wrong, never a torch/numba traceback).

Spike inputs are large (a DVS sample: 600 steps x 2,048 pixels) and mostly zeros, so they are
checked where they are stored: `spike_batch` hands the engines a (B, T, *shape) array - the
caller's own memory when it is uint8, bool or float32 (no copy; the event kernel reads both
and checks each value it turns into a spike), else one pass that converts to uint8 and checks
together. Nothing here makes a float copy of the whole input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.graph.simulate import as_batch

Tensor = torch.Tensor
NUMBA_DTYPES = tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8,
                                             np.uint16, np.uint32, np.uint64, np.float32,
                                             np.float64))


def _numpy(x, what: str = "input") -> np.ndarray:
    """x as a numpy array without copying (a CPU tensor's own memory), or InputError."""
    if isinstance(x, Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if x.dtype == torch.bfloat16:  # numpy has no bfloat16
            x = x.float()
        return x.numpy()
    try:  # strings, objects, ragged lists: an InputError, not numpy's own (fuzzing)
        a = np.asarray(x)
    except Exception as e:
        raise InputError(f"{what} is not an array ({type(e).__name__}: {e})") from None
    if a.dtype.kind not in "biufc":
        raise InputError(f"{what} must be numbers, got an array of dtype {a.dtype}")
    return a


def as_spikes(x, shape: tuple[int, ...]) -> Tensor:
    """(B, T, *shape) float32 0/1 spikes from (T, *shape) or (B, T, *shape), or InputError
    (for backends that take float spikes; the emulator takes `spike_batch`; values other
    than 0/1 are found by `check_spikes`)."""
    return as_batch(x, shape, finite=False).to(torch.float32)


@cache
def _kernels():
    """numba's one-pass check (and conversion), or None without numba (numpy blocks then)."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a core dependency of the event engine
        return None

    @njit(cache=True, nogil=True)
    def to_spikes(x, out):  # pragma: no cover - compiled
        """out[i] = x[i] != 0; the index of the first value that is not 0 or 1, else -1."""
        bad = False
        for i in range(x.size):
            v = x[i]
            nz = v != 0
            out[i] = nz
            bad |= nz & (v != 1)
        if bad:
            for i in range(x.size):
                if x[i] != 0 and x[i] != 1:
                    return i
        return -1

    @njit(cache=True, nogil=True)
    def first_bad(x):  # pragma: no cover - compiled
        """The index of the first value that is not 0 or 1, else -1 (one branch-free pass)."""
        bad = False
        for i in range(x.size):
            v = x[i]
            bad |= (v != 0) & (v != 1)
        if bad:
            for i in range(x.size):
                if x[i] != 0 and x[i] != 1:
                    return i
        return -1

    return to_spikes, first_bad


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view (a copy only for non-contiguous input), writable dtype kept."""
    return np.ascontiguousarray(a).reshape(-1)


def bad_value(a: np.ndarray):
    """The first value of `a` that is not 0 or 1 (NaN and inf included), else None; one pass
    over the array as stored (bool arrays need none, unsigned bytes one `max`)."""
    if a.dtype == np.bool_ or a.size == 0:
        return None
    if a.dtype == np.uint8:
        if int(a.max()) <= 1:
            return None
    else:
        k = _kernels()
        if k is not None and a.dtype in NUMBA_DTYPES:
            flat = _flat(a)
            i = k[1](flat)
            return None if i < 0 else flat[i]
    for blk in a.reshape(1, -1) if a.ndim < 2 else a:  # numpy, a row at a time
        bad = (blk != 0) & (blk != 1)
        if bad.any():
            return blk[bad].ravel()[0]
    return None


def _value_error(bad) -> InputError:
    e = InputError(f"the chip's input population ('spike_list') emits spikes: input "
                   f"values must be 0 or 1, found {float(bad):g}")
    e.bad_value = float(bad)  # for callers that word NaN and inf as the simulator does
    return e


ENGINE_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32))  # what the event kernel reads


def spike_batch(x, shape: tuple[int, ...], check: bool = False) -> np.ndarray:
    """(B, T, *shape) 0/1 spikes, uint8 or float32, from (T, *shape) or (B, T, *shape), or
    InputError.

    uint8, bool and float32 input is used as it is (a view, no copy): the engines check its
    values as they read it (`check=True`: here, one read-only pass). Any other dtype is
    converted to uint8 in one pass that checks every value on the way."""
    a = _numpy(as_batch(x, shape, finite=False))  # numbers of the input's shape: one check
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    if a.dtype in ENGINE_DTYPES:
        if check and (bad := bad_value(a)) is not None:
            raise _value_error(bad)
        return a
    k = _kernels()
    out = np.empty(a.shape, dtype=np.uint8)
    if k is not None and a.dtype in NUMBA_DTYPES:
        flat = _flat(a)
        i = k[0](flat, out.reshape(-1))
        if i >= 0:
            raise _value_error(flat[i])
        return out
    if (bad := bad_value(a)) is not None:  # float16 and other rare dtypes
        raise _value_error(bad)
    np.not_equal(a, 0, out=out.view(np.bool_))
    return out


def check_spikes(x) -> None:
    """InputError unless every value is 0 or 1 (NaN and inf included)."""
    bad = bad_value(_numpy(x))
    if bad is not None:
        raise _value_error(bad)


@dataclass(frozen=True)
class SpikeInput:
    """One batch of input checked and decoded once, for several programs with the same input
    population to run on (`spinnq.s2.emulate.prepare_input`): calibration emulates every
    candidate on the same samples. `x` is `spike_batch`'s array (the torch engine reads it);
    `ptr`/`idx` the event engine's input spike lists (engine order; None without numba)."""

    x: np.ndarray  # (B, T, *shape) 0/1, uint8 or float32, checked
    shape: tuple[int, ...]  # the input population's shape
    ptr: np.ndarray | None = None  # (B * T + 1,) int64: step t of sample b is idx[ptr[b*T+t]:]
    idx: np.ndarray | None = None  # int32, the spiking inputs of every step in turn
