"""The reference simulator's layer-wise path (`Simulator.steps`: pooling and other stateless
nodes over many steps in one call, a neuron scanned over its input sequence, NIR's neurons by
a compiled scan) against stepping the whole graph a step at a time (`Simulator.step`, the
definition): the same spikes and voltages, bit for bit."""

import sys

import nir
import numpy as np
import pytest
import torch

from spinnq.graph import SimConfig, from_nir, read_graph
from spinnq.graph.simulate import Simulator
from spinnq.quant.evaluation import float_eval

DT = 1e-4


class Stepped(Simulator):
    """The same simulator made to step every node a step at a time."""

    layerwise = False


def _lif(shape, cuba: bool = False):
    tau = np.full(shape, 20 * DT)
    if cuba:
        return nir.CubaLIF(tau_mem=tau, tau_syn=np.full(shape, 5 * DT), r=np.full(shape, 20.0),
                           v_leak=np.zeros(shape), v_threshold=np.ones(shape),
                           w_in=np.full(shape, 1.5), v_reset=np.zeros(shape))
    return nir.LIF(tau=tau, r=np.full(shape, 20.0), v_leak=np.full(shape, 0.01),
                   v_threshold=np.ones(shape), v_reset=np.zeros(shape))


def conv_net(seed: int = 0):
    """conv -> LIF -> AvgPool -> Flatten -> Affine -> CubaLIF, plus a skip Linear from the
    flattened pool into the last layer (a node with two inputs), float weights."""
    rng = np.random.default_rng(seed)
    w = lambda *s: (rng.normal(size=s) * 1.5 / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    return from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(np.array([2, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=w(4, 2, 3, 3), stride=1, padding=1,
                           dilation=1, groups=1, bias=rng.normal(size=4) * 0.1),
        "l1": _lif((4, 8, 8)),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(w(10, 64), rng.normal(size=10).astype(np.float32) * 0.1),
        "skip": nir.Linear(w(10, 64)),
        "l2": _lif((10,), cuba=True),
        "output": nir.Output(np.array([10]))},
        edges=[("input", "conv"), ("conv", "l1"), ("l1", "pool"), ("pool", "flat"),
               ("flat", "fc"), ("flat", "skip"), ("fc", "l2"), ("skip", "l2"),
               ("l2", "output")], type_check=False))


def _spikes(shape, steps=37, batch=3, p=0.3, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.random((batch, steps, *shape)) < p).astype(np.float32)


def _same(g, x, cfg: SimConfig, chunk: int, monkeypatch) -> None:
    """Layer-wise run (chunks of `chunk` frames, so several calls) equals the stepped one."""
    monkeypatch.setattr(sys.modules[Simulator.__module__], "CHUNK_FRAMES", chunk)
    rec = tuple(n for n in g.order if n not in (g.input, *g.outputs))
    cfg = SimConfig(**{**cfg.__dict__, "record": rec})
    lw, st = Simulator(g, cfg), Stepped(g, cfg)
    assert lw.layerwise and not st.layerwise
    a, b = lw.run(x), st.run(x)
    assert a.spikes.keys() == b.spikes.keys() and a.spikes
    for k in b.spikes:
        assert torch.equal(a.spikes[k], b.spikes[k]), k
        assert a.spikes[k].sum() > 0, f"{k} never fires: the check would be empty"
    for k in b.v:  # voltages too, to the bit
        assert torch.equal(a.v[k], b.v[k]), k
    for k in b.out:
        assert torch.equal(a.out[k], b.out[k]), k


@pytest.mark.parametrize("convention,reset,dt", [
    ("nir", "zero", DT), ("nir", "subtract", DT), ("snntorch", "subtract", DT),
    ("snntorch", "zero", DT), ("norse", "zero", DT), ("sinabs", "subtract", DT),
    ("rockpool", "subtract", DT), ("spikingjelly", "zero", DT)])
def test_layerwise_equals_stepped_on_a_conv_net_in_every_convention(convention, reset, dt,
                                                                     monkeypatch):
    _same(conv_net(), _spikes((2, 8, 8)), SimConfig(dt=dt, reset=reset,
                                                    convention=convention), 16, monkeypatch)


@pytest.mark.parametrize("chunk,batch", [(1, 3), (7, 1), (10_000, 4)])
def test_layerwise_equals_stepped_with_chip_timing_at_any_chunk(chunk, batch, monkeypatch):
    """SpiNNaker2 timing delays every population's edges a step, across chunk borders too;
    one sample or several (the stepped path's call shapes differ)."""
    _same(conv_net(1), _spikes((2, 8, 8), batch=batch, seed=2),
          SimConfig(reset="subtract", chip_timing=True), chunk, monkeypatch)


