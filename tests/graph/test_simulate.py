"""The reference simulator: every node type against a hand-computed trajectory, and the NIR
paper's third-party traces."""

import math

import nir
import numpy as np
import pytest
import torch

from spinnq.errors import InputError
from spinnq.graph import SimConfig, from_nir, read_graph, simulate
from tests.conftest import load_trace

DT = 1e-4


def _run(node, x, in_shape, cfg=SimConfig(), record=("n",)):
    """Input -> node -> Output; returns the Traces of `node`."""
    g = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array(in_shape)), "n": node,
                            "out": nir.Output(output_type=np.array([1]))},
                     edges=[("in", "n"), ("n", "out")], type_check=False)
    cfg = SimConfig(**{**cfg.__dict__, "record": record})
    return simulate(from_nir(g), np.asarray(x, np.float32), cfg)


def test_affine_linear_scale_are_instantaneous():
    w, b = np.array([[1.0, 2.0], [-1.0, 0.5]]), np.array([0.5, -1.0])
    x = np.array([[1.0, 1.0], [2.0, 0.0]])
    out = _run(nir.Affine(w, b), x, [2]).out["n"][0].numpy()
    np.testing.assert_allclose(out, [[3.5, -1.5], [2.5, -3.0]])
    np.testing.assert_allclose(_run(nir.Linear(w), x, [2]).out["n"][0].numpy(), [[3, -0.5], [2, -2]])
    np.testing.assert_allclose(_run(nir.Scale(np.array([2.0, -3.0])), x, [2]).out["n"][0].numpy(),
                               [[2, -3], [4, 0]])


def test_conv2d_sumpool_avgpool_flatten_by_hand():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)  # T=1, C=1
    k = np.zeros((1, 1, 3, 3), np.float32)
    k[0, 0, 1, 1], k[0, 0, 0, 0] = 1.0, 2.0
    conv = nir.Conv2d(input_shape=None, weight=k, stride=1, padding=1, dilation=1, groups=1,
                      bias=np.array([1.0]))
    out = _run(conv, x, [1, 4, 4]).out["n"][0, 0, 0].numpy()
    img = x[0, 0]
    want = img + 1 + 2 * np.pad(img, 1)[:4, :4]
    np.testing.assert_allclose(out, want)
    sp = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    np.testing.assert_allclose(_run(sp, x, [1, 4, 4]).out["n"][0, 0, 0].numpy(), [[10, 18], [42, 50]])
    ap = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    np.testing.assert_allclose(_run(ap, x, [1, 4, 4]).out["n"][0, 0, 0].numpy(), [[2.5, 4.5], [10.5, 12.5]])
    fl = nir.Flatten(input_type={"input": np.array([1, 4, 4])}, start_dim=0)
    np.testing.assert_allclose(_run(fl, x, [1, 4, 4]).out["n"][0, 0].numpy(), np.arange(16))


def test_conv1d_by_hand():
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])  # T=1, C=1, N=4
    conv = nir.Conv1d(input_shape=4, weight=np.array([[[1.0, -1.0]]]), stride=1, padding=0,
                      dilation=1, groups=1, bias=np.array([0.0]))
    np.testing.assert_allclose(_run(conv, x, [1, 4]).out["n"][0, 0, 0].numpy(), [-1, -1, -1])


def test_delay_shifts_by_rounded_steps_per_element():
    x = np.eye(5, 2)[:, :] * 0 + np.array([[1, 2], [3, 4], [5, 6], [0, 0], [0, 0]])
    out = _run(nir.Delay(np.array([0.0, 2 * DT])), x, [2]).out["n"][0].numpy()
    np.testing.assert_allclose(out[:, 0], [1, 3, 5, 0, 0])
    np.testing.assert_allclose(out[:, 1], [0, 0, 2, 4, 6])


