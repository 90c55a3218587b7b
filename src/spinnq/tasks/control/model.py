"""The spiking Q-network: encoded spikes -> LIF hidden layers -> non-spiking read-out.

    input (D*n spikes) -> Linear -> LIF -> Linear -> LIF -> ... -> Linear -> I (beta = 1)

Q(s, a) is the read-out membrane after the T steps of one decision: with beta = 1 the
read-out integrates W s_t over the window, so extra steps on the chip (its one step of
latency per layer) do not change the value. No biases anywhere: a bias becomes a constant
input on the chip that also acts during the latency steps, where the float model has none,
so a bias-free network is the one whose on-chip Q-values equal the float ones up to
quantisation. Hidden LIF layers reset by subtraction and train with a fast-sigmoid
surrogate gradient (`spinnq.nn.LIF`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import nir
import numpy as np
import torch
from torch import nn

from spinnq.nn import LI, LIF, QuantLinear, SpikingSequential, to_nir
from spinnq.settings import Limit


@dataclass(frozen=True)
class NetConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "hidden": Limit(1, 4096, min_len=1), "beta": Limit(0, 1),
        "threshold": Limit(0, 1e6, lo_open=True), "slope": Limit(0, 1e6, lo_open=True),
        "init_rate": Limit(0, 1, lo_open=True, hi_open=True)}

    hidden: tuple[int, ...] = (128, 128)
    beta: float = 0.9
    threshold: float = 1.0
    slope: float = 5.0
    init_rate: float = 0.15  # data-driven init: hidden layers fire at about this rate


def build(n_in: int, n_actions: int, cfg: NetConfig = NetConfig()) -> SpikingSequential:
    layers: list[nn.Module] = []
    prev = n_in
    for h in cfg.hidden:
        layers += [nn.Linear(prev, h, bias=False),
                   LIF(beta=cfg.beta, threshold=cfg.threshold, reset="subtract",
                       slope=cfg.slope)]
        prev = h
    layers += [nn.Linear(prev, n_actions, bias=False), LI(beta=1.0)]
    return SpikingSequential(*layers)


def q_values(model: nn.Module, spikes: torch.Tensor) -> torch.Tensor:
    """(B, T, N) input spikes -> (B, actions): the read-out membrane at the last step."""
    return model(spikes)[:, -1]


@torch.no_grad()
def calibrate_init(model: SpikingSequential, spikes: torch.Tensor, rate: float) -> None:
    """Scale each hidden weight layer so its LIF layer fires at about `rate` on `spikes`
    (typical encoded states): a freshly initialised net otherwise stays silent on sparse
    population-coded input and gets no surrogate gradient."""
    x = spikes
    for i, layer in enumerate(model):
        if isinstance(layer, nn.Linear) and i + 1 < len(model) and isinstance(model[i + 1], LIF):
            lif = model[i + 1]
            y = SpikingSequential(layer)(x)
            lo, hi = 0.01, 100.0
            for _ in range(30):  # bisection on the gain (firing rate is monotone in it)
                g = (lo * hi) ** 0.5
                r = lif(y * g).mean().item()
                lo, hi = (g, hi) if r < rate else (lo, g)
            layer.weight.mul_((lo * hi) ** 0.5)
            x = SpikingSequential(layer, lif)(x)
        elif isinstance(layer, nn.Linear):
            x = SpikingSequential(layer)(x)


def quantized(model: SpikingSequential, scale_mode: str = "max", bits: int = 8
              ) -> SpikingSequential:
    """A copy whose Linear layers are chip fake-quant layers (same float weights)."""
    q = copy.deepcopy(model)
    for i, layer in enumerate(q):
        if isinstance(layer, nn.Linear) and not isinstance(layer, QuantLinear):
            ql = QuantLinear(layer.in_features, layer.out_features, bias=False, bits=bits,
                             scale_mode=scale_mode)
            ql.weight.data.copy_(layer.weight.data)
            q[i] = ql
    return q


def export(model: SpikingSequential, n_in: int, dt: float) -> nir.NIRGraph:
    n_layers = sum(isinstance(m, nn.Linear) for m in model)
    names, k = [], 0
    for m in model:
        if isinstance(m, nn.Linear):
            k += 1
            names.append(f"fc{k}")
        else:
            names.append("readout" if k == n_layers else f"lif{k}")
    return to_nir(model, (n_in,), dt=dt, names=names)


def n_params(model: nn.Module) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
