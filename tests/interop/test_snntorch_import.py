"""Graphs exported by snnTorch 1.0's own exporter give snnTorch's own spikes in spinnq.

Each network is built in snnTorch, exported with `snntorch.export_nir.export_to_nir`, run in
snnTorch on random spike input, and simulated by spinnq with `convention="snntorch"`: every
spiking layer must agree step for step (0 mismatches), and the NIR default must *not*
(so the convention is what makes them agree, not luck).
"""

from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch import utils
from snntorch.export_nir import export_to_nir

from spinnq.errors import GraphError
from spinnq.graph import SimConfig, from_nir, simulate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

T, BATCH = 80, 3


def leaky(shape, beta=0.9, thr=1.0, **kw):
    """snnTorch's exporter needs per-neuron tensors (a scalar threshold breaks its LIF)."""
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr),
                     init_hidden=True, **kw)


def synaptic(shape, alpha=0.7, beta=0.85, thr=1.0, **kw):
    return snn.Synaptic(alpha=torch.full(shape, alpha), beta=torch.full(shape, beta),
                        threshold=torch.full(shape, thr), init_hidden=True, **kw)


ARCHS = {
    # name: (builder, input shape, reset mechanism)
    "linear-leaky-x2": (lambda: torch.nn.Sequential(
        torch.nn.Linear(6, 20), leaky((20,)), torch.nn.Linear(20, 5),
        leaky((5,), beta=0.8, thr=0.7)), (6,), "subtract"),
    "linear-leaky-reset-zero": (lambda: torch.nn.Sequential(
        torch.nn.Linear(6, 16, bias=False), leaky((16,), reset_mechanism="zero"),
        torch.nn.Linear(16, 4), leaky((4,), reset_mechanism="zero")), (6,), "zero"),
    "linear-synaptic-x2": (lambda: torch.nn.Sequential(
        torch.nn.Linear(6, 20), synaptic((20,)), torch.nn.Linear(20, 5),
        synaptic((5,), alpha=0.5, beta=0.9)), (6,), "subtract"),
    "conv-leaky-avgpool-flatten-linear": (lambda: torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, stride=2, padding=1), leaky((4, 5, 5)),
        torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 3), leaky((3,))),
        (2, 10, 10), "subtract"),
    "recurrent-rleaky": (lambda: torch.nn.Sequential(
        torch.nn.Linear(5, 8),
        snn.RLeaky(beta=torch.full((8,), 0.85), threshold=torch.ones(8), linear_features=8,
                   init_hidden=True),
        torch.nn.Linear(8, 3), leaky((3,))), (5,), "subtract"),
    "recurrent-rsynaptic": (lambda: torch.nn.Sequential(
        torch.nn.Linear(5, 8),
        snn.RSynaptic(alpha=torch.full((8,), 0.7), beta=torch.full((8,), 0.85),
                      threshold=torch.ones(8), linear_features=8, init_hidden=True),
        torch.nn.Linear(8, 3), synaptic((3,))), (5,), "subtract"),
}


def build(name: str) -> tuple[torch.nn.Sequential, tuple, str]:
    make, shape, reset = ARCHS[name]
    net = make()
    for m in net.modules():  # stronger weights: every layer spikes a fair amount
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
            m.weight.data *= 3
    return net, shape, reset


def run_snntorch(net: torch.nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """snnTorch's own simulation; spikes of every neuron layer by its Sequential index."""
    rec: dict[str, list] = {}
    for idx, m in enumerate(net):
        if isinstance(m, snn.SpikingNeuron):
            m.register_forward_hook(
                lambda mod, i, o, k=str(idx): rec.setdefault(k, []).append(
                    o[0] if isinstance(o, tuple) else o))
    utils.reset(net)
    with torch.no_grad():
        for t in range(x.shape[1]):
            net(x[:, t])
    return {k: torch.stack(v, 1) for k, v in rec.items()}


def node_for(layer: str, graph) -> str:
    """nirtorch names a layer by its index; recurrent layers become '<index>.lif'."""
    return layer if layer in graph.nodes else f"{layer}.lif"


@pytest.mark.parametrize("name", list(ARCHS))
def test_snntorch_export_matches_snntorch_spike_for_spike(name):
    net, shape, reset = build(name)
    nir_graph = export_to_nir(net, torch.randn(1, *shape), ignore_dims=[0])
    x = (torch.rand(BATCH, T, *shape) < 0.3).float()
    ref = run_snntorch(net, x)
    g = from_nir(nir_graph)
    record = tuple(node_for(k, g) for k in ref)
    tr = simulate(g, x, SimConfig(convention="snntorch", reset=reset, record=record))
    total = 0
    for layer, spikes in ref.items():
        ours = tr.spikes[node_for(layer, g)]
        assert ours.shape == spikes.shape
        assert int((ours != spikes).sum()) == 0, f"layer {layer}"
        total += int(spikes.sum())
    assert total > 0.02 * sum(s.numel() for s in ref.values())  # a test that could fail
    if reset == "subtract":  # NIR's immediate reset differs: the convention is needed
        plain = simulate(g, x, SimConfig(reset=reset, record=record))
        assert sum(int((plain.spikes[node_for(k, g)] != s).sum()) for k, s in ref.items())


def test_snntorch_membrane_trace_is_snntorchs_unreset_mem():
    """The recorded v under convention snntorch is snnTorch's `mem` itself, bit for bit."""
    lif = snn.Leaky(beta=torch.full((7,), 0.9), threshold=torch.ones(7), init_hidden=False)
    net = torch.nn.Sequential(torch.nn.Linear(4, 7), leaky((7,)))
    net[0].weight.data *= 3
    g = from_nir(export_to_nir(net, torch.randn(1, 4), ignore_dims=[0]))
    x = (torch.rand(2, 50, 4) < 0.4).float()
    mem = torch.zeros(2, 7)
    lif.beta, lif.threshold = net[1].beta, net[1].threshold
    mems = []
    with torch.no_grad():
        for t in range(50):
            _, mem = lif(net[0](x[:, t]), mem)
            mems.append(mem)
    tr = simulate(g, x, SimConfig(convention="snntorch", reset="subtract"))
    assert torch.equal(tr.v["1"], torch.stack(mems, 1))


def test_snntorch_if_neuron_beta_one_is_refused_with_a_clear_error():
    """snnTorch has no IF export: Leaky(beta=1) is written as tau = inf, which spinnq refuses
    by name instead of simulating NaNs."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), leaky((4,), beta=1.0))
    with pytest.warns(RuntimeWarning):  # snnTorch's own 1/(1-beta)
        nir_graph = export_to_nir(net, torch.randn(1, 3), ignore_dims=[0])
    with pytest.raises(GraphError, match="node '1'.*NaN or infinite"):
        from_nir(nir_graph)
