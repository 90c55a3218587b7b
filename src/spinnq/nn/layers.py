"""Weight layers for spiking networks: sum pooling, chip-exact fake-quant layers, and the
sequence container that runs weight layers on all timesteps at once."""

from __future__ import annotations

import threading
import weakref
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from spinnq.nn.neurons import LI, LIF
from spinnq.nn.pooling import fits, sum_pool
from spinnq.s2.formats import ScaleMode, fake_quant, population_scale


class SumPool2d(nn.Module):
    """Sum pooling (NIR SumPool2d): what SpiNNaker2 fuses into the next convolution."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size
        self.padding = padding

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """avg_pool2d with divisor 1; channels-last batches (window == stride) as
        `pooling.SumPoolCL`, into `out` when given (its numbers, nothing kept for backward)."""
        return sum_pool(x, self.kernel_size, self.stride, self.padding, out)


class _Quant:
    """Mixin: the forward pass sees the chip's integers (w_int / w_scale), gradients pass
    straight through. The scale follows the weights (as PTQ would pick it at deploy time)."""

    bits: int
    scale_mode: ScaleMode
    rounding: str

    def w_scale(self) -> float:
        return population_scale([self.weight.detach().cpu().numpy()], self.scale_mode, self.bits)

    def quant_weight(self) -> torch.Tensor:
        return fake_quant(self.weight, self.w_scale(), self.bits, self.rounding)


class QuantLinear(_Quant, nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 8,
                 scale_mode: str = "max"):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self.bits, self.scale_mode, self.rounding = bits, ScaleMode.parse(scale_mode), "nearest"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quant_weight(), self.bias)


class QuantConv2d(_Quant, nn.Conv2d):
    """Conv weights are truncated toward zero on the chip (py-spinnaker2 astype(int8))."""

    def __init__(self, *args, bits: int = 8, scale_mode: str = "max", **kwargs):
        nn.Conv2d.__init__(self, *args, **kwargs)
        self.bits, self.scale_mode, self.rounding = bits, ScaleMode.parse(scale_mode), "trunc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quant_weight(), self.bias)


NEURONS = (LIF, LI)


class SpikingSequential(nn.Sequential):
    """A chain of weight and neuron layers over sequences (B, T, *features).

    On CPUs the sequence runs in time chunks of about `chunk_frames` frames (batch x steps):
    every layer takes a chunk's frames at once (weight layers as one batch of frames, neuron
    layers scanning from the membrane the previous chunk left), then the next chunk. The
    tensors of a chunk stay small (cache-sized, reused memory) where whole-sequence tensors
    of the seed network (600 steps x 32 samples x 3,600 neurons, 276 MB each) spent most of
    the time on fresh memory pages; the spikes are the same bit for bit, gradients within
    float rounding (the weight gradients sum the chunks' parts). `chunk_frames = 0`, or a
    GPU, runs layer by layer over the whole sequence, convolutions `conv_chunk` frames a
    call (a convolution over tens of thousands of frames ran about 3x slower per frame on
    CPUs than over a few hundred). Indexing and NIR export (`spinnq.nn.to_nir`) follow the
    layer order. Integer inputs (uint8 spikes) become floats a chunk at a time.

    Under autograd the chunks write what the backward pass keeps (input frames, spikes,
    membranes, pooled spikes) into memory the model keeps from batch to batch, handed out
    again only once the last batch's graph is gone (`_Buffers`): fresh memory of that size
    (over 1 GB a batch of the seed network) came from the kernel page by page every batch.
    """

    chunk_frames = 640  # frames (batch x steps) per time chunk on CPUs (0: whole sequence)
    channels_last = True  # chunks: images as (N, H, W, C) in memory (faster CPU convolutions)
    conv_chunk = 640  # whole-sequence path: frames per convolution call (0: all at once)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        steps = max(1, self.chunk_frames // max(b, 1))
        if self.chunk_frames > 0 and x.device.type == "cpu" and len(self):
            return self._chunked(x, steps)
        return self._whole(x.to(self._dtype()) if not x.is_floating_point() else x)

    def chunk_memory(self) -> list[torch.Tensor]:
        """The memory the chunked trainer keeps from batch to batch (see the class)."""
        return list(_BUFFERS[self].bufs.values()) if self in _BUFFERS else []

    def free_chunk_memory(self) -> None:
        """Let go of that memory (after training; the next training batch takes it anew)."""
        _BUFFERS.pop(self, None)

    def _dtype(self) -> torch.dtype:
        return next((p.dtype for p in self.parameters() if p.is_floating_point()),
                    torch.get_default_dtype())

    def _chunked(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        b, t = x.shape[:2]
        xt = x.transpose(0, 1)  # time-major: a chunk is one slice
        bufs = _buffers(self) if torch.is_grad_enabled() else None
        state: dict[int, torch.Tensor] = {}
        outs = []
        for c, t0 in enumerate(range(0, t, steps)):
            n = min(steps, t - t0)
            h = self._frames(xt[t0:t0 + n], bufs, c)
            for i, layer in enumerate(self):
                if isinstance(layer, NEURONS):
                    h, state[i] = _scan(layer, h, n, state.get(i), bufs, (c, i))
                elif isinstance(layer, SumPool2d) and bufs is not None and fits(
                        h, layer.kernel_size, layer.stride, layer.padding):
                    k = layer.kernel_size
                    o = bufs.take((c, i), (h.shape[0], h.shape[1], h.shape[2] // k,
                                           h.shape[3] // k), h.dtype, channels_last=True)
                    h = layer(h, o)
                else:
                    h = layer(h)
            outs.append(h.reshape(n, b, *h.shape[1:]))
        if bufs is not None:
            bufs.trim()
        return torch.cat(outs).transpose(0, 1).contiguous()

    def _frames(self, xc: torch.Tensor, bufs: _Buffers | None, c: int) -> torch.Tensor:
        """A time-major chunk (n, b, *F) of the input as float frames (n x b, *F): images
        channels-last (`channels_last`), converted and laid out in one copy, into the
        model's buffer for chunk c when it keeps them (`bufs`)."""
        n, b, f = xc.shape[0], xc.shape[1], xc.shape[2:]
        dtype = xc.dtype if xc.is_floating_point() else self._dtype()
        if not (self.channels_last and len(f) == 3) or xc.requires_grad:
            h = xc.reshape(n * b, *f)
            h = h if h.is_floating_point() else h.to(dtype)
            cl = self.channels_last and h.dim() == 4
            return h.contiguous(memory_format=torch.channels_last) if cl else h
        shape = (n * b, *f)
        h = (bufs.take((c, "in"), shape, dtype, channels_last=True) if bufs is not None else
             torch.empty(shape, dtype=dtype, memory_format=torch.channels_last))
        dst = h.permute(0, 2, 3, 1).view(n, b, f[1], f[2], f[0])  # h in memory order
        k = _frames_kernel() if (xc.device.type == "cpu" and xc.dtype in _NUMBA_FRAMES
                                  and dtype in (torch.float32, torch.float64)) else None
        if k is not None:  # one pass; torch's strided copy_ took 3x as long
            k(xc.numpy(), dst.numpy())
        else:
            dst.copy_(xc.permute(0, 1, 3, 4, 2))
        return h

    def _whole(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        for layer in self:
            if isinstance(layer, NEURONS):
                x = layer(x)
                continue
            f = x.reshape(b * t, *x.shape[2:])
            if isinstance(layer, nn.Conv2d) and 0 < self.conv_chunk < len(f):
                y = torch.cat([layer(p) for p in f.split(self.conv_chunk)])
            else:
                y = layer(f)
            x = y.reshape(b, t, *y.shape[1:])
        return x


def _scan(layer: nn.Module, h: torch.Tensor, steps: int, v: torch.Tensor | None,
          bufs: _Buffers | None = None, key: tuple = ()
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A neuron layer over a time-major chunk of frames h (steps x b, *F) as one sequence
    of `steps` steps and (b x F) neurons, in h's memory order (channels-last images stay
    so): (output frames like h, the layer's state to start the next chunk from). A fused
    LIF writes its spikes and saved membranes into `bufs` (under `key`) when given."""
    cl = h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(
        memory_format=torch.channels_last)
    m = h.permute(0, 2, 3, 1) if cl else h  # a contiguous view in memory order
    seq = m.reshape(1, steps, -1)
    out = None
    if bufs is not None and isinstance(layer, LIF) and layer.fused:
        out = (bufs.take((*key, "s"), seq.shape, seq.dtype),
               bufs.take((*key, "v"), seq.shape, seq.dtype))
    s, v = layer.scan(seq, v, out) if out is not None else layer.scan(seq, v)
    s = s.reshape(m.shape)
    return (s.permute(0, 3, 1, 2) if cl else s), v


_NUMBA_FRAMES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                 torch.float32, torch.float64)


@cache
def _frames_kernel():
    """numba's copy of a time-major chunk (n, b, C, H, W) of any real dtype, strided as it
    comes, into float frames in channels-last memory order (n, b, H, W, C), or None."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a core dependency
        return None

    @njit(cache=True, nogil=True)
    def frames(x, out):  # pragma: no cover - compiled
        n, b, c_n, h_n, w_n = x.shape
        for t in range(n):
            for j in range(b):
                for c in range(c_n):
                    for h in range(h_n):
                        for w in range(w_n):
                            out[t, j, h, w, c] = x[t, j, c, h, w]

    return frames


def _storage_users(t: torch.Tensor) -> int | None:
    """How many tensors share t's memory (t included), or None where torch does not say."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    return None if count is None else count(t.untyped_storage()._cdata) - 1


class _Buffers:
    """The memory a model's chunked forward pass writes what autograd keeps for the backward
    pass into (each chunk's input frames, spikes, membranes, pooled spikes: about 40 MB a
    chunk of 640 frames of the seed network, over 1 GB a batch), kept from batch to batch.
    Fresh memory of that size came from the kernel page by page every batch (a third of the
    epoch's CPU time on a busy box). A buffer is handed out again only once nothing else
    holds it (the last batch's graph freed by its backward pass; outputs dropped); else the
    forward takes fresh memory, as without these buffers."""

    def __init__(self) -> None:
        self.bufs: dict[tuple, torch.Tensor] = {}
        self.used: set[tuple] = set()
        self.last: set[tuple] = set()
        self.lock = threading.Lock()  # two threads' forward passes never share a buffer

    def take(self, key: tuple, shape: tuple, dtype: torch.dtype, channels_last: bool = False
             ) -> torch.Tensor:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        key = (*key, tuple(shape), dtype, fmt)  # a short last batch keeps its own buffers
        with self.lock:
            b = self.bufs.get(key)
            if b is None or _storage_users(b) != 1:
                b = self.bufs[key] = torch.empty(shape, dtype=dtype, memory_format=fmt)
            self.used.add(key)
            return b.detach()  # another tensor on b's memory: counted while a graph keeps it

    def trim(self) -> None:
        """Forget the buffers neither this forward pass nor the one before took (another
        batch size; an epoch's short last batch and the next full one keep theirs)."""
        with self.lock:
            keep = self.used | self.last
            self.bufs = {k: v for k, v in self.bufs.items() if k in keep}
            self.last, self.used = self.used, set()


_BUFFERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _buffers(model: nn.Module) -> _Buffers:
    """The model's buffers (beside it, not in it: copies, pickles and state dicts of the
    model stay free of them; they go with the model)."""
    if model not in _BUFFERS:
        _BUFFERS[model] = _Buffers()
    return _BUFFERS[model]
