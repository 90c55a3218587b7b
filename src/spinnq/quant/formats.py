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


def weight_scale(weights: list[np.ndarray], mode: ScaleMode | str, bits: int = 8) -> float:
    """The factor that maps all weights entering one population onto the integer range."""
    mode = ScaleMode.parse(mode) if isinstance(mode, str) else mode
    q = qmax(bits)
    if mode.kind == "none":
        return 1.0
    a = np.concatenate([np.abs(np.asarray(w, dtype=np.float64)).ravel() for w in weights])
    a = a[a > 0]
    if a.size == 0:
        return 1.0
    ref = a.max() if mode.kind == "max" else np.percentile(a, mode.percentile)
    return float(q / ref) if ref > 0 else 1.0


def to_int(w: np.ndarray, scale: float, bits: int = 8,
           rounding: str = "nearest") -> tuple[np.ndarray, int]:
    """Integer weights and how many had to be clipped (saturated) to fit `bits`."""
    if rounding not in ROUNDINGS:
        raise InputError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    q = qmax(bits)
    x = np.asarray(w, dtype=np.float64) * scale
    near = np.round(x)
    # Weights that are already integers / scale (QAT exports) must not lose 1 to truncation
    # through float error: values within 1e-6 of an integer are that integer.
    x = np.where(np.abs(x - near) <= 1e-6 * np.maximum(1.0, np.abs(x)), near, x)
    r = np.trunc(x) if rounding == "trunc" else np.round(x)
    saturated = int(np.count_nonzero(np.abs(r) > q))
    return np.clip(r, -q, q).astype(np.int32), saturated


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
