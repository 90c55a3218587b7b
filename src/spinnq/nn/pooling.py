"""Sum pooling for the chunked trainer: channels-last images, window == stride, no padding
(the pooling SpiNNaker2 fuses into the next projection), as one autograd node that keeps
nothing for its backward pass.

`torch.nn.functional.avg_pool2d` keeps its whole input alive until the backward pass only to
read its shape (the seed network: 9 MB a time chunk of 640 frames, 280 MB a batch); its
gradient is a copy of the output's gradient into each window, which needs none of it. The
numba kernels sum each window from zero in row-major order, as avg_pool2d's CPU kernel
does, so the sums are avg_pool2d's bit for bit.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@cache
def _kernels():
    """numba's forward and backward over (A, H, W, C) arrays in memory order, or None."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a core dependency
        return None

    @njit(cache=True, nogil=True)
    def forward(x, k, out):  # pragma: no cover - compiled
        a_n, h_n, w_n, c_n = x.shape
        ho, wo = out.shape[1], out.shape[2]
        xf, of = x.reshape(a_n * h_n * w_n, c_n), out.reshape(a_n * ho * wo, c_n)
        zero = x.dtype.type(0)
        for a in range(a_n):
            for i in range(ho):
                for j in range(wo):
                    r = (a * ho + i) * wo + j
                    for c in range(c_n):
                        of[r, c] = zero
                    for di in range(k):
                        for dj in range(k):
                            q = (a * h_n + i * k + di) * w_n + j * k + dj
                            for c in range(c_n):
                                of[r, c] += xf[q, c]

    @njit(cache=True, nogil=True)
    def backward(g, k, gx):  # pragma: no cover - compiled
        a_n, h_n, w_n, c_n = gx.shape
        ho, wo = g.shape[1], g.shape[2]
        gf, xf = g.reshape(a_n * ho * wo, c_n), gx.reshape(a_n * h_n * w_n, c_n)
        zero = g.dtype.type(0)
        for a in range(a_n):
            for h in range(h_n):
                for w in range(w_n):
                    r = (a * h_n + h) * w_n + w
                    if h < ho * k and w < wo * k:
                        q = (a * ho + h // k) * wo + w // k
                        for c in range(c_n):
                            xf[r, c] = gf[q, c]
                    else:
                        for c in range(c_n):
                            xf[r, c] = zero

    return forward, backward


def _memory_order(x: Tensor) -> Tensor:
    """The (N, H, W, C) view of a channels-last (N, C, H, W) tensor."""
    return x.permute(0, 2, 3, 1)


def fits(x: Tensor, kernel: int, stride: int, padding: int) -> bool:
    """Whether `sum_pool_cl` takes x: a channels-last float image batch on the CPU, window ==
    stride, no padding (otherwise use avg_pool2d)."""
    return (kernel == stride and padding == 0 and x.dim() == 4 and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64) and x.shape[1] > 1
            and x.is_contiguous(memory_format=torch.channels_last)
            and _kernels() is not None)


class SumPoolCL(torch.autograd.Function):
    """Sum pooling of a channels-last batch (window == stride k, no padding) into `out` (a
    channels-last buffer of the output's shape, or None): avg_pool2d(x, k, divisor 1)'s
    numbers, saving only shapes for the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, k: int, out: Tensor | None) -> Tensor:
        n, c, h, w = x.shape
        shape = (n, c, h // k, w // k)
        y = out if out is not None else torch.empty(shape, dtype=x.dtype,
                                                    memory_format=torch.channels_last)
        _kernels()[0](_memory_order(x.detach()).numpy(), k, _memory_order(y).numpy())
        ctx.k, ctx.shape = k, x.shape
        return y

    @staticmethod
    def backward(ctx, g: Tensor):
        gx = torch.empty(ctx.shape, dtype=g.dtype, memory_format=torch.channels_last)
        gm = _memory_order(g.contiguous(memory_format=torch.channels_last))
        _kernels()[1](gm.numpy(), ctx.k, _memory_order(gx).numpy())
        return gx, None, None


def sum_pool(x: Tensor, kernel: int, stride: int, padding: int,
             out: Tensor | None = None) -> Tensor:
    """Sum pooling (avg_pool2d with divisor 1): `SumPoolCL` where it `fits` (into `out` when
    given), else avg_pool2d."""
    if fits(x, kernel, stride, padding):
        return SumPoolCL.apply(x, kernel, out)
    return F.avg_pool2d(x, kernel, stride, padding, divisor_override=1)
