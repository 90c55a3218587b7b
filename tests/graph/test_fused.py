"""The float reference's compiled chains (`spinnq.graph.fused`: convolutions, pooling and NIR
neurons frame by frame in one pass) against the layer-wise path they replace (each node over
a chunk of steps, `events.conv2d` / `pool2d` / `lif_scan`) and against stepping the graph a
step at a time (the definition): every layer's spikes, voltages and values equal, bit for
bit, on the seed network and on random convolution graphs that take every branch of the
kernel (non-binary inputs, channel counts that are not powers of two, strides, dilation,
padding, average pooling, CubaLIF, LI and IF inside a chain, both resets, inclusive
thresholds, float64, inputs laid out channels last)."""

import subprocess
import sys
import textwrap

import nir
import numpy as np
import pytest
import torch

from spinnq.graph import SimConfig, from_nir, read_graph
from spinnq.graph.simulate import Simulator, find_chains
from spinnq.quant.evaluation import float_eval
from tests.conftest import benchmark

DT = 1e-4
SIM = sys.modules[Simulator.__module__]  # spinnq.graph.simulate (the package's name is a function)


class Stepped(Simulator):
    """The graph stepped a step at a time (the definition)."""

    layerwise = False


def _layerwise(monkeypatch) -> None:
    """Simulators made from here on find no chain: the layer-wise path before chains."""
    monkeypatch.setattr(SIM, "find_chains", lambda sim: {})


def _run_all(g, x, cfg: SimConfig, sim=Simulator):
    rec = tuple(n for n in g.order if n not in (g.input, *g.outputs))
    return sim(g, SimConfig(**{**cfg.__dict__, "record": rec})).run(x)


def _equal(a, b) -> None:
    for part in ("spikes", "v", "out"):
        da, db = getattr(a, part), getattr(b, part)
        assert da.keys() == db.keys()
        for k in db:
            assert torch.equal(da[k], db[k]), f"{part}/{k}"
    assert a.spikes and all(s.sum() > 0 for s in a.spikes.values()), "a layer never fires"


def _same_three_ways(g, x, cfg: SimConfig, monkeypatch, chunk: int = 64) -> None:
    """Chains, the layer-wise path and stepping give the same bits (several `steps` calls)."""
    monkeypatch.setattr(SIM, "CHUNK_FRAMES", chunk)
    assert Simulator(g, cfg).chains, "no chain: the test would not test it"
    fused = _run_all(g, x, cfg)
    stepped = _run_all(g, x, cfg, Stepped)
    _layerwise(monkeypatch)
    layerwise = _run_all(g, x, cfg)
    _equal(fused, layerwise)
    _equal(fused, stepped)


def test_the_seed_network_is_one_chain_and_its_spikes_equal_the_layerwise_path(monkeypatch):
    """The seed DVS network (benchmarks/seed_net.py): its convolutions, neurons and pooling
    before the dense layers are one chain; every layer's spike train and voltage equals the
    layer-wise path's and stepping's, bit for bit, and float_eval's scores and counts too."""
    g = from_nir(benchmark("seed_net").seed_network(0))
    cfg = SimConfig(dt=1e-4)
    assert list(find_chains(Simulator(g, cfg)).values()) == [
        ["c1", "l1", "c2", "l2", "p2", "c3", "l3", "p3"]]
    rng = np.random.default_rng(0)
    x = (rng.random((2, 60, 2, 32, 32)) < 0.05).astype(np.float32)
    _same_three_ways(g, x, cfg, monkeypatch, chunk=40)
    y = np.array([1, 2])
    a = float_eval(g, x, y, cfg, checked=True)
    _layerwise(monkeypatch)
    b = float_eval(g, x, y, cfg, checked=True)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.spikes_per_sample == b.spikes_per_sample and a.scores.sum() > 0


def _lif(shape, kind: str = "lif", v_th: float = 1.0, if_r: float = 0.7):
    tau = np.full(shape, 20 * DT)
    ones, zeros = np.ones(shape), np.zeros(shape)
    if kind == "cuba":
        return nir.CubaLIF(tau_mem=tau, tau_syn=np.full(shape, 5 * DT), r=np.full(shape, 20.0),
                           v_leak=zeros, v_threshold=ones * v_th, w_in=np.full(shape, 1.5),
                           v_reset=zeros)
    if kind == "li":
        return nir.LI(tau=tau, r=np.full(shape, 20.0), v_leak=np.full(shape, 0.01))
    if kind == "if":
        return nir.IF(r=np.full(shape, if_r), v_threshold=ones * v_th, v_reset=zeros)
    return nir.LIF(tau=tau, r=np.full(shape, 20.0), v_leak=np.full(shape, 0.01),
                   v_threshold=ones * v_th, v_reset=np.full(shape, 0.05))


