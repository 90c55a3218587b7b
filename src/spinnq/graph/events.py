"""The reference simulator's 2-D convolution and pooling, input event by input event.

A spiking network's convolutions see mostly zeros (0/1 spikes at a few percent), so the float
reference scatters each non-zero input into the outputs it reaches instead of a dense
convolution. Its arithmetic is fixed, whatever the batch, layout or density: every output
starts at its bias, then adds `x * w` of each non-zero input in the order (kernel row, kernel
column, input channel), one float operation at a time (no fused multiply-add, no reordering).
A zero input adds exactly nothing, so this is also the dense sum in that order, and a frame's
result does not depend on the frames beside it: a whole sequence of frames can go in one call
(`Simulator.steps`) with the same bits as a step at a time (tests/graph/test_layerwise.py).

Pooling likewise: each output starts at 0 and adds its window's non-zero inputs in (kernel
row, kernel column) order, then is divided by the divisor (1 for sum pooling).

Outputs come back channels-last in memory (`torch.channels_last`-like strides), the layout the
scatter writes; every consumer reads them through their logical (C, H, W) shape.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator

import numpy as np
import torch

Tensor = torch.Tensor


def usable(x: Tensor, weight: Tensor | None = None, groups: int = 1) -> bool:
    """Whether the event kernels take this call: numba present, CPU tensors of one float
    dtype, frames (B, C, H, W) or (T, B, C, H, W), no autograd, one group (other calls go to
    torch)."""
    tensors = (x,) if weight is None else (x, weight)
    return (groups == 1 and x.ndim in (4, 5) and (weight is None or weight.ndim == 4)
            and all(t.device.type == "cpu" and t.dtype == x.dtype for t in tensors)
            and x.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            and _kernels() is not None)


def conv2d(x: Tensor, weight_hwio: Tensor, bias: Tensor | None, stride: tuple,
           padding: tuple, dilation: tuple) -> Tensor:
    """The convolution of frames x (B, C, H, W) or (T, B, C, H, W) (any strides) with the
    weight laid out (KH, KW, C, O): (..., O, OH, OW), channels-last in memory."""
    kh, kw, c, o = weight_hwio.shape
    frames, lead, out_hw, taps = _prepare(x, (kh, kw), stride, padding, dilation, o)
    b = bias.detach().to(x.dtype) if bias is not None else torch.zeros(o, dtype=x.dtype)
    y = np.empty((frames.shape[0], out_hw[0] * out_hw[1] * o), dtype=frames.dtype)
    _kernels()[0](frames, c, weight_hwio.detach().reshape(-1).numpy(), b.contiguous().numpy(),
                  *taps, y)
    return torch.from_numpy(y).reshape(*lead, *out_hw, o).movedim(-1, -3)


def pool2d(x: Tensor, kernel: tuple, stride: tuple, padding: tuple, divisor: int) -> Tensor:
    """Sum (divisor 1) or average (divisor kernel area, zero padding counted) pooling of
    frames x (B, C, H, W) or (T, B, C, H, W): (..., C, OH, OW), channels-last in memory."""
    c = x.shape[-3]
    frames, lead, out_hw, taps = _prepare(x, tuple(kernel), stride, padding, (1, 1), c)
    y = np.empty((frames.shape[0], out_hw[0] * out_hw[1] * c), dtype=frames.dtype)
    _kernels()[1](frames, c, taps[0], taps[1], frames.dtype.type(divisor), y)
    return torch.from_numpy(y).reshape(*lead, *out_hw, c).movedim(-1, -3)


def _prepare(x: Tensor, k: tuple, stride: tuple, padding: tuple, dilation: tuple, o: int
             ) -> tuple[np.ndarray, tuple, tuple, tuple]:
    """(frames (T*B, H*W*C) channels-last, each a contiguous run in the order events are
    taken: a view of a channels-last x (a previous convolution's or neuron's output), else
    a copy; the leading dims; the output's (OH, OW); the taps)."""
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    out_hw = tuple((n + 2 * p - d * (kk - 1) - 1) // s + 1 for n, p, d, kk, s in
                   zip((h, w), padding, dilation, k, stride, strict=True))
    x5 = x.detach() if len(lead) == 2 else x.detach().unsqueeze(0)
    taps = tap_table((h, w), out_hw, k, tuple(stride), tuple(padding), tuple(dilation), c, o)
    frames = x5.permute(0, 1, 3, 4, 2).contiguous().reshape(-1, h * w * c).numpy()
    return frames, lead, out_hw, taps


def reach(in_hw: tuple, out_hw: tuple, k: tuple, stride: tuple, padding: tuple,
          dilation: tuple) -> Iterator[list[tuple[int, int, list[tuple[int, int]]]]]:
    """The outputs each input pixel reaches (one list per pixel, row-major): for each kernel
    row `a` that lands on an output row `oy`, (a, oy, [(b, ox), ...]) with the kernel
    columns `b` that land on an output column `ox`, in b order. The one place the
    convolution's geometry (stride, padding, dilation) is walked for the scatter tables."""
    for iy in range(in_hw[0]):
        for ix in range(in_hw[1]):
            rows = []
            for a in range(k[0]):
                ty = iy + padding[0] - a * dilation[0]
                if ty < 0 or ty % stride[0] or ty // stride[0] >= out_hw[0]:
                    continue
                cols = [(b, (ix + padding[1] - b * dilation[1]) // stride[1])
                        for b in range(k[1])
                        if (tx := ix + padding[1] - b * dilation[1]) >= 0
                        and tx % stride[1] == 0 and tx // stride[1] < out_hw[1]]
                rows.append((a, ty // stride[0], cols))
            yield rows


@functools.lru_cache(maxsize=64)
def tap_table(in_hw: tuple, out_hw: tuple, k: tuple, stride: tuple, padding: tuple,
              dilation: tuple, c: int, o: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per input pixel (row-major), the outputs it reaches in (kernel row, kernel column)
    order, CSR: offsets `ptr`, each tap's first output element `yoff` (pixel * O) and its
    weights' first element for channel 0 `woff` ((kh * KW + kw) * C * O)."""
    ptr, yoff, woff = [0], [], []
    for rows in reach(in_hw, out_hw, k, stride, padding, dilation):
        for a, oy, cols in rows:
            for b, ox in cols:
                yoff.append((oy * out_hw[1] + ox) * o)
                woff.append((a * k[1] + b) * c * o)
        ptr.append(len(yoff))
    return tuple(np.asarray(v, dtype=np.uint64) for v in (ptr, yoff, woff))


def keep_heap() -> None:
    """Let glibc keep freed memory for the next chunk's arrays. By default it hands memory
    back to the system once 128 KB (growing with the arrays seen) lie free at the top of the
    heap, so the few-MB arrays every chunk allocates are faulted in afresh each time:
    measured on the seed network in a fresh process, 16 MB of page faults per sample, a
    third of the float reference's CPU time. Arrays up to 32 MB then come from the heap and
    up to 64 MB of free heap stay; elsewhere than glibc, nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


@functools.cache
def _kernels():
    """The compiled (convolution, pooling) scatters, or None without numba (imported on
    first use; no function of their own called, so that numba's cache serves them in the
    next process). Unsigned indices: numba then needs no negative-index wrap-around, and the inner
    loop over output channels vectorises (each element still gets its own multiply and
    add)."""
    try:
        from numba import njit, uint64
    except ImportError:  # pragma: no cover - numba is a core dependency
        return None
    keep_heap()

    @njit(cache=True, nogil=True, error_model="numpy")
    def conv(x, channels, w, bias, ptr, yoff, woff, y):  # pragma: no cover - compiled
        o_n = uint64(bias.shape[0])
        n = uint64(y.shape[1])
        events = np.empty(x.shape[1], dtype=np.int64)
        for f in range(x.shape[0]):
            frame = x[f]
            yf = y[f]
            for j in range(0, n, o_n):
                for o in range(o_n):
                    yf[j + o] = bias[o]
            m = 0  # the non-zero elements' indices, without a branch per element (one would
            for k in range(frame.shape[0]):  # be mispredicted at a few percent of spikes)
                events[m] = k
                m += frame[k] != 0
            for e in range(m):
                k = events[e]
                v = frame[k]
                pix = k // channels
                co = uint64(k - pix * channels) * o_n
                for a in range(ptr[pix], ptr[pix + 1]):
                    yb = yoff[a]
                    wb = woff[a] + co
                    for o in range(o_n):
                        yf[yb + o] += v * w[wb + o]

    @njit(cache=True, nogil=True, error_model="numpy")
    def pool(x, channels, ptr, yoff, divisor, y):  # pragma: no cover - compiled
        events = np.empty(x.shape[1], dtype=np.int64)
        for f in range(x.shape[0]):
            frame = x[f]
            yf = y[f]
            yf[:] = 0
            m = 0  # as in `conv`
            for k in range(frame.shape[0]):
                events[m] = k
                m += frame[k] != 0
            for e in range(m):
                k = events[e]
                v = frame[k]
                pix = k // channels
                c = uint64(k - pix * channels)
                for a in range(ptr[pix], ptr[pix + 1]):
                    yf[yoff[a] + c] += v
            if divisor != 1:
                for j in range(yf.shape[0]):
                    yf[j] = yf[j] / divisor
    return conv, pool
