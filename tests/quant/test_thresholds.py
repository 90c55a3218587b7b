"""Adaptive threshold scaling (paper B): thresholds learnt per population with the weights stay
what the chip represents (finite, positive float32, within THRESHOLD_RANGE of the start), the
exported graph compiles to exactly the module's thresholds, and the module still equals the
emulator spike for spike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spinnq.graph import read_graph
from spinnq.quant.finetuning import THRESHOLD_RANGE, ChipNet
from spinnq.s2 import S2Config, compile
from spinnq.s2.emulate import emulate

GRAPHS = {"braille_noDelay_bias_zero": ("zero", "nir", 15),
          "cnn_sinabs": ("subtract", "nir", 10),
          "lif_norse": ("subtract", "spikingjelly", 20)}  # an inclusive (v >= th) convention


def trained(g, cfg: S2Config, T: int, lr: float) -> tuple[ChipNet, torch.Tensor]:
    """A module whose thresholds (and weights) moved by training through the surrogate."""
    torch.manual_seed(0)
    net = ChipNet(g, cfg, learn_thresholds=True)
    opt = torch.optim.Adam([{"params": [p.weight for p in net.projs if p.weight is not None],
                             "lr": 1e-3}, {"params": [net.log_k], "lr": lr}])
    x = (torch.rand(3, T, *g.input_shape) < 0.3).float()
    for _ in range(3):
        loss = -net.scores(x).sum()  # more spikes: pushes thresholds down
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.clamp_thresholds()
    return net, x


@pytest.mark.parametrize("name", list(GRAPHS))
def test_learnt_thresholds_are_representable_and_the_module_equals_the_emulator(nir_paper,
                                                                                name):
    reset, convention, T = GRAPHS[name]
    g = read_graph(nir_paper / f"{name}.nir")
    cfg = S2Config(reset=reset, convention=convention, weight_scale="p99.9")
    net, x = trained(g, cfg, T, lr=0.05)
    factors = net.threshold_factors()
    assert factors and any(abs(k - 1) > 0.01 for k in factors.values())  # they moved
    assert all(1 / THRESHOLD_RANGE <= k <= THRESHOLD_RANGE for k in factors.values())
    out = net.export()
    prog = compile(out, cfg.with_(graph_scales=True))
    for n in net.th_pops:
        th = prog.populations[n].params["threshold"]
        assert th.dtype == np.float32 and np.all(np.isfinite(th)) and np.all(th > 0)
        with torch.no_grad():
            assert np.array_equal(net.threshold(n).numpy(), th), n
    assert net.threshold_factors(out) == pytest.approx(factors, rel=1e-5)
    with torch.no_grad():
        spikes, _ = net(x)
    run = emulate(prog, x.numpy(), record=list(prog.populations))
    bad = {n: int((spikes[n].reshape(run.spikes[n].shape) != run.spikes[n]).sum())
           for n in net.order}
    assert sum(int(run.spikes[n].sum()) for n in net.order) > 0
    assert bad == dict.fromkeys(bad, 0)


def test_thresholds_are_clamped_to_the_range(nir_paper):
    g = read_graph(nir_paper / "lif_norse.nir")
    net, _ = trained(g, S2Config(reset="subtract"), 20, lr=5.0)  # huge steps
    lim = math.log(THRESHOLD_RANGE)
    assert float(net.log_k.detach().abs().max()) == pytest.approx(lim)
    prog = compile(net.export(), S2Config(reset="subtract", graph_scales=True))
    base = compile(g, S2Config(reset="subtract"))
    for n in net.th_pops:
        ratio = prog.populations[n].params["threshold"] / base.populations[n].params["threshold"]
        assert np.all(ratio <= THRESHOLD_RANGE * (1 + 1e-6))
        assert np.all(ratio >= 1 / THRESHOLD_RANGE * (1 - 1e-6))
