"""Graphs exported by Sinabs 3.1's own `sinabs.to_nir` give Sinabs's own spikes in spinnq.

Each network is built from Sinabs's `*Squeeze` layers (the ones `sinabs.from_model` and
`sinabs.from_nir` make; input (batch * time, ...)), run in Sinabs, exported with
`sinabs.to_nir(net, sample)`, and simulated by spinnq with `convention="sinabs"` (dt 1: Sinabs
counts time in steps; reset subtract: the convention's defaults; --reset zero for
`MembraneReset`): 0 mismatches, multi-spike steps included. Sinabs's reading: IAF
`v <- v + x`, LIF `v <- alpha v + (1 - alpha) x` (norm_input, the LIF default) with
alpha = exp(-1/tau) formed in float32, ExpLeak `v <- alpha v + x`; MultiSpike emits
floor(v / v_th) spikes where v > 0 and subtracts that many thresholds; an IAF's membrane is
clipped below at min_v_mem = -v_th (as Sinabs's importer and `from_model` set it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

sinabs = pytest.importorskip("sinabs", reason="pip install --no-deps sinabs==3.1.3 (Makefile)")
sl = pytest.importorskip("sinabs.layers")

from sinabs.activation import MembraneReset, MembraneSubtract  # noqa: E402

from spinnq.graph import SimConfig, from_nir, simulate  # noqa: E402
from spinnq.graph.meta import run_settings  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
B, T = 3, 40
RESETS = {"subtract": MembraneSubtract, "zero": MembraneReset}


def build(kind: str, reset: str, b: int = B,
          gain: float | None = None) -> tuple[nn.Sequential, tuple, dict[int, str]]:
    """(net, input shape, {layer index: recorded name}) for batches of `b`; weights scaled
    by `gain` (default: busy layers, several spikes in one step somewhere)."""
    def iaf(reset: str) -> nn.Module:
        return sl.IAFSqueeze(batch_size=b, min_v_mem=-1.0, reset_fn=RESETS[reset]())

    def lif(reset: str, n: int | None = None) -> nn.Module:
        kw = {"tau_mem": 6.0}
        if n is not None:  # per-neuron taus: Sinabs's exporter needs one shape for all
            kw = {"tau_mem": torch.linspace(2.0, 20.0, n),
                  "spike_threshold": torch.full((n,), 0.7)}
        return sl.LIFSqueeze(batch_size=b, reset_fn=RESETS[reset](), **kw)

    gain_ = gain
    if kind == "conv-iaf":  # the NIR paper's shape: conv, sum pooling, conv, linear
        net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), iaf(reset),
                            sl.SumPool2d(2), nn.Conv2d(4, 6, 3, stride=2), iaf(reset),
                            nn.Flatten(), nn.Linear(6, 5), iaf(reset))
        shape, gain = (2, 8, 8), 3.0
    elif kind == "conv-lif":
        net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), lif(reset), sl.SumPool2d(2),
                            nn.Flatten(), nn.Linear(64, 6), lif(reset, 6))
        shape, gain = (2, 8, 8), 12.0
    else:  # dense LIF layers into an ExpLeak read-out
        net = nn.Sequential(nn.Linear(10, 16), lif(reset), nn.Linear(16, 8), lif(reset, 8),
                            nn.Linear(8, 4), sl.ExpLeakSqueeze(tau_mem=5.0, batch_size=b))
        shape, gain = (10,), 12.0
    with torch.no_grad():
        for m in net:
            if hasattr(m, "weight"):
                m.weight *= gain if gain_ is None else gain_
    rec = {i: str(i) for i, m in enumerate(net) if isinstance(m, sl.StatefulLayer)}
    return net, shape, rec


def run_sinabs(net: nn.Sequential, x: torch.Tensor, rec: dict[int, str]) -> dict:
    """Sinabs's own outputs of the recorded layers, (b, T, ...)."""
    b, t = x.shape[:2]
    out: dict[str, torch.Tensor] = {}
    hooks = [net[i].register_forward_hook(
        lambda m, a, o, k=k: out.__setitem__(k, o.reshape(b, t, *o.shape[1:])))
        for i, k in rec.items()]
    sinabs.reset_states(net)
    with torch.no_grad():
        net(x.reshape(b * t, *x.shape[2:]))
    for h in hooks:
        h.remove()
    return out


def export(net: nn.Sequential, x: torch.Tensor):
    return sinabs.to_nir(net, x[0, :x.shape[0]])  # one step of a batch


def spinnq_traces(g, x, rec: dict, reset: str, convention: str = "sinabs") -> dict:
    st = run_settings({}, convention=convention, reset=reset)
    tr = simulate(g, x, SimConfig(dt=st["dt"], reset=st["reset"], convention=convention,
                                  record=tuple(rec.values())))
    return {k: tr.spikes.get(k, tr.v.get(k)) for k in rec.values()}


