"""The seed's network (shapes, weight count, neuron settings), its NIR export, PTQ scaling
math (thresholds move with the weight scale) and the QAT export (Brevitas integers reach the
chip unchanged)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from spinnq.graph.model import from_nir
from spinnq.graph.simulate import SimConfig, simulate
from spinnq.nn import LIF
from spinnq.quant.brevitas import check_integers, export_qat, from_float, integers
from spinnq.quant.calibration import population_scales
from spinnq.s2 import S2Config, compile
from spinnq.tasks.gesture.model import SEED_WEIGHTS, ModelConfig, build_model, n_weights

SHAPE = (2, 32, 32)


def _graph(model):
    from spinnq.nn import to_nir
    return from_nir(to_nir(model, SHAPE, 1e-4))


def test_architecture_is_the_seeds():
    torch.manual_seed(0)
    m = build_model()
    assert n_weights(m) == SEED_WEIGHTS == 25_504
    assert all(not n.endswith("bias") for n, _ in m.named_parameters())
    lifs = [layer for layer in m if isinstance(layer, LIF)]
    assert len(lifs) == 5
    assert all(l.beta == 0.93 and l.threshold == 1.0 and l.reset == "subtract" for l in lifs)
    x = (torch.rand(3, 4, *SHAPE) < 0.1).float()
    out = m(x)
    assert out.shape == (3, 4, 11) and set(out.unique().tolist()) <= {0.0, 1.0}
    shapes = []
    h = x.reshape(12, *SHAPE)
    for layer in m:
        if not isinstance(layer, LIF):
            h = layer(h)
            shapes.append(tuple(h.shape[1:]))
    assert shapes == [(16, 15, 15), (16, 15, 15), (16, 7, 7), (8, 7, 7), (8, 3, 3), (72,),
                      (256,), (11,)]


def test_exported_graph_runs_like_the_torch_model():
    torch.manual_seed(1)
    m = build_model()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(4.0)  # enough activity to reach the output
    x = (torch.rand(2, 10, *SHAPE) < 0.15).float()
    g = _graph(m)
    assert isinstance(g.nodes["0"], nir.Conv2d) and isinstance(g.nodes["1"], nir.LIF)
    tr = simulate(g, x, SimConfig(reset="subtract", record=("12", "10")))
    with torch.no_grad():
        ref = m(x)
    assert ref.sum() > 0
    assert torch.equal(tr.spikes["12"].reshape(ref.shape).float(), ref)


def test_ptq_thresholds_move_with_the_weight_scale():
    torch.manual_seed(2)
    g = _graph(build_model())
    cfg = S2Config(reset="subtract")
    hi, lo = (population_scales(g, cfg.with_(weight_scale=m)) for m in ("max", "p99"))
    assert set(hi) == {"1", "3", "6", "10", "12"}
    for name in hi:
        w = np.abs(np.asarray(g.nodes[str(int(name) - 1) if name != "10" else "9"].weight))
        assert hi[name]["w_scale"] == pytest.approx(127 / w.max(), rel=1e-9)
        # the chip threshold is the float threshold times the population's weight scale
        for s in (hi[name], lo[name]):
            assert s["threshold_chip"] == pytest.approx(s["threshold_float"] * s["w_scale"],
                                                        rel=1e-6)
        # a lower percentile: a larger scale, a proportionally larger threshold, clipping
        assert lo[name]["w_scale"] > hi[name]["w_scale"]
        ratio = lo[name]["w_scale"] / hi[name]["w_scale"]
        assert lo[name]["threshold_chip"] / hi[name]["threshold_chip"] == pytest.approx(ratio,
                                                                                       rel=1e-6)
        assert lo[name]["saturated"] > 0 and hi[name]["saturated"] == 0


def test_ptq_scaled_network_is_the_float_network_up_to_rounding():
    """With the max scale and the threshold scaled along, the chip's integer network fires
    like the float one on most outputs (rounding only)."""
    from spinnq.s2.emulate import emulate
    torch.manual_seed(3)
    m = build_model()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(4.0)
    x = (torch.rand(4, 8, *SHAPE) < 0.15).float()
    prog = compile(_graph(m), S2Config(reset="subtract", weight_scale="max"))
    run = emulate(prog, x)
    chip = run.spikes["12"].sum(1).reshape(4, 11)
    with torch.no_grad():
        ref = m(x).sum(1)
    assert ref.sum() > 0
    assert (chip - ref).abs().sum() <= 0.25 * ref.sum()


@pytest.mark.parametrize("layers", ["brevitas", "spinnq"])
def test_qat_integers_reach_the_chip_unchanged(layers):
    torch.manual_seed(4)
    q = from_float(build_model(), build_model(ModelConfig(), layers))
    g = from_nir(export_qat(q, SHAPE, 1e-4))
    for name in ("0", "2", "5", "9", "11"):
        assert "w_scale" in g.nodes[name].metadata
    prog = compile(g, S2Config(reset="subtract", graph_scales=True, weight_scale="none",
                               conv_rounding="nearest"))
    res = check_integers(q, prog, g)
    assert res == {"layers": 5, "equal": True, "mismatches": 0}
    ints = integers(q)
    assert max(np.abs(w).max() for w in ints.values()) <= 127
    # a wrong scale is caught: the check is not vacuous
    prog.projections[0].weight = prog.projections[0].weight + 1
    assert check_integers(q, prog, g)["equal"] is False


def test_qat_model_forward_uses_the_integers():
    torch.manual_seed(5)
    f = build_model()
    q = from_float(f, build_model(ModelConfig(), "brevitas"))
    layer = q[0]
    w_int, s = integers(q)["0"], None
    qw = layer.quant_weight()
    s = float(qw.scale.detach())
    assert np.allclose(qw.value.detach().numpy(), w_int * s, atol=1e-9)
    # the P-SNN's float weights were copied in
    assert torch.equal(layer.weight, f[0].weight)
