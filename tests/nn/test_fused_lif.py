"""The fused LIF layer (one autograd node per sequence, `lif_sequence`) gives the spikes and
gradients of stepping `lif_step` under autograd (`LIF(fused=False)`), on every reset rule,
on numba's CPU kernels and on the torch ops used elsewhere (GPUs)."""

import pytest
import torch
from torch import nn

import spinnq.nn.functional as fn
from spinnq.nn import LIF, SpikingSequential, SumPool2d


def _grads(layer_or_net, x, gout):
    x = x.detach().clone().requires_grad_()
    out = layer_or_net(x)
    (out * gout).sum().backward()
    params = [p.grad.clone() for p in getattr(layer_or_net, "parameters", lambda: [])()]
    return out.detach(), x.grad, params


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_fused_lif_equals_the_stepped_layer_bit_for_bit(reset, detach, dtype, kernel,
                                                          monkeypatch):
    if kernel == "torch":
        monkeypatch.setattr(fn, "_numba_ok", lambda x: False)
    torch.manual_seed(0)
    x = torch.randn(3, 40, 2, 5, dtype=dtype) * 0.8
    gout = torch.randn(3, 40, 2, 5, dtype=dtype)
    ref = _grads(LIF(0.9, 1.0, reset, 9.7, detach, fused=False), x, gout)
    got = _grads(LIF(0.9, 1.0, reset, 9.7, detach, fused=True), x, gout)
    assert ref[0].sum() > 0 and torch.equal(ref[0], got[0])
    assert torch.equal(ref[1], got[1])


def test_fused_small_conv_net_spikes_and_weight_gradients_equal_the_stepped_net():
    def net(fused: bool) -> SpikingSequential:
        torch.manual_seed(3)
        return SpikingSequential(
            nn.Conv2d(2, 4, 3, padding=1, bias=False), LIF(0.93, slope=9.7, fused=fused),
            SumPool2d(2), nn.Flatten(), nn.Linear(16, 3, bias=False),
            LIF(0.93, slope=9.7, fused=fused))

    x = (torch.rand(2, 25, 2, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    gout = torch.ones(2, 25, 3)
    ref, got = _grads(net(False), x, gout), _grads(net(True), x, gout)
    assert ref[0].sum() > 0 and torch.equal(ref[0], got[0])
    for a, b in zip(ref[2], got[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_convolutions_in_frame_chunks_give_the_same_spikes_and_gradients():
    torch.manual_seed(4)
    net = SpikingSequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), LIF(0.9, slope=9.7),
                            nn.Flatten(), nn.Linear(64, 3, bias=False), LIF(0.9, slope=9.7))
    with torch.no_grad():
        net[0].weight *= 4
    x = (torch.rand(3, 30, 2, 4, 4, generator=torch.Generator().manual_seed(2)) < 0.4).float()
    gout = torch.ones(3, 30, 3)
    net.conv_chunk = 0
    whole = _grads(net, x, gout)
    net.zero_grad()
    net.conv_chunk = 7  # 90 frames in 13 calls, the last one short
    chunked = _grads(net, x, gout)
    assert whole[0].sum() > 0 and torch.equal(whole[0], chunked[0])
    torch.testing.assert_close(whole[1], chunked[1], rtol=1e-6, atol=1e-7)
    for a, b in zip(whole[2], chunked[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _chunk_net(fused: bool = True, readout=None) -> SpikingSequential:
    torch.manual_seed(5)
    net = SpikingSequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), LIF(0.93, slope=9.7, fused=fused),
        SumPool2d(2), nn.Conv2d(4, 4, 3, padding=1, bias=False),
        LIF(0.9, slope=9.7, reset="zero", fused=fused), nn.Flatten(),
        nn.Linear(16, 3, bias=False), readout or LIF(0.93, slope=9.7, fused=fused))
    with torch.no_grad():
        net[0].weight *= 3
        net[3].weight *= 3
    return net


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_time_chunks_give_the_whole_sequence_spikes_and_gradients(channels_last, fused):
    """The trainer's time chunks (membranes carried from chunk to chunk, here 7 steps of 3
    samples and a short last chunk) against the whole sequence layer by layer."""
    x = (torch.rand(3, 30, 2, 4, 4, generator=torch.Generator().manual_seed(6)) < 0.4).float()
    gout = torch.randn(3, 30, 3, generator=torch.Generator().manual_seed(7))
    net = _chunk_net(fused)
    net.chunk_frames = 0
    whole = _grads(net, x, gout)
    net.zero_grad()
    net.chunk_frames, net.channels_last = 21, channels_last
    chunked = _grads(net, x, gout)
    assert whole[0].sum() > 10 and torch.equal(whole[0], chunked[0])
    torch.testing.assert_close(whole[1], chunked[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(whole[2], chunked[2], strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_time_chunks_carry_a_leaky_readout_and_take_uint8_frames():
    from spinnq.nn import LI

    x = (torch.rand(2, 25, 2, 4, 4, generator=torch.Generator().manual_seed(8)) < 0.4)
    net = _chunk_net(readout=LI(0.9))
    net.chunk_frames = 0
    whole = net(x.float())
    net.chunk_frames = 8  # 4 steps of 2 samples a chunk
    assert torch.equal(net(x.to(torch.uint8)), whole)
    assert torch.equal(net(x.float()), whole)


def test_seed_network_trains_the_same_in_time_chunks():
    """The gesture model on two 24-step recordings, two SGD steps: the chunked trainer's
    spike counts, losses and weight gradients equal the whole-sequence trainer's (counts bit
    for bit, the rest within float rounding: a weight gradient sums some 30,000 products in
    another order, so its elements agree to about 1e-4 of its largest)."""
    import torch.nn.functional as F

    from spinnq.tasks.gesture.model import ModelConfig, build_model

    x = (torch.rand(2, 24, 2, 32, 32, generator=torch.Generator().manual_seed(9)) < 0.1)
    x = x.to(torch.uint8)
    target = torch.full((2, 11), 6.0)
    runs = []
    for chunk in (0, 16):  # 8 steps of 2 samples a chunk
        torch.manual_seed(0)
        net = build_model(ModelConfig())
        with torch.no_grad():  # louder than at initialisation: every layer spikes
            for p in net.parameters():
                p *= 4
        net.chunk_frames = chunk
        opt = torch.optim.SGD(net.parameters(), lr=1e-4)
        out = []
        for _ in range(2):
            c = net(x).sum(1)
            loss = F.mse_loss(c, target)
            opt.zero_grad()
            loss.backward()
            out.append((c.detach(), loss.item(), [p.grad.clone() for p in net.parameters()]))
            opt.step()
        runs.append(out)
    for (c0, l0, g0), (c1, l1, g1) in zip(*runs, strict=True):
        assert c0.sum() > 0 and torch.equal(c0, c1)
        assert l0 == pytest.approx(l1, rel=1e-6)
        for a, b in zip(g0, g1, strict=True):
            assert a.abs().max() > 0
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
