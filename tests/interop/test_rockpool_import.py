"""Graphs exported by Rockpool 3.1's own exporter give Rockpool's own spikes in spinnq.

A `Sequential(LinearTorch, LIFTorch, ...)` is exported with
`rockpool.nn.modules.torch.nir.to_nir(net, torch.zeros(n_in))` (the default sample data adds
a batch axis to the Input node), run in Rockpool, and simulated by spinnq with
`convention="rockpool"` (dt = Rockpool's 1 ms, subtract reset: the convention's defaults):
0 mismatches. Rockpool's reading: decays exp(-dt/tau), `I <- beta (I + x)`,
`v <- alpha v + I + bias`, spikes at v >= v_th; r and w_in are ignored (as Rockpool's own
importer does). LIFTorch emits up to 2^16 spikes per step by default; NIR edges and the chip
carry one, so these networks use `max_spikes_per_dt=1`. LIFTorch's bias is not exported by
Rockpool (its exporter writes v_leak = 0): use biases in the LinearTorch layers instead.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("rockpool", reason="pip install '.[interop]' (rockpool)")

from rockpool.nn.combinators import Sequential  # noqa: E402
from rockpool.nn.modules import LIFTorch, LinearTorch  # noqa: E402
from rockpool.nn.modules.torch.nir import to_nir  # noqa: E402

from spinnq.graph import SimConfig, from_nir, simulate  # noqa: E402
from spinnq.graph.meta import run_settings  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
T, BATCH = 60, 3


def build(bias: bool, weak: float = 1.0) -> Sequential:
    net = Sequential(
        LinearTorch((6, 12), has_bias=bias),
        LIFTorch(12, tau_syn=0.01, tau_mem=0.02, max_spikes_per_dt=1),
        LinearTorch((12, 4), has_bias=bias),
        LIFTorch(4, tau_syn=0.005, tau_mem=0.03, threshold=0.8, max_spikes_per_dt=1))
    with torch.no_grad():
        for i in (0, 2):
            net[i].weight.data *= 3 * weak
    return net


def run_rockpool(net: Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    net.reset_state()
    with torch.no_grad():
        out, _, rec = net(x, record=True)
    return {"1_LIFTorch": rec["1_LIFTorch_output"], "3_LIFTorch": out}


@pytest.mark.parametrize("bias, weak", [(False, 1.0), (True, 1.0), (False, 0.5)])
def test_rockpool_export_matches_rockpool_spike_for_spike(bias, weak):
    torch.manual_seed(1)
    net = build(bias, weak)
    x = (torch.rand(BATCH, T, 6) < 0.3).float()
    ref = run_rockpool(net, x)
    g = from_nir(to_nir(net, torch.zeros(6)))
    st = run_settings({}, convention="rockpool")
    cfg = SimConfig(dt=st["dt"], reset=st["reset"], convention="rockpool", record=tuple(ref))
    tr = simulate(g, x, cfg)
    assert all(r.sum() > 0.02 * r.numel() for r in ref.values())
    mism = {k: int((tr.spikes[k] != r).sum()) for k, r in ref.items()}
    assert sum(mism.values()) == 0, mism
    plain = simulate(g, x, SimConfig(dt=1e-3, reset="subtract", record=tuple(ref)))
    assert sum(int((plain.spikes[k] != r).sum()) for k, r in ref.items()) > 0


def test_rockpool_graph_runs_on_the_chip_close_to_rockpool():
    """8-bit weights on the chip, compared with Rockpool's spike counts per output neuron."""
    torch.manual_seed(2)
    net = build(True)
    x = (torch.rand(8, T, 6) < 0.3).float()
    ref = run_rockpool(net, x)["3_LIFTorch"]
    g = from_nir(to_nir(net, torch.zeros(6)))
    prog = compile(g, S2Config(dt=1e-3, reset="subtract", convention="rockpool"))
    chip = emulate(prog, x).spikes["3_LIFTorch"]
    a, b = ref.sum(1), chip.sum(1)
    assert ref.sum() > 50
    assert float((a - b).abs().sum()) <= 0.1 * float(a.sum())
