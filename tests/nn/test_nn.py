"""The training-side layers compute exactly what their NIR export computes."""

import nir
import numpy as np
import pytest
import torch
from torch import nn

from spinnq.errors import GraphError, InputError
from spinnq.graph import SimConfig, from_nir, simulate
from spinnq.graph.meta import read_settings
from spinnq.nn import LI, LIF, QuantConv2d, QuantLinear, SpikingSequential, SumPool2d, to_nir
from spinnq.s2.formats import to_int


def _seed_dvs_net() -> SpikingSequential:
    return SpikingSequential(
        nn.Conv2d(2, 16, 5, stride=2, padding=1, bias=False), LIF(0.93),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), LIF(0.93), SumPool2d(2),
        nn.Conv2d(16, 8, 3, padding=1, bias=False), LIF(0.93), SumPool2d(2), nn.Flatten(),
        nn.Linear(72, 256, bias=False), LIF(0.93), nn.Linear(256, 11, bias=False), LIF(0.93))


def test_seed_dvs_architecture_has_25504_weights():
    assert sum(p.numel() for p in _seed_dvs_net().parameters()) == 25_504


def test_exported_conv_net_spikes_equal_torch_forward():
    torch.manual_seed(0)
    m = _seed_dvs_net()
    with torch.no_grad():
        for mod in m:
            if isinstance(mod, nn.Conv2d | nn.Linear):
                mod.weight *= 3
    x = (torch.rand(2, 30, 2, 32, 32) < 0.2).float()
    y = m(x).detach()
    tr = simulate(from_nir(to_nir(m, (2, 32, 32))), x.numpy(), SimConfig(reset="subtract"))
    assert y.sum() > 0
    assert torch.equal(tr.spikes["12"], y)


def test_quantized_readout_net_matches_and_carries_its_scale():
    torch.manual_seed(1)
    m = SpikingSequential(QuantLinear(4, 8), LIF(0.9), QuantLinear(8, 2), LI(1.0))
    x = torch.rand(3, 10, 4) * 2
    g = from_nir(to_nir(m, (4,)))
    assert isinstance(g.nodes["3"], nir.I)
    tr = simulate(g, x.numpy(), SimConfig(reset="subtract"))
    torch.testing.assert_close(tr.v["3"], m(x).detach(), rtol=0, atol=1e-6)
    scale = g.nodes["0"].metadata["w_scale"]
    w_int, sat = to_int(g.nodes["0"].weight, scale)
    assert sat == 0 and np.abs(w_int).max() == 127
    np.testing.assert_allclose(w_int / scale, g.nodes["0"].weight, atol=1e-6)


def test_quant_conv_truncates_toward_zero_like_the_chip():
    layer = QuantConv2d(2, 1, 1, bias=False)
    with torch.no_grad():  # scale = 127 / 1.0; -0.0078 * 127 = -0.99: trunc 0, round -1
        layer.weight[:] = torch.tensor([1.0, -0.0078]).view(1, 2, 1, 1)
    assert layer.quant_weight()[0, 1, 0, 0].item() == 0.0
    assert layer.quant_weight()[0, 0, 0, 0].item() == 1.0


def test_surrogate_gradient_flows_through_lif():
    m = SpikingSequential(nn.Linear(3, 5), LIF(0.9), nn.Linear(5, 1), LI())
    x = torch.rand(4, 8, 3)
    m(x).sum().backward()
    assert m[0].weight.grad is not None and m[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("beta", [0.0, 1.5, -1])
def test_bad_beta_is_refused(beta):
    with pytest.raises(InputError, match="beta"):
        LIF(beta)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_export_records_reset_dt_and_convention(reset):
    m = SpikingSequential(nn.Linear(3, 4), LIF(0.9, reset=reset), nn.Linear(4, 2), LI(0.8))
    g = to_nir(m, (3,), dt=1e-3)
    assert read_settings(g.metadata) == {"reset": reset, "convention": "nir", "dt": 1e-3}


def test_export_of_mixed_resets_is_refused():
    m = SpikingSequential(nn.Linear(3, 4), LIF(0.9, reset="zero"), nn.Linear(4, 2),
                          LIF(0.9, reset="subtract"))
    with pytest.raises(GraphError, match="mixes resets"):
        to_nir(m, (3,))