def random_conv_graph(seed: int = 0, if_r: float = 0.7):
    """Input (3, 11, 9) -> conv 5x5 stride 2 dilation 1 -> LIF (parameters one value each)
    -> conv 3x3 dilation 2 (no bias) -> CubaLIF -> AvgPool 2x2 -> conv 3x3 stride 2 dilation
    2 -> IF -> conv 1x1 (3 channels: not a power of two) -> LI -> conv 3x3 (of LI's
    voltages) -> LIF (a threshold and r per neuron) -> SumPool 2x2 padded -> Flatten ->
    Linear -> LIF: one chain from the first convolution to the last pooling, float weights. `if_r`: the IF neurons' r (SpikingJelly integrates dt r x)."""
    rng = np.random.default_rng(seed)

    def w(*s, gain=2.0):
        return (rng.normal(size=s) * gain / np.sqrt(np.prod(s[1:]))).astype(np.float32)

    def conv(weight, stride, pad, dil, bias=True):
        return nir.Conv2d(None, weight, stride, pad, dil, 1,
                          rng.normal(size=weight.shape[0]) * 0.1 if bias else None)

    nodes = {
        "input": nir.Input(np.array([3, 11, 9])),
        "c1": conv(w(6, 3, 5, 5), 2, 2, 1), "l1": _lif((6, 6, 5)),
        "c2": conv(w(5, 6, 3, 3, gain=3.0), 1, 2, 2, bias=False), "l2": _lif((5, 6, 5), "cuba"),
        "p2": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "c3": conv(w(4, 5, 3, 3, gain=4.0), 2, 2, 2), "l3": _lif((4, 2, 1), "if", 0.5, if_r),
        "c4": conv(w(3, 4, 1, 1), 1, 0, 1), "l4": _lif((3, 2, 1), "li"),
        "c5": conv(w(4, 3, 3, 3, gain=30.0), 1, 1, 1),
        "l5": nir.LIF(tau=np.full((4, 2, 1), 20 * DT), r=rng.uniform(10, 30, (4, 2, 1)),
                      v_leak=np.full((4, 2, 1), 0.01), v_threshold=rng.uniform(0.5, 1.5, (4, 2, 1)),
                      v_reset=np.zeros((4, 2, 1))),  # a threshold and r per neuron
        "p5": nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([1, 1])),
        "flat": nir.Flatten(np.array([4, 2, 1]), 0, -1),
        "fc": nir.Linear(w(5, 8)), "l6": _lif((5,)),
        "output": nir.Output(np.array([5]))}
    order = list(nodes)
    return from_nir(nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:],
                                                              strict=True)), type_check=False))


def _inputs(shape, steps=30, batch=3, seed=1, binary=False):
    """Sparse inputs; not only 0/1 unless `binary` (events carry their values)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, steps, *shape)) < 0.2).astype(np.float32)
    return x if binary else x * rng.choice(np.array([0.5, 1.0, 2.0], np.float32), x.shape)


@pytest.mark.parametrize("convention,reset,float64", [
    ("nir", "zero", False), ("nir", "subtract", False), ("spikingjelly", "subtract", False),
    ("nir", "subtract", True)])
def test_a_random_conv_graph_equals_the_layerwise_path(convention, reset, float64,
                                                       monkeypatch):
    g = random_conv_graph(if_r=0.7 / DT if convention == "spikingjelly" else 0.7)
    assert list(find_chains(Simulator(g)).values()) == [
        ["c1", "l1", "c2", "l2", "p2", "c3", "l3", "c4", "l4", "c5", "l5", "p5"]]
    cfg = SimConfig(dt=DT, reset=reset, convention=convention, float64=float64)
    _same_three_ways(g, _inputs((3, 11, 9)), cfg, monkeypatch, chunk=20)


def test_float_eval_counts_inner_layers_it_does_not_write_out(monkeypatch):
    """float_eval keeps only the read-out's outputs: the chain's inner layers come back as
    spike counts, equal to the stepped simulator's sums."""
    g, x = random_conv_graph(1), _inputs((3, 11, 9), steps=25, batch=5, seed=3, binary=True)
    y = np.arange(5)
    monkeypatch.setattr(SIM, "CHUNK_FRAMES", 12)
    a = float_eval(g, x, y, SimConfig(reset="subtract"), batch=2)
    monkeypatch.setattr("spinnq.quant.evaluation.Simulator", Stepped)
    b = float_eval(g, x, y, SimConfig(reset="subtract"), batch=2)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.spikes_per_sample == b.spikes_per_sample
    assert all(v > 0 for v in a.spikes_per_sample.values())


