"""Pure step functions of spinnq's training-side neurons (Norse's pattern): the modules in
`neurons.py` and the fast numpy paths of the tasks are thin wrappers around these, so there
is one definition of the arithmetic.

    v = beta * v + x;   s = v > threshold;   v = v - s * threshold   (or v * (1 - s): 'zero')

the order SpiNNaker2 uses (input after the decay, strict threshold, reset right after the
spike), i.e. NIR's LIF under forward Euler with tau = dt / (1 - beta), r = tau / dt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Tensor = torch.Tensor


def lif_step(x: Tensor, v: Tensor, beta: float, threshold: float, reset: str,
             spike_fn: Callable[[Tensor], Tensor], detach_reset: bool = True
             ) -> tuple[Tensor, Tensor]:
    """One step of a LIF layer: (spikes, new membrane). `spike_fn(v - threshold)` is the
    Heaviside with its surrogate gradient; the reset is detached from the graph by default."""
    v = beta * v + x
    s = spike_fn(v - threshold)
    r = s.detach() if detach_reset else s
    v = v - r * threshold if reset == "subtract" else v * (1.0 - r)
    return s, v


def li_step(x: Tensor, v: Tensor, beta: float) -> Tensor:
    """One step of a non-spiking leaky integrator: the new membrane (also its output)."""
    return beta * v + x


def lif_scan_np(x: np.ndarray, beta: float, thr: float, keep_v: bool = True
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """`lif_step` with reset by subtraction over a whole (B, T, N) sequence in numpy, for
    inference and hand-written backward passes (a few us per op instead of ~10 for tiny
    torch ops): returns (spikes, membrane before the reset or None), both (B, T, N)."""
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major: contiguous per step
    steps = xt.shape[0]
    spk = np.empty(xt.shape, dtype=bool)
    vpre = np.empty_like(xt) if keep_v else None
    v = np.zeros(xt.shape[1:], dtype=x.dtype)
    beta, thr = x.dtype.type(beta), x.dtype.type(thr)
    for t in range(steps):
        np.multiply(v, beta, out=v)
        v += xt[t]
        if keep_v:
            vpre[t] = v
        np.greater(v, thr, out=spk[t])
        np.subtract(v, thr, out=v, where=spk[t])
    return (spk.astype(x.dtype).transpose(1, 0, 2),
            vpre.transpose(1, 0, 2) if keep_v else None)
