"""Networks trained *outside* spinnq, as a user brings them: snnTorch on scikit-learn's digits
(rate-coded spikes), exported with snnTorch's own `export_to_nir`."""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir


def leaky(shape, beta: float = 0.9, thr: float = 1.0):
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr),
                     init_hidden=True)


def mlp(hidden: int = 32, n_in: int = 64, classes: int = 10) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), leaky((hidden,)),
                               torch.nn.Linear(hidden, classes), leaky((classes,)))


def convnet(channels: int = 4, classes: int = 10) -> torch.nn.Sequential:
    """8x8 digits as a 1x8x8 image: conv 3x3 -> LIF -> AvgPool2d(2) -> dense -> LIF."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, channels, 3, padding=1), leaky((channels, 8, 8)),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(channels * 16, classes), leaky((classes,)))


def with_gain(net: torch.nn.Sequential, neurons: list[int], gain: float, layer: int = 0
              ) -> None:
    """A few neurons (or conv channels) with a large gain: the incoming weights and bias of
    weight layer `layer` of the Sequential, and the threshold of the neurons after it, x
    `gain` -- the same float network up to float rounding, but the layer's integer scale is
    now set by a few weights (as after training with learnable thresholds)."""
    with torch.no_grad():
        net[layer].weight[neurons] *= gain
        net[layer].bias[neurons] *= gain
        net[layer + 1].threshold[neurons] *= gain
        rec = getattr(net[layer + 1], "recurrent", None)  # RLeaky: its inputs from the layer too
        if rec is not None:
            rec.weight[neurons] *= gain


def run(net: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """snnTorch's own forward over time: (B, T, *in) -> output spikes (B, T, classes)."""
    from snntorch import utils

    utils.reset(net)
    out = []
    for t in range(x.shape[1]):
        out.append(net(x[:, t]))
    return torch.stack(out, 1)


def train(net, x: np.ndarray, y: np.ndarray, epochs: int = 8, lr: float = 5e-3,
          batch: int = 64, seed: int = 0) -> torch.nn.Sequential:
    """Cross-entropy on output spike counts (snnTorch's usual rate read-out)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(run(net, xt[idx]).sum(1), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


@torch.no_grad()
def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    counts = run(net, torch.from_numpy(x)).sum(1)
    return float((counts.argmax(1).numpy() == y).mean())


def export(net, input_shape: tuple[int, ...]):
    return export_to_nir(net, torch.zeros(1, *input_shape), ignore_dims=[0])
