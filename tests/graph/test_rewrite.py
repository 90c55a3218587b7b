"""AvgPool2d as SumPool2d with 1/k^2 folded into what consumes it: the same spikes in the
reference simulator, the same spikes on the chip, and a clear refusal where it cannot fold."""

import nir
import numpy as np
import pytest

from spinnq.errors import GraphError
from spinnq.graph.model import from_nir
from spinnq.graph.rewrite import avgpool_to_sumpool
from spinnq.graph.simulate import SimConfig, simulate
from spinnq.s2 import S2Config, compile, emulate


def _pool(k=2):
    return nir.AvgPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]),
                         padding=np.array([0, 0]))


def _lif(shape, th=1.0):
    return nir.LIF(tau=np.full(shape, 1e-3), r=np.full(shape, 10.0), v_leak=np.zeros(shape),
                   v_threshold=np.full(shape, th), v_reset=np.zeros(shape))


def conv_pool_graph(tail: str, seed: int = 0):
    """conv -> LIF -> AvgPool2d(2) -> [Flatten -> Affine -> LIF | LIF | CubaLIF] -> out."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(np.array([2, 8, 8])),
             "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.6, (3, 2, 3, 3)),
                                stride=1, padding=1, dilation=1, groups=1,
                                bias=np.full(3, 0.05)),
             "lif1": _lif((3, 8, 8), 0.5), "pool": _pool()}
    edges = [("input", "conv"), ("conv", "lif1"), ("lif1", "pool")]
    if tail == "dense":
        nodes |= {"flat": nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0,
                                      end_dim=-1),
                  "fc": nir.Affine(rng.normal(0, 0.8, (5, 48)), np.full(5, 0.02)),
                  "lif2": _lif(5, 0.3)}
        edges += [("pool", "flat"), ("flat", "fc"), ("fc", "lif2")]
    elif tail == "lif":
        nodes["lif2"] = _lif((3, 4, 4), 0.05)
        edges.append(("pool", "lif2"))
    else:
        s = (3, 4, 4)
        nodes["lif2"] = nir.CubaLIF(tau_syn=np.full(s, 2e-4), tau_mem=np.full(s, 1e-3),
                                    r=np.full(s, 10.0), v_leak=np.zeros(s),
                                    v_threshold=np.full(s, 0.05), w_in=np.full(s, 2.0))
        edges.append(("pool", "lif2"))
    shape = nodes["lif2"].r.shape if hasattr(nodes["lif2"], "r") else (5,)
    nodes["output"] = nir.Output(np.array(shape))
    edges.append(("lif2", "output"))
    return from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


@pytest.mark.parametrize("tail", ["dense", "lif", "cuba"])
def test_avgpool_rewrite_gives_the_same_spikes_in_the_reference(tail):
    g = conv_pool_graph(tail)
    g2 = avgpool_to_sumpool(g)
    assert isinstance(g2.nodes["pool"], nir.SumPool2d) and isinstance(g.nodes["pool"],
                                                                       nir.AvgPool2d)
    x = (np.random.default_rng(1).random((3, 40, 2, 8, 8)) < 0.3).astype(np.float32)
    cfg = SimConfig(record=("lif1", "lif2"))
    a, b = simulate(g, x, cfg), simulate(g2, x, cfg)
    assert a.spikes["lif2"].sum() > 50
    for k in ("lif1", "lif2"):  # 1/4 is exact in float32: bit for bit
        assert np.array_equal(a.spikes[k].numpy(), b.spikes[k].numpy()), k


def test_avgpool_graph_compiles_and_equals_the_chip_timed_reference():
    """Dense tail, k = 2: the chip (8-bit, scale max) against the reference with chip timing.
    Float weights are quantised here, so allow the rare flip; the pooling is exact."""
    g = conv_pool_graph("dense")
    prog = compile(g, S2Config())
    assert {p.post: p.kind for p in prog.projections} == {"lif1": "conv", "lif2": "dense"}
    x = (np.random.default_rng(2).random((4, 40, 2, 8, 8)) < 0.3).astype(np.float32)
    run = emulate(prog, x, record=["lif2"])
    ref = simulate(g, x, SimConfig(chip_timing=True, record=("lif2",)))
    chip, sw = run.spikes["lif2"].numpy(), ref.spikes["lif2"].numpy()
    assert sw.sum() > 50
    assert (chip != sw).sum() <= 0.03 * sw.sum()


def test_avgpool_into_neurons_keeps_the_graph_untouched_and_scales_its_gain():
    g = conv_pool_graph("cuba")
    g2 = avgpool_to_sumpool(g)
    assert np.allclose(g2.nodes["lif2"].w_in, g.nodes["lif2"].w_in / 4)
    assert np.allclose(g.nodes["lif2"].w_in, 2.0)  # the input graph is not modified
    assert avgpool_to_sumpool(g2) is g2  # nothing left to rewrite


@pytest.mark.parametrize("consumer, match", [
    ("output", r"cannot fold AvgPool2d 'pool' into 'output' \(Output\)"),
    ("two-inputs", "'lif2' has other inputs"),
])
def test_avgpool_that_cannot_be_folded_is_refused_naming_it(consumer, match):
    s = (3, 4, 4)
    nodes = {"input": nir.Input(np.array([3, 8, 8])), "pool": _pool(),
             "output": nir.Output(np.array(s))}
    edges = [("input", "pool")]
    if consumer == "output":
        edges.append(("pool", "output"))
    else:
        nodes |= {"lif2": _lif(s), "u": nir.Scale(np.full(s, 0.5))}  # recurrence via Scale
        edges += [("pool", "lif2"), ("lif2", "u"), ("u", "lif2"), ("lif2", "output")]
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    with pytest.raises(GraphError, match=match):
        avgpool_to_sumpool(g)
    with pytest.raises(GraphError, match=match):
        compile(g)
