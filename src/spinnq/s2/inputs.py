"""The chip's input: 0/1 spikes of the `spike_list` source population, checked once for every
engine and backend (an input error names what is wrong, never a torch/numba traceback)."""

from __future__ import annotations

import torch

from spinnq.errors import InputError
from spinnq.graph.simulate import as_batch

Tensor = torch.Tensor


def as_spikes(x, shape: tuple[int, ...]) -> Tensor:
    """(B, T, *shape) float32 0/1 spikes from (T, *shape) or (B, T, *shape), or InputError
    (values other than 0/1 are found per block by `check_spikes`)."""
    return as_batch(x, shape, finite=False).to(torch.float32)


def check_spikes(x: Tensor) -> None:
    """InputError unless every value is 0 or 1 (NaN and inf included); cheap on a block."""
    if bool((x * (x - 1)).any()):
        bad = x[(x != 0) & (x != 1)].flatten()[0].item()
        raise InputError(f"the chip's input population ('spike_list') emits spikes: input "
                         f"values must be 0 or 1, found {bad:g}")
