"""A small network trained outside spinnq (plain torch, NIR's LIF update written out by hand)
on real labelled data (scikit-learn digits, rate-coded), exported to NIR with `nir` itself."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from tests.conftest import digits_spikes

DT, TAU = 1e-4, 1e-3  # beta = 1 - dt/tau = 0.9; r = tau/dt makes the input gain 1
STEPS = 12


class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v > 0).float()

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        return g / (1 + 10 * v.abs()) ** 2  # fast sigmoid


def lif_forward(x: torch.Tensor, layers: list[torch.nn.Linear]) -> torch.Tensor:
    """NIR's forward-Euler LIF, reset by subtraction: v <- (1-a) v + a r I, z = v > 1."""
    a = DT / TAU
    B, T = x.shape[:2]
    v = [torch.zeros(B, lay.out_features) for lay in layers]
    out = []
    for t in range(T):
        s = x[:, t]
        for i, lay in enumerate(layers):
            v[i] = (1 - a) * v[i] + lay(s)  # a * r = 1
            s = Spike.apply(v[i] - 1.0)
            v[i] = v[i] - s
        out.append(s)
    return torch.stack(out, 1)


def train_digits_net(steps: int = STEPS, hidden: int = 32, epochs: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = digits_spikes(steps=steps, seed=seed)
    layers = [torch.nn.Linear(64, hidden, bias=False), torch.nn.Linear(hidden, 10, bias=False)]
    opt = torch.optim.Adam([p for lay in layers for p in lay.parameters()], lr=1e-2)
    X, Y = torch.as_tensor(xtr), torch.as_tensor(ytr)
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 128):
            idx = perm[i:i + 128]
            counts = lif_forward(X[idx], layers).sum(1)
            loss = torch.nn.functional.cross_entropy(counts, Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = float((lif_forward(torch.as_tensor(xte), layers).sum(1).argmax(1).numpy()
                     == yte).mean())

    def lif(n):
        return nir.LIF(tau=np.full(n, TAU), r=np.full(n, TAU / DT), v_leak=np.zeros(n),
                       v_threshold=np.ones(n))

    w1, w2 = (lay.weight.detach().numpy().astype(np.float32) for lay in layers)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([64])),
                            "fc1": nir.Linear(weight=w1), "lif1": lif(hidden),
                            "fc2": nir.Linear(weight=w2), "lif2": lif(10),
                            "output": nir.Output(output_type=np.array([10]))},
                     edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
                            ("lif2", "output")],
                     metadata={"spinnq.reset": "subtract", "spinnq.dt": DT})
    return g, (xtr, ytr, xte, yte), acc


@pytest.fixture(scope="session")
def digits_net(tmp_path_factory) -> tuple[Path, Path, float]:
    """(graph.nir, data.npz with x/y = the test split, float accuracy in torch)."""
    d = tmp_path_factory.mktemp("digits_net")
    g, (xtr, ytr, xte, yte), acc = train_digits_net()
    nir.write(d / "net.nir", g)
    np.savez(d / "data.npz", x=xte[:200].astype(np.uint8), y=yte[:200])
    return d / "net.nir", d / "data.npz", acc
