"""The chip's integer weight formats and the scale that maps float weights onto them.

One implementation used by the compiler (PTQ at deploy time), by PTQ calibration and by the
fake-quantisation of QAT, so training sees exactly the integers the emulator will use.

  w_int = clip(round(w * w_scale), -q, q),   q = 127 (8 bit) or 15 (4 bit, `lif` synapses)
  w_scale = q / max|w|  ("max")  or  q / percentile(|w|, p)  ("pNN.N")  or  1  ("none")

Rounding: conv weights are truncated toward zero (py-spinnaker2 casts with astype(int8));
dense weights are rounded to nearest [assumed, see docs/spinnaker2-target.md section 2].
Values out of range are clipped and counted, never wrapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from spinnq.errors import InputError

QMAX = {8: 127, 4: 15}
ROUNDINGS = ("nearest", "trunc")


@dataclass(frozen=True)
class ScaleMode:
    """How a population's weight scale is chosen: 'max', a percentile 'pNN.N', or 'none'."""

    kind: str  # max | percentile | none
    percentile: float = 100.0

    @classmethod
    def parse(cls, text: str) -> ScaleMode:
        t = str(text).strip().lower()
        if t in ("max", "none"):
            return cls(t)
        m = re.fullmatch(r"p(\d+(?:\.\d+)?)", t)
        if m and 0 < float(m.group(1)) <= 100:
            return cls("percentile", float(m.group(1)))
        raise InputError(f"weight scale must be 'max', 'none' or a percentile like 'p99.9' "
                         f"(0 < p <= 100), got {text!r}")

    def __str__(self) -> str:
        return self.kind if self.kind != "percentile" else f"p{self.percentile:g}"


def qmax(bits: int) -> int:
    if bits not in QMAX:
        raise InputError(f"weights must be 8 or 4 bits on SpiNNaker2, got {bits}")
    return QMAX[bits]


CHUNK = 1 << 16  # elements converted at a time: a float64 temporary of 512 kB, never the layer's


def _chunks(a: np.ndarray):
    """Consecutive 1-D pieces of `a` in memory order (views when `a` is contiguous)."""
    flat = a.ravel(order="K")
    for i in range(0, flat.size, CHUNK):
        yield flat[i:i + CHUNK]


def population_scale(weights: list[np.ndarray], mode: ScaleMode | str, bits: int = 8) -> float:
    """The factor that maps all weights entering one population onto the integer range."""
    mode = ScaleMode.parse(mode) if isinstance(mode, str) else mode
    q = qmax(bits)
    if mode.kind == "none":
        return 1.0
    if mode.kind == "max":  # chunk by chunk: max|w| is exact in the weights' own dtype
        ref = max((float(np.fmax.reduce(np.abs(c.astype(np.float64)))) for w in weights
                   for c in _chunks(np.asarray(w)) if c.size), default=0.0)  # fmax: skips NaN
        return float(q / ref) if ref > 0 else 1.0
    a = np.concatenate([np.abs(np.asarray(w, dtype=np.float64)).ravel() for w in weights])
    a = a[a > 0]
    if a.size == 0:
        return 1.0
    ref = np.percentile(a, mode.percentile)
    return float(q / ref) if ref > 0 else 1.0


def to_int(w: np.ndarray, scale: float, bits: int = 8,
           rounding: str = "nearest") -> tuple[np.ndarray, int]:
    """Integer weights (int8, the chip's storage; same shape and memory order as `w`) and how
    many had to be clipped (saturated) to fit `bits`. Converted in chunks: the float64
    product is never made for the whole layer."""
    if rounding not in ROUNDINGS:
        raise InputError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    q = qmax(bits)
    w = np.asarray(w)
    fortran = w.flags.f_contiguous and not w.flags.c_contiguous
    w = w if fortran or w.flags.c_contiguous else np.ascontiguousarray(w)
    out = np.empty(w.shape, np.int8, order="F" if fortran else "C")
    saturated = 0
    x = np.empty(min(w.size, CHUNK))
    for src, dst in zip(_chunks(w), _chunks(out), strict=True):
        xv = x[:src.size]
        np.multiply(src, scale, out=xv, dtype=np.float64)
        if rounding == "trunc":
            # Weights that are already integers / scale (QAT exports) must not lose 1 to
            # truncation through float error: values within 1e-6 of an integer are that
            # integer. (Rounding to nearest needs no such care: it gives that integer.)
            near = np.round(xv)
            xv[...] = np.where(np.abs(xv - near) <= 1e-6 * np.maximum(1.0, np.abs(xv)), near,
                               np.trunc(xv))
        else:
            np.round(xv, out=xv)
        saturated += int(np.count_nonzero(np.abs(xv) > q))
        np.clip(xv, -q, q, out=xv)
        dst[...] = xv
    return out, saturated


class _RoundSTE(torch.autograd.Function):
    """Round (or truncate) in the forward pass, identity gradient (straight-through)."""

    @staticmethod
    def forward(ctx, x, trunc: bool):
        return torch.trunc(x) if trunc else torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g, None


def fake_int(w: torch.Tensor, scale: torch.Tensor | float, bits: int = 8,
             rounding: str = "nearest") -> torch.Tensor:
    """The integers `to_int(w, scale)` gives (same snapping of near-integers, same clipping),
    as a float tensor with straight-through gradients: what the chip multiplies with."""
    q = qmax(bits)
    x = w * scale
    with torch.no_grad():
        near = torch.round(x)
        snap = (x - near).abs() <= 1e-6 * torch.clamp(x.abs(), min=1.0)
    x = torch.where(snap, x + (near - x).detach(), x)
    r = _RoundSTE.apply(x, rounding == "trunc")
    return torch.clamp(r, -q, q)


def fake_quant(w: torch.Tensor, scale: torch.Tensor | float, bits: int = 8,
               rounding: str = "nearest") -> torch.Tensor:
    """Float weights that equal `to_int(w, scale) / scale` exactly, with STE gradients."""
    return fake_int(w, scale, bits, rounding) / scale
