"""The chip's input: 0/1 spikes of the `spike_list` source population, checked once for every
engine and backend (an input error names what is wrong, never a torch/numba traceback)."""

from __future__ import annotations

import numpy as np
import torch

from spinnq.errors import InputError

Tensor = torch.Tensor


def as_spikes(x, shape: tuple[int, ...]) -> Tensor:
    """(B, T, *shape) float32 0/1 spikes from (T, *shape) or (B, T, *shape), or InputError."""
    if isinstance(x, Tensor):
        arr = x
    else:  # strings, objects, ragged lists: an InputError, not torch's TypeError (fuzzing)
        try:
            a = np.asarray(x)
        except Exception as e:
            raise InputError(f"input is not an array ({type(e).__name__}: {e})") from None
        if a.dtype.kind not in "biufc":
            raise InputError(f"input must be numbers, got an array of dtype {a.dtype}")
        arr = torch.as_tensor(a)
    given = tuple(arr.shape)  # the user's shape, for the message
    n = len(shape)
    if arr.ndim == n + 1:
        arr = arr.unsqueeze(0)
    dims = ", ".join(map(str, shape))
    if arr.ndim != n + 2 or tuple(arr.shape[2:]) != tuple(shape):
        raise InputError(f"input has shape {given}; expected (T, {dims}) or "
                         f"(B, T, {dims})")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"input has no timesteps or samples: shape {given}")
    if arr.dtype.is_complex:
        raise InputError("input contains complex values")
    return arr.to(torch.float32)


def check_spikes(x: Tensor) -> None:
    """InputError unless every value is 0 or 1 (NaN and inf included); cheap on a block."""
    if bool((x * (x - 1)).any()):
        bad = x[(x != 0) & (x != 1)].flatten()[0].item()
        raise InputError(f"the chip's input population ('spike_list') emits spikes: input "
                         f"values must be 0 or 1, found {bad:g}")
