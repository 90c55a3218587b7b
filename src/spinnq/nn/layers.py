"""Weight layers for spiking networks: sum pooling, chip-exact fake-quant layers, and the
sequence container that runs weight layers on all timesteps at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spinnq.nn.neurons import LI, LIF
from spinnq.s2.formats import ScaleMode, fake_quant, population_scale


class SumPool2d(nn.Module):
    """Sum pooling (NIR SumPool2d): what SpiNNaker2 fuses into the next convolution."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride or kernel_size
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                            divisor_override=1)


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

    def _dtype(self) -> torch.dtype:
        return next((p.dtype for p in self.parameters() if p.is_floating_point()),
                    torch.get_default_dtype())

    def _chunked(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        b, t = x.shape[:2]
        xt, dtype = x.transpose(0, 1), self._dtype()  # time-major: a chunk is one slice
        state: dict[int, torch.Tensor] = {}
        outs = []
        for t0 in range(0, t, steps):
            n = min(steps, t - t0)
            h = xt[t0:t0 + n].reshape(n * b, *x.shape[2:])  # frames (n x b), time-major
            h = h if h.is_floating_point() else h.to(dtype)
            if self.channels_last and h.dim() == 4:
                h = h.contiguous(memory_format=torch.channels_last)
            for i, layer in enumerate(self):
                if isinstance(layer, NEURONS):
                    h, state[i] = _scan(layer, h, n, state.get(i))
                else:
                    h = layer(h)
            outs.append(h.reshape(n, b, *h.shape[1:]))
        return torch.cat(outs).transpose(0, 1).contiguous()

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


def _scan(layer: nn.Module, h: torch.Tensor, steps: int, v: torch.Tensor | None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A neuron layer over a time-major chunk of frames h (steps x b, *F) as one sequence
    of `steps` steps and (b x F) neurons, in h's memory order (channels-last images stay
    so): (output frames like h, the layer's state to start the next chunk from)."""
    cl = h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(
        memory_format=torch.channels_last)
    m = h.permute(0, 2, 3, 1) if cl else h  # a contiguous view in memory order
    out, v = layer.scan(m.reshape(1, steps, -1), v)
    out = out.reshape(m.shape)
    return (out.permute(0, 3, 1, 2) if cl else out), v
