"""Observations -> input spikes, on the host (the chip's input is a spike source).

Encoding (deterministic, so closed-loop runs are reproducible):
1. **Population coding with Gaussian receptive fields.** Each observation dimension d, clipped
   to its range [low_d, high_d], drives `n` neurons with centres evenly spaced over the range
   and width sigma = `width` x spacing: rate_k = exp(-((x - c_k) / sigma)^2 / 2) in [0, 1].
2. **Deterministic rate coding over T steps** (integrate-to-fire with a half-step phase):
   neuron k has emitted round((t + 1) * rate_k) spikes by the end of step t, i.e.
   spike_t = floor((t + 1) r + 1/2) - floor(t r + 1/2): evenly spaced, count = round(T r).
The input layer has D x n neurons (dimension-major); the same observation always gives the
same spikes, unlike the Poisson coding of the seed paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.settings import Limit


@dataclass(frozen=True)
class EncoderConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "neurons_per_dim": Limit(1, 1024), "width": Limit(0, 100, lo_open=True),
        "steps": Limit(1, 1000)}

    neurons_per_dim: int = 16
    width: float = 1.0  # sigma in units of centre spacing
    steps: int = 10  # T: timesteps per decision


class Encoder:
    """`encoder(obs (B, D)) -> spikes (B, T, D * n)` float32 tensor of 0/1."""

    def __init__(self, low: np.ndarray, high: np.ndarray, cfg: EncoderConfig = EncoderConfig()):
        if cfg.neurons_per_dim < 2:
            raise InputError(f"neurons_per_dim must be >= 2, got {cfg.neurons_per_dim}")
        if cfg.steps < 1:
            raise InputError(f"timesteps per decision must be >= 1, got {cfg.steps}")
        if cfg.width <= 0:
            raise InputError(f"receptive-field width must be > 0, got {cfg.width}")
        self.cfg = cfg
        self.low = torch.as_tensor(np.asarray(low), dtype=torch.float32)
        self.high = torch.as_tensor(np.asarray(high), dtype=torch.float32)
        n = cfg.neurons_per_dim
        frac = torch.linspace(0.0, 1.0, n)
        span = self.high - self.low
        self.centres = self.low[:, None] + span[:, None] * frac[None, :]  # (D, n)
        self.sigma = (cfg.width * span / (n - 1))[:, None]  # (D, 1)
        t = torch.arange(cfg.steps + 1, dtype=torch.float32)
        self._t = t  # 0..T

    @property
    def n_inputs(self) -> int:
        return int(self.low.numel()) * self.cfg.neurons_per_dim

    @property
    def steps(self) -> int:
        return self.cfg.steps

    def rates(self, obs) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.low.numel():
            raise InputError(f"observations have shape {tuple(x.shape)}; expected "
                             f"(batch, {self.low.numel()})")
        x = torch.nan_to_num(x).clamp(self.low, self.high)
        z = (x[:, :, None] - self.centres[None]) / self.sigma[None]
        return torch.exp(-0.5 * z * z).reshape(x.shape[0], -1)  # (B, D*n)

    def __call__(self, obs) -> torch.Tensor:
        r = self.rates(obs)
        counts = torch.floor(self._t[None, :, None] * r[:, None, :] + 0.5)  # (B, T+1, N)
        return counts[:, 1:] - counts[:, :-1]

    def numpy(self, obs: np.ndarray) -> np.ndarray:
        """The same spikes as `__call__`, computed in numpy (acting: no torch overhead)."""
        if not hasattr(self, "_np"):
            self._np = (self.low.numpy(), self.high.numpy(), self.centres.numpy()[None],
                        self.sigma.numpy()[None], self._t.numpy()[None, :, None])
        low, high, c, sig, t = self._np
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != low.size:
            raise InputError(f"observations have shape {x.shape}; expected (batch, {low.size})")
        x = np.clip(np.nan_to_num(x), low, high)
        z = (x[:, :, None] - c) / sig
        r = np.exp(np.float32(-0.5) * z * z).reshape(x.shape[0], 1, -1)
        counts = np.floor(t * r + np.float32(0.5))
        return counts[:, 1:] - counts[:, :-1]
