"""The py-spinnaker2 hand-off: the export py-spinnaker2 takes, and the backend driven
through a fake `spinnaker2` module that records the calls (no board here)."""

import sys
import types

import nir
import numpy as np
import pytest

from spinnq.errors import BackendError
from spinnq.graph.model import from_nir, read_graph
from spinnq.s2 import S2Config, compile
from spinnq.s2.backend import run_spinnaker2
from spinnq.s2.export import export_graph


def test_export_compiles_back_to_the_same_integers(nir_paper):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    cfg = S2Config(weight_scale="p99.5")
    q = export_graph(g, cfg)
    nir.write("/tmp/_spinnq_export_test.nir", q)
    back = from_nir(nir.read("/tmp/_spinnq_export_test.nir"))
    a, b = compile(g, cfg), compile(back, S2Config(weight_scale="none"))
    for pa, pb in zip(a.projections, b.projections, strict=True):
        assert np.array_equal(pa.weight, pb.weight)
    for name in a.populations:
        for k, v in a.populations[name].params.items():
            np.testing.assert_allclose(b.populations[name].params[k], v, rtol=1e-6)
    assert all(np.all(np.asarray(q.nodes[n].weight) == np.round(q.nodes[n].weight))
               for n in ("0", "2", "5", "9", "11"))
    assert q.nodes["0"].metadata["s2_w_scale"] == pytest.approx(a.projections[0].w_scale)
    assert q.metadata["spinnq.scale_weights"] is False


class _Pop:
    def __init__(self, name, size):
        self.name, self.size, self.params, self.atoms = name, size, None, None
        self.nir_v_scale = 2.0

    def set_max_atoms_per_core(self, n):
        self.atoms = n

    def get_spikes(self):
        return {0: [2, 3], 1: []}

    def get_voltages(self):
        return {i: np.arange(6, dtype=float) for i in range(self.size)}


def _fake_spinnaker2(calls):
    s2_nir = types.ModuleType("spinnaker2.s2_nir")
    hardware = types.ModuleType("spinnaker2.hardware")
    s2_nir.ResetMethod = types.SimpleNamespace(ZERO="zero", SUBTRACT="subtract")
    s2_nir.IntegratorMethod = types.SimpleNamespace(FORWARD="fw", EXPONENTIAL="exp")

    def conversion_config(**kw):
        calls.append(("ConversionConfig", kw))
        return kw

    def from_nir(graph, cfg):
        calls.append(("from_nir", graph, cfg))
        inp, out = _Pop("input", 2), _Pop("lif", 2)
        net = types.SimpleNamespace(populations=[inp, out],
                                    reset=lambda: calls.append(("reset",)))
        return net, [inp], [out]

    class Chip:
        def __init__(self, eth_ip):
            calls.append(("SpiNNaker2Chip", eth_ip))

        def run(self, net, steps, sys_tick_in_s):
            calls.append(("run", steps, sys_tick_in_s, dict(net.populations[0].params)))

    s2_nir.ConversionConfig = conversion_config
    s2_nir.from_nir = from_nir
    s2_nir.add_output_to_node = lambda *a: calls.append(("add_output_to_node", *a))
    hardware.SpiNNaker2Chip = Chip
    pkg = types.ModuleType("spinnaker2")
    pkg.s2_nir, pkg.hardware = s2_nir, hardware
    return {"spinnaker2": pkg, "spinnaker2.s2_nir": s2_nir, "spinnaker2.hardware": hardware}


def _tiny():
    return from_nir(nir.NIRGraph(
        nodes={"in": nir.Input(np.array([2])), "fc": nir.Linear(np.array([[0.5, 0], [0, 1.0]])),
               "lif": nir.LIF(np.full(2, 1e-3), np.ones(2), np.zeros(2), np.ones(2),
                              np.zeros(2)),
               "out": nir.Output(np.array([2]))},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")]))


def test_backend_drives_py_spinnaker2_as_the_nir_paper_did(monkeypatch):
    calls = []
    for k, v in _fake_spinnaker2(calls).items():
        monkeypatch.setitem(sys.modules, k, v)
    x = np.zeros((2, 5, 2))
    x[0, 1, 0] = x[1, 3, 1] = 1
    run = run_spinnaker2(_tiny(), x, S2Config(reset="subtract", neurons_per_pe={"lif": 7}),
                         "192.168.1.25")
    names = [c[0] for c in calls]
    assert names == ["ConversionConfig", "from_nir", "SpiNNaker2Chip", "reset", "run", "reset",
                     "run"]
    cfg = calls[0][1]
    assert cfg["scale_weights"] is False and cfg["reset"] == "subtract" and cfg["dt"] == 1e-4
    graph = calls[1][1]
    assert graph.nodes["fc"].weight.tolist() == [[64, 0], [0, 127]]  # integers handed over
    assert calls[2][1] == "192.168.1.25"
    assert calls[4][1] == 6  # T + depth
    assert calls[4][3] == {0: [1], 1: []} and calls[6][3] == {0: [], 1: [3]}
    assert run.spikes["lif"][0, :, 0].tolist() == [0, 0, 1, 1, 0, 0]
    assert run.v["lif"][0, :, 1].tolist() == [0, 0.5, 1, 1.5, 2, 2.5]  # / nir_v_scale


def test_backend_without_py_spinnaker2_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "spinnaker2", None)
    with pytest.raises(BackendError, match="py-spinnaker2 is not importable"):
        run_spinnaker2(_tiny(), np.zeros((3, 2)), S2Config(), "10.0.0.1")