def test_threshold_is_strict():
    out = _run(nir.Threshold(np.array([1.0])), [[0.5], [1.0], [1.5]], [1]).out["n"][0, :, 0]
    assert out.tolist() == [0, 0, 1]


def test_if_and_i_integrate_per_step():
    tr = _run(nir.IF(r=np.array([2.0]), v_threshold=np.array([3.0])), [[1.0]] * 4, [1])
    assert tr.spikes["n"][0, :, 0].tolist() == [0, 1, 0, 1]  # v: 2, 4>3 -> 0, 2, 4 -> 0
    assert tr.v["n"][0, :, 0].tolist() == [2, 0, 2, 0]
    tr = _run(nir.IF(r=np.array([2.0]), v_threshold=np.array([3.0])), [[1.0]] * 4, [1],
              SimConfig(reset="subtract"))
    assert tr.v["n"][0, :, 0].tolist() == [2, 1, 3, 2]  # 4-3=1, 3 (not > 3), 5-3=2
    tr = _run(nir.I(r=np.array([0.5])), [[1.0], [2.0], [-1.0]], [1])
    assert tr.v["n"][0, :, 0].tolist() == [0.5, 1.5, 1.0]


def test_lif_and_li_forward_euler_by_hand():
    tau, r, vl, th = 1e-3, 2.0, 0.1, 0.5
    lif = nir.LIF(tau=np.array([tau]), r=np.array([r]), v_leak=np.array([vl]),
                  v_threshold=np.array([th]), v_reset=np.array([0.0]))
    x = [1.0, 1.0, 0.0, 3.0]
    v, vs, ss = 0.0, [], []
    for xi in x:
        v = v + DT / tau * (vl - v + r * xi)
        s = v > th
        v = 0.0 if s else v
        vs.append(v)
        ss.append(int(s))
    tr = _run(lif, np.array(x)[:, None], [1])
    np.testing.assert_allclose(tr.v["n"][0, :, 0].numpy(), vs, rtol=1e-6)
    assert tr.spikes["n"][0, :, 0].tolist() == ss and sum(ss) == 1
    li = nir.LI(tau=np.array([tau]), r=np.array([r]), v_leak=np.array([vl]))
    v, vs = 0.0, []
    for xi in x:
        v = v + DT / tau * (vl - v + r * xi)
        vs.append(v)
    np.testing.assert_allclose(_run(li, np.array(x)[:, None], [1]).v["n"][0, :, 0].numpy(), vs,
                               rtol=1e-6)


def test_exponential_integrator_uses_exact_decay():
    tau = 1e-3
    li = nir.LI(tau=np.array([tau]), r=np.array([1.0]), v_leak=np.array([0.0]))
    tr = _run(li, [[1.0], [0.0]], [1], SimConfig(integrator="exponential", float64=True))
    a = math.exp(-DT / tau)
    np.testing.assert_allclose(tr.v["n"][0, :, 0].numpy(), [1 - a, a * (1 - a)], rtol=1e-12)


def test_cuba_lif_and_li_update_current_first():
    ts, tm, w_in, r = 5e-4, 1e-3, 2.0, 3.0
    cuba = nir.CubaLIF(tau_syn=np.array([ts]), tau_mem=np.array([tm]), r=np.array([r]),
                       v_leak=np.array([0.0]), v_threshold=np.array([1.0]), w_in=np.array([w_in]))
    i = v = 0.0
    vs, ss = [], []
    for xi in [1.0, 0.0, 0.0, 1.0, 1.0]:
        i = i + DT / ts * (w_in * xi - i)
        v = v + DT / tm * (-v + r * i)
        s = v > 1.0
        v = 0.0 if s else v
        vs.append(v)
        ss.append(int(s))
    x = np.array([1.0, 0.0, 0.0, 1.0, 1.0])[:, None]
    tr = _run(cuba, x, [1], SimConfig(float64=True))
    np.testing.assert_allclose(tr.v["n"][0, :, 0].numpy(), vs, rtol=1e-12)
    assert tr.spikes["n"][0, :, 0].tolist() == ss
    cli = nir.CubaLI(tau_syn=np.array([ts]), tau_mem=np.array([tm]), r=np.array([r]),
                     v_leak=np.array([0.0]), w_in=np.array([w_in]))
    assert _run(cli, x, [1]).v["n"].shape == (1, 5, 1)


