"""Pure step functions of spinnq's training-side neurons (Norse's pattern): the modules in
`neurons.py` and the fast numpy paths of the tasks are thin wrappers around these, so there
is one definition of the arithmetic.

    v = beta * v + x;   s = v > threshold;   v = v - s * threshold   (or v * (1 - s): 'zero')

the order SpiNNaker2 uses (input after the decay, strict threshold, reset right after the
spike), i.e. NIR's LIF under forward Euler with tau = dt / (1 - beta), r = tau / dt.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

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


# ----------------------------------------------------------------- fused LIF over a sequence
@cache
def _scan_kernels():
    """numba's forward and backward scans (one pass over (B, T, F) each), or None."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a core dependency
        return None

    @njit(cache=True, nogil=True)
    def forward(x, beta, thr, subtract, s, vpre):  # pragma: no cover - compiled
        """`lif_step` per step and neuron, the same float operations in the same order."""
        B, T, F = x.shape
        v = np.zeros(F, x.dtype)
        zero = x.dtype.type(0)
        for b in range(B):
            v[:] = 0
            for t in range(T):
                for f in range(F):
                    w = beta * v[f] + x[b, t, f]
                    vpre[b, t, f] = w
                    u = w - thr
                    fire = u > 0
                    s[b, t, f] = fire
                    if subtract:
                        v[f] = u if fire else w
                    else:
                        v[f] = zero if fire else w

    @njit(cache=True, nogil=True)
    def backward(gs, vpre, beta, thr, slope, subtract, detach, gx):  # pragma: no cover
        """Reverse scan: the gradient autograd computes through `lif_step`'s graph. One
        branch-free inner loop per reset rule (chosen per step), so LLVM vectorizes it."""
        B, T, F = gs.shape
        one, zero = gs.dtype.type(1), gs.dtype.type(0)  # typed: no float64 on the way
        g = np.zeros(F, gs.dtype)  # grad of the membrane after step t's reset
        for b in range(B):
            g[:] = 0
            for t in range(T - 1, -1, -1):
                gst, vt, gxt = gs[b, t], vpre[b, t], gx[b, t]
                if detach and subtract:
                    for f in range(F):
                        d = slope * abs(vt[f] - thr) + one
                        gv = gst[f] / (d * d) + g[f]
                        gxt[f] = gv
                        g[f] = gv * beta
                elif detach:
                    for f in range(F):
                        u = vt[f] - thr
                        d = slope * abs(u) + one
                        gv = gst[f] / (d * d) + g[f] * (zero if u > 0 else one)
                        gxt[f] = gv
                        g[f] = gv * beta
                elif subtract:
                    for f in range(F):
                        d = slope * abs(vt[f] - thr) + one
                        gv = (gst[f] + (-g[f]) * thr) / (d * d) + g[f]
                        gxt[f] = gv
                        g[f] = gv * beta
                else:
                    for f in range(F):
                        w = vt[f]
                        u = w - thr
                        d = slope * abs(u) + one
                        gv = (gst[f] + -(g[f] * w)) / (d * d) + g[f] * (zero if u > 0 else one)
                        gxt[f] = gv
                        g[f] = gv * beta

    return forward, backward


class LIFSequence(torch.autograd.Function):
    """A LIF layer over a whole sequence (B, T, *F) as one autograd node: `lif_step` with the
    fast-sigmoid surrogate 1 / (slope |v - threshold| + 1)^2, the same numbers as stepping it
    under autograd, without a graph of T x 7 nodes. Saves the membrane before each reset
    (B, T, *F); the backward pass is one reverse scan. numba on CPU, torch ops elsewhere."""

    @staticmethod
    def forward(ctx, x: Tensor, beta: float, threshold: float, slope: float, subtract: bool,
                detach_reset: bool) -> Tensor:
        xc = x.detach().contiguous()
        k = _scan_kernels() if _numba_ok(xc) else None
        s, vpre = torch.empty_like(xc), torch.empty_like(xc)
        if k is not None:
            flat = (xc.shape[0], xc.shape[1], -1)
            dt = xc.numpy().dtype.type
            k[0](xc.numpy().reshape(flat), dt(beta), dt(threshold), subtract,
                 s.numpy().reshape(flat), vpre.numpy().reshape(flat))
        else:
            _forward_torch(xc, beta, threshold, subtract, s, vpre)
        ctx.save_for_backward(vpre)
        ctx.args = (beta, threshold, slope, subtract, detach_reset)
        return s

    @staticmethod
    def backward(ctx, gs: Tensor):
        (vpre,) = ctx.saved_tensors
        beta, thr, slope, subtract, detach = ctx.args
        gs = gs.contiguous()
        gx = torch.empty_like(vpre)
        k = _scan_kernels() if _numba_ok(gs) else None
        if k is not None:
            flat = (gs.shape[0], gs.shape[1], -1)
            dt = gs.numpy().dtype.type
            k[1](gs.numpy().reshape(flat), vpre.numpy().reshape(flat), dt(beta), dt(thr),
                 dt(slope), subtract, detach, gx.numpy().reshape(flat))
        else:
            _backward_torch(gs, vpre, beta, thr, slope, subtract, detach, gx)
        return gx, None, None, None, None, None


def _numba_ok(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _forward_torch(x: Tensor, beta: float, thr: float, subtract: bool, s: Tensor,
                   vpre: Tensor) -> None:
    """`LIFSequence`'s forward in torch ops (GPUs, other dtypes): a few in-place ops a step."""
    v = torch.zeros_like(x[:, 0])
    for t in range(x.shape[1]):
        v.mul_(beta).add_(x[:, t])
        vpre[:, t] = v
        u = v - thr
        fire = u > 0
        s[:, t] = fire
        v = torch.where(fire, u if subtract else torch.zeros_like(v), v)


def _backward_torch(gs: Tensor, vpre: Tensor, beta: float, thr: float, slope: float,
                    subtract: bool, detach: bool, gx: Tensor) -> None:
    g = torch.zeros_like(vpre[:, 0])
    for t in range(vpre.shape[1] - 1, -1, -1):
        w = vpre[:, t]
        u = w - thr
        d = (slope * u.abs() + 1.0) ** 2
        keep = 1.0 - (u > 0).to(w.dtype)
        if detach:
            gv = gs[:, t] / d + (g if subtract else g * keep)
        elif subtract:
            gv = (gs[:, t] + (-g) * thr) / d + g
        else:
            gv = (gs[:, t] + -(g * w)) / d + g * keep
        gx[:, t] = gv
        g = gv * beta


def lif_sequence(x: Tensor, beta: float, threshold: float, reset: str = "subtract",
                 slope: float = 25.0, detach_reset: bool = True) -> Tensor:
    """Spikes (B, T, *F) of a LIF layer over x (B, T, *F): `lif_step` at every step with the
    fast-sigmoid surrogate, as one fused autograd node (`LIFSequence`)."""
    return LIFSequence.apply(x, float(beta), float(threshold), float(slope),
                             reset == "subtract", bool(detach_reset))
