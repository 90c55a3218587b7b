"""Graphs spinnq writes load in snnTorch's and Norse's own importers and spike the same there.

spinnq model (`spinnq.nn`) -> `to_nir` -> `write_graph` (float) or `s2.export.export_graph`
(the chip's integer weights, thresholds scaled) -> `.nir` file -> `nir.read` ->
`snntorch.import_nir.import_from_nir` / `norse.torch.from_nir(dt=1e-4)` -> the framework runs
it; spinnq simulates the same file: every neuron layer agrees spike for spike.

What each importer needs, found here:
* snnTorch's importer always builds reset-to-zero neurons (reset_delay=False): spinnq's
  `--reset zero` reading. It has no SumPool2d (conv nets here end in Flatten).
* Norse's importer ignores r (it only warns): `conventions.fold_r` moves r into the weights
  first. Norse steps with its own dt (default 1e-3): pass spinnq's dt.
* Both run the file's `Flatten(start_dim=0)` on an unbatched sample (it would flatten the
  batch axis too), so the frameworks are run one sample at a time.
"""

from __future__ import annotations

import logging

import nir
import norse.torch as norse
import pytest
import torch
from snntorch.import_nir import import_from_nir
from torch import nn

from spinnq.graph import SimConfig, from_nir, read_graph, simulate, write_graph
from spinnq.graph.conventions import fold_r
from spinnq.nn.export import to_nir
from spinnq.nn.layers import SpikingSequential, SumPool2d
from spinnq.nn.neurons import LIF
from spinnq.s2.compile import S2Config
from spinnq.s2.export import export_graph

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
DT, T = 1e-4, 60


def mlp() -> tuple[SpikingSequential, tuple]:
    return SpikingSequential(nn.Linear(6, 20), LIF(0.9, reset="zero"), nn.Linear(20, 5),
                             LIF(0.8, 0.7, reset="zero")), (6,)


def conv() -> tuple[SpikingSequential, tuple]:
    return SpikingSequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), LIF(0.9, reset="zero"),
                             nn.Flatten(), nn.Linear(100, 3), LIF(0.85, reset="zero")), (2, 10, 10)


def conv_pool() -> tuple[SpikingSequential, tuple]:
    return SpikingSequential(nn.Conv2d(2, 4, 3, padding=1), LIF(0.9, reset="zero"),
                             SumPool2d(2), nn.Flatten(), nn.Linear(100, 3),
                             LIF(0.85, reset="zero")), (2, 10, 10)


MODELS = {"mlp": mlp, "conv": conv, "conv-sumpool": conv_pool}


def written(name: str, quantized: bool, tmp_path) -> tuple[str, tuple]:
    """The model's graph as spinnq writes it to disk."""
    model, shape = MODELS[name]()
    for m in model:
        if isinstance(m, nn.Linear | nn.Conv2d):
            m.weight.data *= 3
            m.bias.data += 0.2
    g = from_nir(to_nir(model, shape, dt=DT))
    path = tmp_path / f"{name}.nir"
    if quantized:
        write_graph(export_graph(g, S2Config(dt=DT)), path)
    else:
        write_graph(g, path)
    return str(path), shape


def run_imported(net: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Run an imported GraphModule/GraphExecutor one sample at a time, recording `layers`."""
    rec: dict[str, list] = {}
    for k in layers:
        net.get_submodule(k).register_forward_hook(
            lambda m, i, o, k=k: rec.setdefault(k, []).append(o[0] if isinstance(o, tuple) else o))
    per_sample = []
    for b in range(x.shape[0]):
        rec.clear()
        for m in net.modules():  # snnTorch's hidden state lives in the modules
            if hasattr(m, "reset_hidden"):
                m.reset_hidden()
        state = None
        with torch.no_grad():
            for t in range(x.shape[1]):
                _, state = net(x[b, t], state)
        per_sample.append({k: torch.stack(v, 0) for k, v in rec.items()})
    return {k: torch.stack([s[k] for s in per_sample], 0) for k in layers}


def spiking_layers(graph) -> list[str]:
    return [n for n, v in graph.nodes.items() if isinstance(v, nir.LIF | nir.IF | nir.CubaLIF)]


def check(ref: dict, tr) -> None:
    for k, r in ref.items():
        assert r.sum() > 0.01 * r.numel(), f"layer {k} barely spikes: the test would be weak"
        assert tr.spikes[k].shape == r.shape
        assert int((tr.spikes[k] != r).sum()) == 0, f"layer {k}"


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quantized"])
@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_spinnq_graph_runs_identically_in_snntorch(tmp_path, name, quantized):
    path, shape = written(name, quantized, tmp_path)
    g = read_graph(path)
    layers = spiking_layers(g)
    logging.disable(logging.WARNING)
    try:
        net = import_from_nir(nir.read(path))
    finally:
        logging.disable(logging.NOTSET)
    x = (torch.rand(2, T, *shape) < 0.3).float()
    ref = run_imported(net, x, layers)
    check(ref, simulate(g, x, SimConfig(dt=DT, reset="zero", record=tuple(layers))))


@pytest.mark.parametrize("quantized", [False, True], ids=["float", "quantized"])
@pytest.mark.parametrize("name", ["mlp", "conv-sumpool"])
def test_spinnq_graph_runs_identically_in_norse(tmp_path, name, quantized):
    path, shape = written(name, quantized, tmp_path)
    folded = fold_r(read_graph(path))
    write_graph(folded, tmp_path / "folded.nir")
    layers = spiking_layers(folded)
    logging.disable(logging.WARNING)
    try:
        net = norse.from_nir(nir.read(tmp_path / "folded.nir"), dt=DT)
    finally:
        logging.disable(logging.NOTSET)
    x = (torch.rand(2, T, *shape) < 0.3).float()
    ref = run_imported(net, x, layers)
    g = read_graph(path)  # spinnq runs the unfolded file: folding must not change spikes
    check(ref, simulate(g, x, SimConfig(dt=DT, reset="zero", record=tuple(layers))))


def test_fold_r_keeps_spinnq_spikes_and_sets_r_to_one(tmp_path):
    path, shape = written("conv-sumpool", False, tmp_path)
    g = read_graph(path)
    folded = fold_r(g)
    assert all((v.r == 1).all() for v in folded.nodes.values() if isinstance(v, nir.LIF))
    x = (torch.rand(2, T, *shape) < 0.3).float()
    cfg = SimConfig(dt=DT, record=tuple(spiking_layers(g)), float64=True)
    a, b = simulate(g, x, cfg), simulate(folded, x, cfg)
    assert all(torch.equal(a.spikes[k], b.spikes[k]) for k in a.spikes)


def test_fold_r_refuses_a_weight_node_shared_by_two_neurons():
    import numpy as np

    from spinnq.errors import GraphError
    n = 3
    lif = lambda: nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n),  # noqa: E731
                          v_threshold=np.ones(n))
    g = from_nir(nir.NIRGraph(nodes={
        "in": nir.Input(input_type=np.array([2])), "w": nir.Linear(np.ones((n, 2))),
        "a": lif(), "b": lif(), "out": nir.Output(output_type=np.array([n]))},
        edges=[("in", "w"), ("w", "a"), ("w", "b"), ("a", "out"), ("b", "out")],
        type_check=False))
    with pytest.raises(GraphError, match="node 'a'.*cannot fold r into 'w'"):
        fold_r(g)
