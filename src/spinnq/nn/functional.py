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
    """numba's forward and backward scans (one pass over (B, T, F) each), or None. Both carry
    a state (B, F) in and out, so a sequence can be scanned a time chunk at a time."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a core dependency
        return None

    @njit(cache=True, nogil=True, error_model="numpy")  # IEEE division: vectorizes
    def forward(x, v, beta, thr, subtract, s, vpre):  # pragma: no cover - compiled
        """`lif_step` per step and neuron, the same float operations in the same order; v:
        the membrane before the first step, left as the membrane after the last reset."""
        B, T, F = x.shape
        one, zero = x.dtype.type(1), x.dtype.type(0)
        for b in range(B):
            vb = v[b]
            for t in range(T):
                xt, st, pt = x[b, t], s[b, t], vpre[b, t]
                if subtract:
                    for f in range(F):
                        w = beta * vb[f] + xt[f]
                        pt[f] = w
                        u = w - thr
                        st[f] = one if u > 0 else zero
                        vb[f] = u if u > 0 else w
                else:
                    for f in range(F):
                        w = beta * vb[f] + xt[f]
                        pt[f] = w
                        u = w - thr
                        st[f] = one if u > 0 else zero
                        vb[f] = zero if u > 0 else w

    @njit(cache=True, nogil=True, error_model="numpy")  # IEEE division: vectorizes
    def backward(gs, vpre, g, beta, thr, slope, subtract, detach, gx):  # pragma: no cover
        """Reverse scan: the gradient autograd computes through `lif_step`'s graph. g: the
        gradient of the membrane after the last step's reset, left as that of the membrane
        before the first step. One branch-free inner loop per reset rule, so LLVM vectorizes
        it."""
        B, T, F = gs.shape
        one, zero = gs.dtype.type(1), gs.dtype.type(0)  # typed: no float64 on the way
        for b in range(B):
            gb = g[b]
            for t in range(T - 1, -1, -1):
                gst, vt, gxt = gs[b, t], vpre[b, t], gx[b, t]
                if detach and subtract:
                    for f in range(F):
                        d = slope * abs(vt[f] - thr) + one
                        gv = gst[f] / (d * d) + gb[f]
                        gxt[f] = gv
                        gb[f] = gv * beta
                elif detach:
                    for f in range(F):
                        u = vt[f] - thr
                        d = slope * abs(u) + one
                        gv = gst[f] / (d * d) + gb[f] * (zero if u > 0 else one)
                        gxt[f] = gv
                        gb[f] = gv * beta
                elif subtract:
                    for f in range(F):
                        d = slope * abs(vt[f] - thr) + one
                        gv = (gst[f] + (-gb[f]) * thr) / (d * d) + gb[f]
                        gxt[f] = gv
                        gb[f] = gv * beta
                else:
                    for f in range(F):
                        w = vt[f]
                        u = w - thr
                        d = slope * abs(u) + one
                        gv = (gst[f] + -(gb[f] * w)) / (d * d) + gb[f] * (zero if u > 0
                                                                            else one)
                        gxt[f] = gv
                        gb[f] = gv * beta

    return forward, backward


class LIFSequence(torch.autograd.Function):
    """A LIF layer over a sequence (B, T, *F) from membrane v0 (B, *F; None: zeros) as one
    autograd node: `lif_step` with the fast-sigmoid surrogate 1 / (slope |v - threshold| +
    1)^2, the same numbers as stepping it under autograd, without a graph of T x 7 nodes.
    Returns (spikes, membrane after the last step); the gradient flows through both, so
    chunks of a sequence chain exactly. Saves the membrane before each reset; the backward
    pass is one reverse scan. numba on CPU, torch ops elsewhere. `out`: (spikes, membranes)
    buffers shaped like x to write into (None: new tensors)."""

    @staticmethod
    def forward(ctx, x: Tensor, v0: Tensor | None, beta: float, threshold: float, slope: float,
                subtract: bool, detach_reset: bool, out: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        xc = x.detach().contiguous()
        flat = (xc.shape[0], xc.shape[1], -1)
        v = (torch.zeros_like(xc[:, 0]) if v0 is None else
             v0.detach().to(xc.dtype).clone().contiguous())
        k = _scan_kernels() if _numba_ok(xc) else None
        s, vpre = out if out is not None else (torch.empty_like(xc), torch.empty_like(xc))
        if k is not None:
            dt = xc.numpy().dtype.type
            k[0](xc.numpy().reshape(flat), v.numpy().reshape(flat[0], -1), dt(beta),
                 dt(threshold), subtract, s.numpy().reshape(flat), vpre.numpy().reshape(flat))
        else:
            _forward_torch(xc.reshape(flat), v.reshape(flat[0], -1), beta, threshold, subtract,
                           s.reshape(flat), vpre.reshape(flat))
        ctx.save_for_backward(vpre)
        ctx.args = (beta, threshold, slope, subtract, detach_reset)
        return s, v

    @staticmethod
    def backward(ctx, gs: Tensor, gv: Tensor):
        (vpre,) = ctx.saved_tensors
        beta, thr, slope, subtract, detach = ctx.args
        gs = gs.contiguous()
        flat = (gs.shape[0], gs.shape[1], -1)
        g = gv.to(vpre.dtype).clone().contiguous()  # becomes the gradient of v0
        gx = torch.empty_like(vpre)
        k = _scan_kernels() if _numba_ok(gs) else None
        if k is not None:
            dt = gs.numpy().dtype.type
            k[1](gs.numpy().reshape(flat), vpre.numpy().reshape(flat),
                 g.numpy().reshape(flat[0], -1), dt(beta), dt(thr), dt(slope), subtract, detach,
                 gx.numpy().reshape(flat))
        else:
            _backward_torch(gs.reshape(flat), vpre.reshape(flat), g.reshape(flat[0], -1), beta,
                            thr, slope, subtract, detach, gx.reshape(flat))
        return gx, (g if ctx.needs_input_grad[1] else None), None, None, None, None, None, None


def _numba_ok(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _forward_torch(x: Tensor, v: Tensor, beta: float, thr: float, subtract: bool, s: Tensor,
                   vpre: Tensor) -> None:
    """`LIFSequence`'s forward in torch ops (GPUs, other dtypes) on (B, T, F): a few in-place
    ops a step; v (B, F) is updated in place."""
    for t in range(x.shape[1]):
        v.mul_(beta).add_(x[:, t])
        vpre[:, t] = v
        u = v - thr
        fire = u > 0
        s[:, t] = fire
        v.copy_(torch.where(fire, u if subtract else torch.zeros_like(v), v))


def _backward_torch(gs: Tensor, vpre: Tensor, g: Tensor, beta: float, thr: float, slope: float,
                    subtract: bool, detach: bool, gx: Tensor) -> None:
    """The reverse scan in torch ops; g (B, F) carries the membrane's gradient, in place."""
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
        g.copy_(gv * beta)


