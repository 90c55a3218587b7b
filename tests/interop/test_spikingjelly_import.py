"""Graphs exported by SpikingJelly 2.0's own exporter give SpikingJelly's own spikes in spinnq.

Each network is built from SpikingJelly nodes (single-step mode), exported with
`spikingjelly.activation_based.nir_exchange.export_to_nir(net, x, dt=1e-4)`, run in
SpikingJelly on random spike input, and simulated by spinnq with
`convention="spikingjelly"`: every neuron layer agrees step for step (0 mismatches).
SpikingJelly differs from NIR's reading in two places: IFNode is written as `r = 1/dt` (an
ODE, dv/dt = r x) and spikes fire at v >= v_th. Hard reset only (its exporter refuses soft
reset), so the default `--reset zero` applies.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("spikingjelly", reason="pip install '.[interop]' (spikingjelly)")

from spikingjelly.activation_based import functional, neuron  # noqa: E402
from spikingjelly.activation_based.nir_exchange import export_to_nir  # noqa: E402

from spinnq.graph import SimConfig, from_nir, simulate  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
T, BATCH = 60, 3
nn = torch.nn

ARCHS = {
    "linear-lif-linear-if": (lambda: nn.Sequential(
        nn.Linear(6, 20), neuron.LIFNode(tau=2.0), nn.Linear(20, 5), neuron.IFNode()), (6,)),
    "lif-no-decay-input": (lambda: nn.Sequential(
        nn.Linear(6, 20), neuron.LIFNode(tau=3.0, decay_input=False), nn.Linear(20, 5),
        neuron.LIFNode(tau=1.7, v_threshold=0.3)), (6,)),
    "cubalif-x2": (lambda: nn.Sequential(
        nn.Linear(6, 20), neuron.CUBALIFNode(), nn.Linear(20, 5),
        neuron.CUBALIFNode(c_decay=0.3, v_decay=0.9)), (6,)),
    "conv-lif-avgpool-linear-if": (lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), neuron.LIFNode(tau=2.0), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(64, 5), neuron.IFNode()), (2, 8, 8)),
}


def build(name: str, scale: float = 3.0):
    make, shape = ARCHS[name]
    net = make()
    for m in net.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            m.weight.data *= scale
    return net, shape


def run_spikingjelly(net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """SpikingJelly's own simulation: spikes of every neuron node by spinnq's node name
    (nirtorch names Sequential index i as '_i')."""
    rec: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda mod, a, o, k=f"_{i}": rec.setdefault(k, []).append(o))
             for i, m in enumerate(net) if isinstance(m, neuron.BaseNode)]
    functional.reset_net(net)
    with torch.no_grad():
        for t in range(x.shape[1]):
            net(x[:, t])
    for h in hooks:
        h.remove()
    functional.reset_net(net)
    return {k: torch.stack(v, 1) for k, v in rec.items()}


def export(net, shape):
    return from_nir(export_to_nir(net, torch.zeros(1, *shape), dt=1e-4))


@pytest.mark.parametrize("name", list(ARCHS))
def test_spikingjelly_export_matches_spikingjelly_spike_for_spike(name):
    net, shape = build(name)
    x = (torch.rand(BATCH, T, *shape) < 0.3).float()
    ref = run_spikingjelly(net, x)
    g = export(net, shape)
    tr = simulate(g, x, SimConfig(convention="spikingjelly", record=tuple(ref)))
    mism = {k: int((tr.spikes[k] != r).sum()) for k, r in ref.items()}
    assert all(r.sum() > 0.01 * r.numel() for r in ref.values()), {
        k: int(r.sum()) for k, r in ref.items()}
    assert sum(mism.values()) == 0, mism
    if any(isinstance(m, neuron.IFNode) for m in net):  # r = 1/dt: NIR's reading differs
        plain = simulate(g, x, SimConfig(record=tuple(ref)))
        assert sum(int((plain.spikes[k] != r).sum()) for k, r in ref.items()) > 0


def test_spikingjelly_fires_at_the_threshold_itself():
    """Integer weights, IFNode threshold 2: v reaches exactly 2 all the time. SpikingJelly
    fires there (v >= th); so does spinnq's convention, and so does the chip."""
    net = nn.Sequential(nn.Linear(4, 6, bias=False), neuron.IFNode(v_threshold=2.0))
    net[0].weight.data = torch.randint(0, 2, (6, 4)).float()
    x = (torch.rand(2, 40, 4) < 0.5).float()
    ref = run_spikingjelly(net, x)["_1"]
    g = export(net, (4,))
    tr = simulate(g, x, SimConfig(convention="spikingjelly", record=("_1",)))
    assert ref.sum() > 10 and torch.equal(tr.spikes["_1"], ref)
    strict = simulate(g, x, SimConfig(convention="nir", record=("_1",)))
    assert not torch.equal(strict.spikes["_1"], ref)
    prog = compile(g, S2Config(convention="spikingjelly", weight_scale="none"))
    chip = emulate(prog, x).spikes["_1"][:, 1:]  # one step of latency, no bias
    assert torch.equal(chip, ref)