def test_layerwise_equals_stepped_on_the_nir_paper_sinabs_cnn(nir_paper, monkeypatch):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    assert not g.recurrent
    x = _spikes(g.input_shape, steps=12, batch=2, p=0.2)
    _same(g, x, SimConfig(dt=1.0, reset="subtract", convention="sinabs"), 64, monkeypatch)
    _same(g, x, SimConfig(dt=1.0, reset="subtract", convention="nir"), 64, monkeypatch)


def test_layerwise_equals_stepped_through_a_delay(monkeypatch):
    rng = np.random.default_rng(3)
    g = from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(np.array([6])),
        "fc": nir.Linear((rng.normal(size=(5, 6)) * 0.8).astype(np.float32)),
        "d": nir.Delay(np.array([0, 1, 2, 3, 5]) * DT),
        "l": _lif((5,)), "output": nir.Output(np.array([5]))},
        edges=[("input", "fc"), ("fc", "d"), ("d", "l"), ("l", "output")], type_check=False))
    x = _spikes((6,), steps=30, p=0.5)
    _same(g, x, SimConfig(), 8, monkeypatch)  # float32 input: each step a strided slice
    _same(g, x.astype(np.uint8), SimConfig(), 8, monkeypatch)  # cast: a contiguous copy


def test_recurrent_graphs_keep_stepping(nir_paper):
    g = read_graph(nir_paper / "braille_noDelay_bias_zero.nir")
    assert g.recurrent and not Simulator(g).layerwise


def test_float_eval_counts_equal_the_stepped_simulator(monkeypatch):
    g, x = conv_net(2), _spikes((2, 8, 8), steps=25, batch=5)
    y = np.arange(5) % 10
    cfg = SimConfig(reset="subtract")
    monkeypatch.setattr(sys.modules[Simulator.__module__], "CHUNK_FRAMES", 12)
    a = float_eval(g, x, y, cfg, batch=2)
    monkeypatch.setattr("spinnq.quant.evaluation.Simulator", Stepped)
    b = float_eval(g, x, y, cfg, batch=2)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.spikes_per_sample == b.spikes_per_sample and a.accuracy == b.accuracy
    assert a.scores.sum() > 0


def seed_like_net(seed: int = 4):
    """The seed DVS network's shape in small: a strided 5x5 convolution, a 3x3 one into
    CubaLIF neurons, sum pooling, a dense read-out; float weights, active layers."""
    rng = np.random.default_rng(seed)
    w = lambda *s: (rng.normal(size=s) * 2.5 / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    return from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(np.array([2, 12, 12])),
        "c1": nir.Conv2d(input_shape=(12, 12), weight=w(6, 2, 5, 5), stride=2, padding=1,
                         dilation=1, groups=1, bias=np.zeros(6)),
        "l1": _lif((6, 5, 5)),
        "c2": nir.Conv2d(input_shape=(5, 5), weight=w(4, 6, 3, 3), stride=1, padding=1,
                         dilation=1, groups=1, bias=rng.normal(size=4) * 0.1),
        "l2": _lif((4, 5, 5), cuba=True),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(w(5, 16)),
        "l3": _lif((5,)),
        "output": nir.Output(np.array([5]))},
        edges=[("input", "c1"), ("c1", "l1"), ("l1", "c2"), ("c2", "l2"), ("l2", "pool"),
               ("pool", "flat"), ("flat", "fc"), ("fc", "l3"), ("l3", "output")],
        type_check=False))


@pytest.mark.parametrize("chunk", [5, 10_000])
def test_layerwise_equals_stepped_on_a_seed_like_net_with_cuba(chunk, monkeypatch):
    """Strided convolutions event by event, channels-last into LIF and CubaLIF scans, sum
    pooling: the layer-wise run equals stepping, bit for bit, across chunk borders too."""
    _same(seed_like_net(), _spikes((2, 12, 12), steps=40, batch=3, p=0.1),
          SimConfig(reset="subtract"), chunk, monkeypatch)


def test_event_convolutions_agree_with_torch_dense_ones(monkeypatch):
    """The float reference with its event-by-event convolutions and pooling against the
    same graph with torch's dense operators: the same spikes, voltages within float
    rounding (the two sum in different orders)."""
    g, x = seed_like_net(5), _spikes((2, 12, 12), steps=40, batch=3, p=0.1)
    rec = tuple(n for n in g.order if n not in (g.input, *g.outputs))
    cfg = SimConfig(reset="subtract", record=rec)
    a = Simulator(g, cfg).run(x)
    monkeypatch.setattr("spinnq.graph.events.usable", lambda *args, **kw: False)
    b = Stepped(g, cfg).run(x)
    for k in b.spikes:
        assert torch.equal(a.spikes[k], b.spikes[k]), k
        assert a.spikes[k].sum() > 0, k
    for k in b.v:
        torch.testing.assert_close(a.v[k], b.v[k], rtol=1e-5, atol=1e-5)
