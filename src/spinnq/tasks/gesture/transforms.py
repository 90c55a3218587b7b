"""Events -> input frames, as in the seed: denoise, downsample 128x128 -> 32x32, bin in time,
cap the length, binarise (the chip's input is a spike source: one spike or none per pixel and
step).

The three event transforms reproduce tonic's (`Denoise`, `Downsample`, `ToFrame` with
`time_window`) exactly -- the tests compare them event for event -- but vectorised in numpy:
tonic's denoise is a Python loop per event (seconds per real recording), and the synthetic
default must not need tonic (GPL, optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from spinnq.errors import InputError
from spinnq.settings import Limit


@dataclass(frozen=True)
class FrameConfig:
    """How recordings become frames (B, T, 2, size, size)."""

    LIMITS: ClassVar[dict[str, Limit]] = {
        "size": Limit(1, 512), "sensor": Limit(1, 4096), "bin_ms": Limit(0, 1e4, lo_open=True),
        "steps": Limit(1, 100_000), "denoise_us": Limit(0, 1e9)}

    size: int = 32  # output width = height
    sensor: int = 128  # input width = height
    bin_ms: float = 20.0  # time bin per step (the seed: 1 ms)
    steps: int = 30  # frames kept per recording (the seed: about 600)
    denoise_us: float = 10_000.0  # tonic Denoise filter_time (0: off)
    binary: bool = True  # clip counts to 0/1 (spike input)

    def __post_init__(self):
        if self.sensor % self.size:
            raise InputError(f"frame size {self.size} must divide the sensor size {self.sensor}")
        if self.steps < 1 or self.bin_ms <= 0:
            raise InputError(f"need steps >= 1 and bin_ms > 0, got {self.steps}, {self.bin_ms}")


def denoise(events: np.ndarray, filter_time: float) -> np.ndarray:
    """tonic's `denoise_numpy`, vectorised: keep an event if one of its 4 neighbours had an
    event (earlier in the stream) less than `filter_time` before it. Like tonic, every pixel
    starts as if it had fired at t = 0 and the grid is (max x + 1) x (max y + 1)."""
    n = len(events)
    if n == 0 or filter_time <= 0:
        return events
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.float64)
    w, h = int(x.max()) + 1, int(y.max()) + 1
    pix = x * h + y
    idx = np.arange(n)
    order = np.lexsort((idx, pix))  # by pixel, then stream order
    key = pix[order] * n + idx[order]
    keep = np.zeros(n, dtype=bool)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nx, ny = x + dx, y + dy
        valid = (nx >= 0) & (nx < w) & (ny >= 0) & (ny < h)
        q = nx * h + ny
        # the last event at pixel q with stream index <= i (tonic updates its own pixel first,
        # and a neighbour is another pixel, so "< i" and "<= i" agree)
        pos = np.searchsorted(key, q * n + idx, side="right") - 1
        prev_ok = pos >= 0
        posc = np.clip(pos, 0, n - 1)
        same = prev_ok & (pix[order][posc] == q)
        last_t = np.where(same, t[order][posc], 0.0)  # never fired: memory = filter_time
        keep |= valid & (last_t + filter_time > t)
    return events[keep]


def downsample(events: np.ndarray, factor: float) -> np.ndarray:
    """tonic's `Downsample(spatial_factor=factor)`: coordinates multiplied and truncated back
    into their integer dtype (events are kept, several land on one pixel)."""
    out = events.copy()
    out["x"] = (events["x"] * factor).astype(events["x"].dtype)
    out["y"] = (events["y"] * factor).astype(events["y"].dtype)
    return out


def to_frames(events: np.ndarray, size: int, bin_us: float, steps: int,
              t0: float | None = None) -> np.ndarray:
    """Event counts per (step, polarity, y, x): tonic's ToFrame(time_window=bin_us) layout
    (T, P, H, W) with the recording start as t0, cut or zero-padded to `steps` frames."""
    frames = np.zeros((steps, 2, size, size), dtype=np.int32)
    if len(events) == 0:
        return frames
    start = events["t"][0] if t0 is None else t0
    b = ((events["t"] - start) // bin_us).astype(np.int64)
    ok = (b >= 0) & (b < steps) & (events["x"] < size) & (events["y"] < size)
    np.add.at(frames, (b[ok], events["p"][ok].astype(np.int64), events["y"][ok].astype(np.int64),
                       events["x"][ok].astype(np.int64)), 1)
    return frames


def events_to_frames(events: np.ndarray, cfg: FrameConfig) -> np.ndarray:
    """The whole chain for one recording -> (steps, 2, size, size) uint8."""
    ev = denoise(events, cfg.denoise_us)
    ev = downsample(ev, cfg.size / cfg.sensor)
    f = to_frames(ev, cfg.size, cfg.bin_ms * 1000.0, cfg.steps)
    return (np.minimum(f, 1) if cfg.binary else np.minimum(f, 255)).astype(np.uint8)
