"""A fast path for training and acting with the Q-network: the same numbers as
`SpikingSequential.forward` (tested), a fraction of the Python overhead.

DQN on two shared CPU cores is dominated by per-op overhead, not FLOPs: the generic modules
record ~10 autograd nodes per neuron layer and timestep. Here a whole LIF layer over T steps
is one autograd node (`LIFScan`): the forward scan runs without autograd, the backward is
the exact BPTT of `spinnq.nn.LIF` (fast-sigmoid surrogate, reset detached):
    dL/dv_t = dL/ds_t * 1/(slope |v_t - thr| + 1)^2 + beta * dL/dv_{t+1},   dL/dx_t = dL/dv_t
The beta = 1 read-out is a sum over time followed by the read-out weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spinnq.nn import LI, LIF, QuantLinear, SpikingSequential
from spinnq.nn.functional import lif_scan_np


class LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, beta: float, thr: float, slope: float) -> torch.Tensor:
        spk, vpre = lif_scan_np(x.detach().numpy(), beta, thr)
        ctx.save_for_backward(torch.from_numpy(vpre))
        ctx.beta, ctx.thr, ctx.slope = beta, thr, slope
        return torch.from_numpy(spk)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (vpre,) = ctx.saved_tensors
        vp = vpre.numpy()
        gs = g.numpy() / (ctx.slope * np.abs(vp - vp.dtype.type(ctx.thr)) + 1.0) ** 2
        gs = gs.astype(vp.dtype, copy=False)
        beta = vp.dtype.type(ctx.beta)
        for t in range(gs.shape[1] - 2, -1, -1):  # in place: gs[t] += beta * gs[t+1]
            gs[:, t] += beta * gs[:, t + 1]
        return torch.from_numpy(gs), None, None, None


def _weight(layer: nn.Linear) -> torch.Tensor:
    return layer.quant_weight() if isinstance(layer, QuantLinear) else layer.weight


def check_supported(model: SpikingSequential) -> None:
    """The fast path knows exactly the Q-network shape of `model.build`."""
    kinds = [type(m) for m in model]
    ok = (len(kinds) >= 2 and kinds[-1] is LI and model[-1].beta == 1.0
          and all(issubclass(k, nn.Linear) for k in kinds[0::2])
          and all(k is LIF for k in kinds[1:-1:2])
          and all(m.bias is None for m in model[0::2])
          and all(m.reset == "subtract" and m.detach_reset for m in model[1:-1:2]))
    if not ok:
        raise TypeError("fast path: expected (Linear, LIF)* Linear LI(beta=1), no biases")


def q_values(model: SpikingSequential, spikes: torch.Tensor) -> torch.Tensor:
    """(B, T, N) input spikes -> (B, actions), equal to `model(spikes)[:, -1]`."""
    x = spikes
    layers = list(model)
    for i in range(0, len(layers) - 2, 2):
        lin, lif = layers[i], layers[i + 1]
        x = LIFScan.apply(torch.matmul(x, _weight(lin).t()), lif.beta, lif.threshold, lif.slope)
    return torch.matmul(x.sum(1), _weight(layers[-2]).t())


def numpy_weights(model: SpikingSequential) -> list:
    """[(W (out, in) float32, beta, thr) per LIF layer] + [W_readout]: for `act_np`."""
    layers = list(model)
    with torch.no_grad():
        ws = [_weight(m).detach().numpy().astype(np.float32).T.copy() for m in layers[0::2]]
    return [(ws[k], layers[2 * k + 1].beta, layers[2 * k + 1].threshold)
            for k in range(len(ws) - 1)] + [ws[-1]]


def act_np(weights: list, spikes: np.ndarray) -> np.ndarray:
    """Q-values from numpy weights (see `numpy_weights`): acting without torch overhead."""
    x = spikes
    for w, beta, thr in weights[:-1]:
        x, _ = lif_scan_np(x @ w, beta, thr, keep_v=False)
    return x.sum(1) @ weights[-1]


@torch.no_grad()
def act_q(model: SpikingSequential, spikes: torch.Tensor) -> torch.Tensor:
    """Inference only (no autograd at all)."""
    return torch.from_numpy(act_np(numpy_weights(model), spikes.numpy().astype(np.float32)))
