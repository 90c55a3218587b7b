"""The program says what compile folded into each projection (`Projection.fold`), quant reads
it, and calibration costs one emulation per candidate: no placement, no energy model, no
second float reference or emulation of the chosen candidate."""

from __future__ import annotations

import copy

import nir
import numpy as np
import pytest
import torch

from spinnq.errors import GraphError
from spinnq.graph import from_nir
from spinnq.graph.nodes import CHIP_WEIGHTS, NEURONS
from spinnq.quant.finetuning import ChipNet
from spinnq.s2 import S2Config, compile
from spinnq.s2.formats import to_int
from spinnq.s2.program import folded_weights
from tests.quant import digits_models as dm


def _with_scale(raw: nir.NIRGraph, after: str, before: str, scale: np.ndarray):
    nodes, edges = dict(raw.nodes), list(raw.edges)
    nodes["scale"] = nir.Scale(scale.astype(np.float32))
    edges = [e for e in edges if e != (after, before)] + [(after, "scale"), ("scale", before)]
    return from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


@pytest.fixture(scope="module")
def conv_graph():
    """snnTorch conv 3x3 -> LIF -> AvgPool2d(2) -> Flatten -> Linear '4' -> Scale 1.5 -> LIF."""
    torch.manual_seed(0)
    return _with_scale(dm.export(dm.convnet(4), (1, 8, 8)), "4", "5", np.full(10, 1.5))


@pytest.fixture(scope="module")
def mlp_graph():
    torch.manual_seed(0)
    return from_nir(dm.export(dm.mlp(16), (64,)))


CFG = S2Config(reset="subtract", convention="snntorch", weight_scale="p99.9")