@pytest.mark.parametrize("kind", ["conv-iaf", "conv-lif", "dense-lif"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_sinabs_export_matches_sinabs_step_for_step(kind, reset):
    torch.manual_seed(3)
    net, shape, rec = build(kind, reset)
    x = (torch.rand(B, T, *shape) < 0.3).float()
    ref = run_sinabs(net, x, rec)
    g = from_nir(export(net, x))
    got = spinnq_traces(g, x, rec, reset)
    spiking = [k for i, k in rec.items() if not isinstance(net[i], sl.ExpLeak)]
    assert all(float(ref[k].sum()) > 0.02 * ref[k].numel() for k in spiking), \
        {k: float(ref[k].mean()) for k in spiking}
    mism = {k: int((got[k] != r).sum()) for k, r in ref.items()}
    assert sum(mism.values()) == 0, mism
    # NIR's own reading of the same file does not give Sinabs's spikes
    plain = spinnq_traces(g, x, rec, reset, convention="nir")
    assert sum(int((plain[k] != r).sum()) for k, r in ref.items()) > 0


def test_multi_spike_steps_are_reproduced():
    """Sinabs's MultiSpike: several spikes in one step, counted as such by spinnq."""
    torch.manual_seed(4)
    net, shape, rec = build("conv-iaf", "subtract")
    x = (torch.rand(B, T, *shape) < 0.3).float()
    ref = run_sinabs(net, x, rec)
    assert max(float(r.max()) for r in ref.values()) >= 2
    got = spinnq_traces(from_nir(export(net, x)), x, rec, "subtract")
    assert all(torch.equal(got[k], r) for k, r in ref.items())


def test_sinabs_own_importer_reads_an_iaf_graph_as_spinnq_does():
    """`sinabs.from_nir` of the exported file (IAFSqueeze, min_v_mem = -v_th) gives the same
    spikes as spinnq's sinabs convention on that file."""
    torch.manual_seed(5)
    net, shape, rec = build("conv-iaf", "subtract")
    x = (torch.rand(B, T, *shape) < 0.3).float()
    g0 = export(net, x)
    back = sinabs.from_nir(g0, batch_size=B)
    with torch.no_grad():
        out = back(x.reshape(B * T, *shape))
        out = (out[0] if isinstance(out, tuple) else out).reshape(B, T, -1)
    got = spinnq_traces(from_nir(g0), x, {0: "7"}, "subtract")["7"]
    assert out.sum() > 0 and torch.equal(out, got)


def test_sinabs_defaults_are_subtract_and_one_step():
    st = run_settings({}, convention="sinabs")
    assert (st["reset"], st["dt"]) == ("subtract", 1.0)


@pytest.mark.parametrize("kind, gain", [("conv-iaf", 1.0), ("dense-lif", 6.0)])
def test_sinabs_graph_runs_on_the_chip_close_to_sinabs(kind, gain):
    """8-bit weights on the chip, compared with Sinabs's spike counts per output neuron. The
    chip sends one spike per step (Sinabs may send several) and has no IAF floor: compile
    names both. Weights are weaker than in the float tests: mostly one spike per step."""
    torch.manual_seed(6)
    net, shape, rec = build(kind, "subtract", b=8, gain=gain)
    x = (torch.rand(8, T, *shape) < 0.3).float()
    out_layer = str(max(i for i in rec if not isinstance(net[i], sl.ExpLeak)))
    ref = run_sinabs(net, x, rec)[out_layer]
    g = from_nir(export(net, x))
    prog = compile(g, S2Config(dt=1.0, reset="subtract", convention="sinabs"))
    assert any("MultiSpike" in n for n in prog.notes)
    assert any("min_v_mem" in n for n in prog.notes) == (kind == "conv-iaf")
    chip = emulate(prog, x, record=[out_layer]).spikes[out_layer]
    a, b = ref.sum(1), chip.sum(1)
    assert ref.sum() > 30
    assert float((a - b).abs().sum()) <= 0.15 * float(a.sum())


def test_cubalif_reads_as_sinabs_lif_with_tau_syn():
    """Sinabs's exporter drops tau_syn (it writes a LIF); a CubaLIF node under the sinabs
    convention is stepped as Sinabs's LIF with tau_syn: `i <- alpha_syn (i + x)` first."""
    import nir

    torch.manual_seed(8)
    lin = nn.Linear(6, 5)
    with torch.no_grad():
        lin.weight *= 10.0
    layer = sl.LIFSqueeze(tau_mem=8.0, tau_syn=3.0, batch_size=B)
    x = (torch.rand(B, T, 6) < 0.3).float()
    with torch.no_grad():
        ref = layer(lin(x.reshape(B * T, 6))).reshape(B, T, 5)
    ones = np.ones(5, np.float32)
    g = nir.NIRGraph(nodes={
        "input": nir.Input(np.array([6])),
        "fc": nir.Affine(lin.weight.detach().numpy(), lin.bias.detach().numpy()),
        "lif": nir.CubaLIF(tau_syn=3 * ones, tau_mem=8 * ones, r=ones, v_leak=0 * ones,
                           v_threshold=ones, w_in=ones),
        "output": nir.Output(np.array([5]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    got = spinnq_traces(from_nir(g), x, {0: "lif"}, "subtract")["lif"]
    assert ref.sum() > 0.05 * ref.numel() and torch.equal(got, ref)


@pytest.mark.parametrize("kind", ["conv-iaf", "dense-lif"])
def test_export_keeps_the_sinabs_reading(kind):
    """`spinnq export` stamps convention sinabs (its reading is not NIR's): compiled with the
    stamp and no further scaling, the integer graph gives the same chip program."""
    import dataclasses

    from spinnq.graph.meta import run_settings
    from spinnq.s2.export import export_graph

    torch.manual_seed(9)
    net, shape, rec = build(kind, "subtract")
    g = from_nir(export(net, (torch.rand(B, T, *shape) < 0.3).float()))
    cfg = S2Config(dt=1.0, reset="subtract", convention="sinabs")
    q = from_nir(export_graph(g, cfg))
    st = run_settings(q.metadata)
    assert (st["convention"], st["reset"], st["dt"]) == ("sinabs", "subtract", 1.0)
    a = compile(g, cfg)
    b = compile(q, dataclasses.replace(cfg, weight_scale="none", convention=st["convention"]))
    for k, pop in a.populations.items():
        for p, v in pop.params.items():
            assert np.array_equal(v, b.populations[k].params[p]), (k, p)
    assert [p.weight.tolist() for p in a.projections] == [p.weight.tolist() for p in b.projections]
