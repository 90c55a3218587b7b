"""From the float Q-network to the chip's integers, through `spinnq.quant` (no private copy).

- PTQ: `spinnq.quant.calibrate` on calibration states without labels, read-out `membrane`:
  each candidate percentile is deployed on the emulated chip and scored by how often its
  greedy action (argmax of the read-out voltage after the decision's steps) equals the float
  network's; the best wins (ties: the larger percentile). Thresholds follow the weights.
- QAT: `spinnq.quant.finetune` distils the float Q-values into the PTQ graph on the chip's
  own arithmetic (MSE on Q plus `advantage_weight` x MSE on the action gaps Q - mean Q,
  which decide the greedy action; straight-through rounding, the PTQ scales fixed), keeping
  the epoch with the best greedy agreement on held-out states -- the PTQ graph if none beats
  it. Distillation, not more DQN: it cannot unlearn the task.
Both graphs carry their scales (`w_scale` metadata) and run settings, so deployment
(`spinnq.resolver.resolve(graph)`: graph scales) uses exactly the integers that were scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from spinnq.graph.model import Graph
from spinnq.quant.calibration import Calibration, calibrate
from spinnq.quant.finetuning import FinetuneResult, finetune
from spinnq.resolver import resolve
from spinnq.settings import PERCENTILE, Limit
from spinnq.tasks.control.encoder import Encoder


@dataclass(frozen=True)
class FinetuneConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "percentiles": Limit(pattern=PERCENTILE.pattern, min_len=1),
        "qat_epochs": Limit(0, 10_000), "qat_batch": Limit(1, 1 << 16),
        "qat_lr": Limit(0, 10, lo_open=True), "calib_states": Limit(1, 1 << 20),
        "calib_episodes": Limit(1, 100_000)}

    percentiles: tuple[str, ...] = ("max", "p99.99", "p99.9", "p99.5", "p99")
    qat_epochs: int = 8
    qat_batch: int = 256
    qat_lr: float = 0.05  # in integer weight steps per Adam update
    advantage_weight: float = 10.0  # weight of the action-gap term (the greedy choice)
    calib_states: int = 4096  # at most this many visited states calibrate and train QAT
    # Greedy float episodes played to collect the visited states. Eight CartPole episodes
    # give 4000 states; eight Acrobot episodes (~80 steps each) only ~650, of which QAT
    # holds out a quarter to pick its epoch: a pick among ~160 states is noise.
    calib_episodes: int = 8


def quantize(float_graph: Graph, spikes: torch.Tensor, dt: float, cfg: FinetuneConfig,
             seed: int, bits: int = 8) -> tuple[Calibration, FinetuneResult]:
    """(PTQ calibration, QAT result) of the float Q-network graph on calibration spikes, at
    `bits` weight bits (QAT trains with the chip's `bits`-bit arithmetic; both graphs are
    stamped with it)."""
    # the exported graph's own settings (`spinnq.resolver`), as `spinnq quantize` reads them
    rs = resolve(float_graph, dt=dt, bits=bits)
    s2, sim = rs.s2(), rs.sim()
    x = spikes.numpy().astype(np.float32)
    cal = calibrate(float_graph, x, bits=bits, percentiles=cfg.percentiles, readout="membrane",
                    cfg=s2, sim=sim, labels=False)
    ft = finetune(cal.graph, x, epochs=cfg.qat_epochs, lr=cfg.qat_lr, batch=cfg.qat_batch,
                  readout="membrane", teacher=float_graph, cfg=s2, sim=sim, seed=seed,
                  gap_weight=cfg.advantage_weight)
    return cal, ft


def calibration_spikes(states: np.ndarray, enc: Encoder, n: int, seed: int) -> torch.Tensor:
    """Encoded calibration states: visited states (from greedy float rollouts), sampled."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(states), size=min(n, len(states)), replace=False)
    return enc(states[idx])


__all__ = ["FinetuneConfig", "calibration_spikes", "quantize"]