def _branching_graph():
    """A convolution read by two nodes (so outside any chain): the chain after it starts on
    its channels-last output, and a second chain starts on a Scale's contiguous output."""
    rng = np.random.default_rng(5)
    w = lambda *s: (rng.normal(size=s) * 3 / np.sqrt(np.prod(s[1:]))).astype(np.float32)  # noqa: E731
    nodes = {
        "input": nir.Input(np.array([2, 8, 8])),
        "c0": nir.Conv2d(None, w(4, 2, 3, 3), 1, 1, 1, 1, np.zeros(4)),
        "la": _lif((4, 8, 8)), "ca": nir.Conv2d(None, w(4, 4, 3, 3), 1, 1, 1, 1, np.zeros(4)),
        "lb": _lif((4, 8, 8)),
        "s": nir.Scale(np.full((4, 8, 8), 1.5)),
        "cb": nir.Conv2d(None, w(4, 4, 3, 3), 1, 1, 1, 1, np.zeros(4)), "lc": _lif((4, 8, 8)),
        "output": nir.Output(np.array([4, 8, 8]))}
    edges = [("input", "c0"), ("c0", "la"), ("la", "ca"), ("ca", "lb"), ("c0", "s"),
             ("s", "cb"), ("cb", "lc"), ("lb", "output"), ("lc", "output")]
    return from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def test_chains_start_on_channels_last_and_contiguous_outputs(monkeypatch):
    g = _branching_graph()
    chains = find_chains(Simulator(g))
    assert chains == {"ca": ["ca", "lb"], "cb": ["cb", "lc"]}  # c0 feeds two nodes
    _same_three_ways(g, _inputs((2, 8, 8), steps=20, batch=2, binary=True), SimConfig(),
                     monkeypatch, chunk=16)


def test_no_chain_across_a_delayed_edge_or_a_recurrence(nir_paper):
    """SpiNNaker2 timing delays a population's edges a step: chains end at each neuron.
    Graphs with recurrent edges step, without chains."""
    g = random_conv_graph()
    chains = find_chains(Simulator(g, SimConfig(chip_timing=True)))
    assert all(names[-1].startswith("l") for names in chains.values()) and chains
    assert Simulator(read_graph(nir_paper / "braille_noDelay_bias_zero.nir")).chains == {}


def test_chip_timing_with_chains_equals_stepping(monkeypatch):
    g, x = random_conv_graph(2), _inputs((3, 11, 9), steps=30, batch=2, seed=4)
    _same_three_ways(g, x, SimConfig(reset="subtract", chip_timing=True), monkeypatch,
                     chunk=18)


def test_the_compiled_chain_loads_from_numba_s_cache_in_a_new_process(tmp_path):
    """Like `events`' kernels, the chain kernel is cached on disk: a new process runs it
    without compiling (numba's dispatcher reports a cache hit and no miss)."""
    nir.write(tmp_path / "g.nir", benchmark("seed_net").seed_network(0))
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from spinnq.graph import SimConfig, fused, read_graph
        from spinnq.graph.simulate import simulate
        x = (np.random.default_rng(0).random((1, 4, 2, 32, 32)) < 0.1).astype(np.float32)
        simulate(read_graph(sys.argv[1]), x, SimConfig())
        s = fused._run.stats
        print(len(s.cache_hits), len(s.cache_misses))
    """)
    run = lambda: subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.nir")],  # noqa: E731
                                 capture_output=True, text=True, check=True).stdout.split()
    run()  # compiles and writes the cache where this checkout has not yet
    hits, misses = run()
    assert int(hits) >= 1 and int(misses) == 0
