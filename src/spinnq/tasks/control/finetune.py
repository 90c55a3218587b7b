"""From the float Q-network to the chip's integers: PTQ and hardware-aware fine-tuning (QAT).

Both produce a `SpikingSequential` whose Linear layers are `spinnq.nn.QuantLinear`: the
forward pass uses exactly the integers the compiler will load (`quant.formats.fake_quant`,
one scale per target population, round to nearest, clipped to +-127), and the exported NIR
carries that scale as `metadata["w_scale"]` so deployment (`S2Config(graph_scales=True)`)
uses it as it is. Thresholds stay in NIR units in the graph; the compiler multiplies them by
the same scale ("threshold scaling"), so the quantised network's neurons see the same
threshold relative to their integer input as the float ones.

- PTQ: the scale is q / percentile(|w|, p); p is chosen from a sweep as the value whose
  greedy actions agree most often with the float network on calibration states (ties: the
  larger p). No training.
- QAT: start from the PTQ network and distil the float Q-values on calibration states
  (MSE on Q plus a weighted MSE on the action gaps Q - mean Q, which decide the greedy
  action; straight-through gradients through the rounding, scale following the weights),
  keeping the best agreement seen (the PTQ start if nothing beats it). Distillation, not
  more DQN: it cannot unlearn the task.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from spinnq.nn import SpikingSequential
from spinnq.settings import PERCENTILE, Limit
from spinnq.tasks.control import fast
from spinnq.tasks.control.encoder import Encoder
from spinnq.tasks.control.model import quantized, set_scale_mode


@dataclass(frozen=True)
class FinetuneConfig:
    LIMITS: ClassVar[dict[str, Limit]] = {
        "percentiles": Limit(pattern=PERCENTILE.pattern, min_len=1),
        "qat_steps": Limit(0, 1_000_000), "qat_batch": Limit(1, 1 << 16),
        "qat_lr": Limit(0, 1, lo_open=True), "calib_states": Limit(1, 1 << 20)}

    percentiles: tuple[str, ...] = ("max", "p99.99", "p99.9", "p99.5", "p99")
    qat_steps: int = 150
    qat_batch: int = 256
    qat_lr: float = 5e-5
    advantage_weight: float = 10.0  # weight of the action-gap term (the greedy choice)
    calib_states: int = 4096


def agreement(model_a, model_b, spikes: torch.Tensor) -> float:
    """Share of states on which both networks choose the same (greedy) action."""
    qa, qb = fast.act_q(model_a, spikes), fast.act_q(model_b, spikes)
    return float((qa.argmax(1) == qb.argmax(1)).float().mean())


def ptq(model: SpikingSequential, spikes: torch.Tensor, cfg: FinetuneConfig
        ) -> tuple[SpikingSequential, str, dict[str, float]]:
    """(quantised copy, chosen scale mode, agreement per scale mode)."""
    scores = {}
    for mode in cfg.percentiles:
        q = quantized(model, mode)
        scores[mode] = agreement(model, q, spikes)
    best = max(cfg.percentiles, key=lambda m: (scores[m], -cfg.percentiles.index(m)))
    return quantized(model, best), best, scores


def qat(float_model: SpikingSequential, start: SpikingSequential, spikes: torch.Tensor,
        cfg: FinetuneConfig, seed: int) -> tuple[SpikingSequential, list[float]]:
    """Distil `float_model`'s Q-values into the fake-quant network `start` (a copy is
    trained; it keeps PTQ's scale mode, the scale follows the trained weights). Returns the
    network with the best agreement (checked every 50 steps) and the agreement history."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        target = fast.act_q(float_model, spikes)
    model = copy.deepcopy(start)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.qat_lr)
    best = copy.deepcopy(model)
    best_agree = agreement(float_model, model, spikes)
    hist = [best_agree]
    n = spikes.shape[0]
    for step in range(1, cfg.qat_steps + 1):
        idx = torch.randint(0, n, (min(cfg.qat_batch, n),), generator=g)
        q = fast.q_values(model, spikes[idx])
        t = target[idx]
        loss = torch.nn.functional.mse_loss(q, t) + cfg.advantage_weight * \
            torch.nn.functional.mse_loss(q - q.mean(1, keepdim=True), t - t.mean(1, keepdim=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.qat_steps:
            a = agreement(float_model, model, spikes)
            hist.append(a)
            if a > best_agree:
                best_agree, best = a, copy.deepcopy(model)
    return best, hist


def calibration_spikes(states: np.ndarray, enc: Encoder, n: int, seed: int) -> torch.Tensor:
    """Encoded calibration states: visited states (from greedy float rollouts), sampled."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(states), size=min(n, len(states)), replace=False)
    return enc(states[idx])


__all__ = ["FinetuneConfig", "agreement", "calibration_spikes", "ptq", "qat",
           "set_scale_mode"]
