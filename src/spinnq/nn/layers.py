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

    Weight layers run once on (B*T, ...); neuron layers scan over T. Indexing and NIR export
    (`spinnq.nn.to_nir`) follow the layer order. Convolutions take the frames
    `conv_chunk` at a time: on CPUs a convolution over tens of thousands of frames (600
    steps x 32 samples) ran about 3x slower per frame, forward and backward, than over a few
    hundred (measured, one thread); each frame's output is the same, weight gradients sum
    the chunks' parts (equal within float rounding).
    """

    conv_chunk = 640  # frames per convolution call (0: all at once)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