def test_norse_lif_trace_reproduced_exactly(nir_paper):
    g = read_graph(nir_paper / "lif_norse.nir")
    ref = load_trace(nir_paper / "lif_norse.csv")
    tr = simulate(g, ref[:, :1], SimConfig(dt=1e-4, reset="zero"))
    spikes, v = tr.spikes["1"][0, :, 0].numpy(), tr.v["1"][0, :, 0].numpy()
    assert np.array_equal(spikes, ref[:, 2]) and ref[:, 2].sum() > 0
    assert np.abs(v - ref[:, 1]).max() < 1e-5
    exact = load_trace(nir_paper / "lif_exact.csv")
    assert np.array_equal(spikes, exact[:, 2])
    # Forward Euler vs the analytic solution: measured max |dv| = 6.2e-3 (threshold 0.1).
    assert np.abs(v - exact[:, 1]).max() < 1e-2


def test_braille_and_cnn_graphs_simulate_with_expected_shapes(nir_paper):
    rng = np.random.default_rng(0)
    for name, hidden in [("braille_noDelay_bias_zero", 38), ("braille_noDelay_noBias_subtract", 40)]:
        g = read_graph(nir_paper / f"{name}.nir")
        x = (rng.random((3, 40, 12)) < 0.2).astype(np.float32)
        tr = simulate(g, x, SimConfig(record=("lif1.lif", "lif2")))
        assert tr.spikes["lif2"].shape == (3, 40, 7)
        assert tr.spikes["lif1.lif"].shape == (3, 40, hidden)
        assert tr.spikes["lif1.lif"].sum() > 0
    cnn = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (rng.random((2, 20, 2, 34, 34)) < 0.1).astype(np.float32)
    tr = simulate(cnn, x)
    assert tr.spikes["12"].shape == (2, 20, 10)
    assert simulate(cnn, np.zeros((1, 20, 2, 34, 34))).spikes["12"].sum() == 0  # no bias: silent


def test_doubling_an_input_weight_never_lowers_spike_counts():
    w = np.array([[0.3, 0.0], [0.1, 0.2]])
    def counts(weight):
        g = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([2])), "fc": nir.Linear(weight),
                                "if": nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
                                "out": nir.Output(output_type=np.array([2]))},
                         edges=[("in", "fc"), ("fc", "if"), ("if", "out")], type_check=False)
        x = (np.random.default_rng(1).random((50, 2)) < 0.5).astype(np.float32)
        return simulate(from_nir(g), x, SimConfig(reset="subtract")).spikes["if"].sum((0, 1))
    w2 = w.copy()
    w2[:, 0] *= 2
    assert torch.all(counts(w2) >= counts(w)) and counts(w2).sum() > counts(w).sum()


def test_wrong_input_shape_and_bad_config_are_refused(nir_paper):
    g = read_graph(nir_paper / "lif_norse.nir")
    with pytest.raises(InputError, match=r"expected \(T, 1\)"):
        simulate(g, np.zeros((10, 3)))
    with pytest.raises(InputError, match="NaN"):
        simulate(g, np.full((10, 1), np.nan))
    for bad in (0.0, -1e-4, float("nan")):
        with pytest.raises(InputError, match="dt"):
            SimConfig(dt=bad)
    with pytest.raises(InputError, match="reset"):
        SimConfig(reset="bounce")
    with pytest.raises(InputError, match="no such node"):
        simulate(g, np.zeros((10, 1)), SimConfig(record=("ghost",)))