def test_the_program_lists_each_projections_weight_node_and_factors(conv_graph):
    """AvgPool's 1/k^2 and a Scale are folded into the dense projection: the recorded
    factors applied to the graph's weights give the projection's integers exactly."""
    prog = compile(conv_graph, CFG)
    conv, dense = prog.projections
    assert (conv.fold.node, conv.fold.pool, conv.fold.factor) == ("0", 0, 1.0)
    assert (dense.fold.node, dense.fold.pool, dense.fold.pool_factor) == ("4", 2, 0.25)
    assert dense.fold.scales == (1.5,) and dense.fold.factor == 0.375
    assert dense.fold.path == ("2", "3", "4", "scale") and not dense.fold.delayed
    w0 = conv_graph.nodes["0"].weight
    ints, _ = to_int(folded_weights(w0, conv.fold), conv.w_scale, conv.bits, CFG.conv_rounding)
    assert np.array_equal(ints, conv.weight)
    w4 = np.asarray(conv_graph.nodes["4"].weight)
    f = folded_weights(w4, dense.fold)
    np.testing.assert_allclose(f, dense.fold.factor * w4.astype(np.float64), rtol=1e-12)
    ints, _ = to_int(f, dense.w_scale, dense.bits, CFG.dense_rounding)
    c, h, w = np.indices((4, 8, 8)).reshape(3, -1)  # the pool folded: columns per pre neuron
    assert np.array_equal(dense.weight, ints[:, c * 16 + (h // 2) * 4 + w // 2])
    net = ChipNet(conv_graph, CFG)  # fine-tuning trains the nodes the program names
    assert [pr.node for pr in net.projs] == ["0", "4"] and all(pr.check() == 0
                                                                for pr in net.projs)


def test_a_scale_per_neuron_is_recorded_per_neuron(mlp_graph):
    from spinnq.quant.calibration import with_scales

    s = np.linspace(0.5, 2.0, 16)
    g = _with_scale(dm.export(dm.mlp(16), (64,)), "0", "1", s)
    prog = compile(g, CFG)
    fold = prog.projections[0].fold
    assert fold.node == "0" and fold.factor is None
    np.testing.assert_array_equal(fold.scales[0], s.astype(np.float32).astype(np.float64))
    p = prog.projections[0]
    ints, _ = to_int(folded_weights(g.nodes["0"].weight, fold), p.w_scale, p.bits,
                     CFG.dense_rounding)
    assert np.array_equal(ints, p.weight)
    q = with_scales(g, {"1": 3.0, "3": 4.0}, 8, CFG, quantize=True, program=prog)
    assert q.nodes["0"].metadata["w_scale"] == 3.0  # scale recorded, weights as they were
    assert np.array_equal(q.nodes["0"].weight, g.nodes["0"].weight)
    with pytest.raises(GraphError, match="one value for all neurons"):
        ChipNet(g, CFG)


def _old_with_scales(graph, scales, bits, cfg):
    """The path this replaced: quant re-walked the graph for each population's chains and
    re-derived the factors compile folds (AvgPool's 1/k^2, the Scales' product)."""
    def chains(post):
        out = []

        def back(node, tail):
            for p in graph.predecessors(node):
                if p == graph.input or isinstance(graph.nodes[p], NEURONS):
                    out.append(tail)
                elif p not in tail:
                    back(p, [p, *tail])
        back(post, [])
        return out

    g = copy.copy(graph)
    g.nodes = dict(graph.nodes)
    for pop, s in scales.items():
        for mids in chains(pop):
            pool, scale = 1.0, 1.0
            for m in mids:
                node = graph.nodes[m]
                if isinstance(node, nir.Scale):
                    scale *= float(np.asarray(node.scale, np.float64).ravel()[0])
                elif isinstance(node, nir.AvgPool2d):
                    pool /= float(np.prod(np.broadcast_to(np.ravel(node.kernel_size), (2,))))
            for m in (m for m in mids if isinstance(graph.nodes[m], CHIP_WEIGHTS)):
                w = np.asarray(graph.nodes[m].weight)
                if pool != 1.0:
                    w = (w.astype(np.float64) * pool).astype(w.dtype)
                rounding = cfg.conv_rounding if isinstance(graph.nodes[m], nir.Conv2d) \
                    else cfg.dense_rounding
                w_int, _ = to_int(w.astype(np.float64) * scale, s, bits[pop], rounding)
                g.nodes[m] = copy.copy(graph.nodes[m])
                g.nodes[m].weight = (w_int / s / (pool * scale)).astype(np.float32)
    return g


def test_calibration_scores_and_writes_what_the_old_path_gave(conv_graph, digits):
    """Every candidate's score is the chip accuracy of the graph compiled at that percentile
    (compile, place, emulate), and the written weights equal the re-derivation's."""
    from spinnq.quant import calibrate, evaluate

    x, y = digits[0][:60].reshape(60, -1, 1, 8, 8), digits[1][:60]
    modes = ("max", "p99.9", "p99")
    cal = calibrate(conv_graph, (x, y), percentiles=modes, cfg=CFG)
    for row, m in zip(cal.table, modes, strict=True):
        res = evaluate(conv_graph, (x, y), target="chip", cfg=CFG.with_(weight_scale=m))
        assert row["score"] == res.chip.accuracy
    old = _old_with_scales(conv_graph, cal.scales, {p: 8 for p in cal.scales}, CFG)
    for name in ("0", "4"):
        assert np.array_equal(cal.graph.nodes[name].weight, old.nodes[name].weight), name


def _counting(monkeypatch, module, name: str, calls: dict) -> None:
    real = getattr(module, name)

    def counted(*a, **k):
        calls[name] = calls.get(name, 0) + 1
        return real(*a, **k)
    monkeypatch.setattr(module, name, counted)


def test_k_candidates_cost_k_emulations_and_no_placement(mlp_graph, digits, monkeypatch):
    """calibrate: one compile per candidate (+ the written graph), one float reference, one
    emulation per candidate, no placement, no energy model. quantize(final=True) adds one
    placement and one energy model and nothing else: the chosen candidate's emulation and
    the float reference are reused, and equal a fresh evaluation."""
    import spinnq.quant.calibration as calmod
    import spinnq.quant.evaluation as evmod
    import spinnq.quant.stages as stmod
    from spinnq.quant import evaluate
    from spinnq.quant.evaluation import float_eval
    from spinnq.resolver import configs

    x, y = digits[0][:100], digits[1][:100]
    modes = ("max", "p99.9", "p99")
    fresh = {m: evaluate(mlp_graph, (x, y), target="chip", bits=4, weight_scale=m)
             for m in modes}
    calls: dict = {}
    for mod, name in ((calmod, "compile"), (calmod, "float_eval"), (calmod, "emulate_all"),
                      (evmod, "place"), (evmod, "energy"), (evmod, "emulate_all"),
                      (stmod, "float_eval"), (stmod, "compile")):
        _counting(monkeypatch, mod, name, calls)
    cal = calmod.calibrate(mlp_graph, (x, y), bits=4, percentiles=modes)
    assert calls == {"compile": 4, "float_eval": 1, "emulate_all": 3}
    assert [r["score"] for r in cal.table] == [fresh[m].chip.accuracy for m in modes]
    calls.clear()
    q = stmod.quantize(mlp_graph, (x, y), bits=4, percentiles=modes, final=True)
    assert calls == {"compile": 4, "float_eval": 1, "emulate_all": 3, "place": 1,
                     "energy": 1}
    monkeypatch.undo()
    res = q.evaluation
    ref = evaluate(q.graph, (x, y), target="chip")
    assert np.array_equal(res.chip.scores, ref.chip.scores)
    assert res.chip.cost.energy_j == ref.chip.cost.energy_j
    assert res.chip.spikes_per_sample == ref.chip.spikes_per_sample
    _, sim = configs(mlp_graph)
    flt = float_eval(mlp_graph, x, y, sim)
    assert np.array_equal(res.float.scores, flt.scores) and res.float.accuracy == flt.accuracy