def lif_chunk(x: Tensor, v0: Tensor | None, beta: float, threshold: float,
              reset: str = "subtract", slope: float = 25.0, detach_reset: bool = True,
              out: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """(spikes (B, T, *F), membrane after the last step (B, *F)) of a LIF layer over x from
    membrane v0 (None: zeros): `lif_step` at every step, one fused autograd node. Scanning a
    sequence in time chunks, each from the last one's membrane, gives the same spikes and
    gradients as scanning it whole. `out`: contiguous (spikes, membranes before the reset)
    buffers of x's shape and dtype that the spikes and saved membranes are written into
    (reused memory: fresh pages cost more than the scan)."""
    if out is not None and not all(o.shape == x.shape and o.dtype == x.dtype
                                   and o.is_contiguous() for o in out):
        raise ValueError("lif_chunk: out buffers must be contiguous, of x's shape and dtype")
    return LIFSequence.apply(x, v0, float(beta), float(threshold), float(slope),
                             reset == "subtract", bool(detach_reset), out)


def lif_sequence(x: Tensor, beta: float, threshold: float, reset: str = "subtract",
                 slope: float = 25.0, detach_reset: bool = True) -> Tensor:
    """Spikes (B, T, *F) of a LIF layer over x (B, T, *F) from rest: `lif_chunk` from v = 0."""
    return lif_chunk(x, None, beta, threshold, reset, slope, detach_reset)[0]
