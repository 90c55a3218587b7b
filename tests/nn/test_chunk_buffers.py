"""The chunked trainer's memory reuse: the buffers a model keeps from batch to batch (input
frames, spikes, membranes, pooled spikes) and the channels-last sum pooling give the numbers
of the stepped reference trainer, and never hand out memory a live graph still reads."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spinnq.nn import LIF, SpikingSequential, SumPool2d


def _net(fused: bool = True) -> SpikingSequential:
    torch.manual_seed(11)
    net = SpikingSequential(
        nn.Conv2d(2, 6, 3, padding=1, bias=False), LIF(0.93, slope=9.7, fused=fused),
        SumPool2d(2), nn.Conv2d(6, 4, 3, padding=1, bias=False),
        LIF(0.9, slope=9.7, fused=fused), SumPool2d(2), nn.Flatten(),
        nn.Linear(16, 3, bias=False), LIF(0.93, slope=9.7, fused=fused))
    with torch.no_grad():
        net[0].weight *= 3
        net[3].weight *= 3
        net[7].weight *= 6
    return net


def _stepped() -> SpikingSequential:
    """The reference: LIF stepped under autograd, whole sequence, every frame in one call."""
    net = _net(fused=False)
    net.chunk_frames, net.conv_chunk = 0, 0
    return net


def _step(net: SpikingSequential, x: torch.Tensor) -> tuple:
    """(spike counts, loss, weight gradients) of one batch."""
    counts = net(x).sum(1)
    loss = F.mse_loss(counts, torch.full((x.shape[0], 3), 4.0))
    net.zero_grad()
    loss.backward()
    return counts.detach(), loss.item(), [p.grad.clone() for p in net.parameters()]


def _batches(n: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(12)
    return [(torch.rand(3, 40, 2, 8, 8, generator=g) < 0.3).to(torch.uint8) for _ in range(n)]


def test_chunked_trainer_with_kept_buffers_trains_like_the_stepped_reference():
    """Three SGD steps on two batches (the third writes into the first's buffers), the
    chunked trainer in lockstep with the stepped reference (its weights set to the
    reference's before each step, so float rounding does not compound): spike counts and
    losses equal, weight gradients within float rounding."""
    xs = _batches()
    ref, net = _stepped(), _net()
    net.chunk_frames = 21  # 7 steps of 3 samples a chunk, a short last chunk
    opt = torch.optim.SGD(ref.parameters(), lr=2e-3)
    for i in range(3):
        net.load_state_dict(ref.state_dict())
        c0, l0, g0 = _step(ref, xs[i % 2].float())
        c1, l1, g1 = _step(net, xs[i % 2])
        assert c0.sum() > 10 and torch.equal(c0, c1)
        assert l0 == l1
        for a, b in zip(g0, g1, strict=True):
            assert a.abs().sum() > 0
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(a.abs().max()))
        opt.step()


def _buffer_ptrs(net: SpikingSequential) -> set[int]:
    return {b.data_ptr() for b in net.chunk_memory()}


def test_buffers_are_reused_only_once_the_graph_is_gone():
    """A second batch after backward writes into the first batch's memory; a forward pass
    while the last graph is alive takes fresh memory, so both graphs' gradients stay right
    (against the same two forward passes of the stepped reference)."""
    xs = _batches()
    net = _net()
    net.chunk_frames = 21
    net(xs[0]).sum().backward()
    first = _buffer_ptrs(net)
    net.zero_grad()
    net(xs[1]).sum().backward()
    assert _buffer_ptrs(net) == first  # reused: no fresh memory from batch to batch

    net.zero_grad()
    a = net(xs[0]).sum(1)
    b = net(xs[1]).sum(1)  # a's graph still holds the buffers: b takes fresh ones
    fresh = _buffer_ptrs(net) - first  # (the last layer's spikes, kept by no graph, reused)
    ((a - 3) ** 2 + (b - 2) ** 2).sum().backward()
    ref = _stepped()
    ra, rb = ref(xs[0].float()).sum(1), ref(xs[1].float()).sum(1)
    ((ra - 3) ** 2 + (rb - 2) ** 2).sum().backward()
    assert torch.equal(a.detach(), ra.detach()) and torch.equal(b.detach(), rb.detach())
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert q.grad.abs().sum() > 0
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5 * float(q.grad.abs().max()))
    assert fresh


def test_inference_keeps_no_buffers_and_gives_the_training_forward():
    xs = _batches(1)
    net = _net()
    net.chunk_frames = 21
    with torch.no_grad():
        y = net(xs[0])
    assert net.chunk_memory() == []
    assert torch.equal(net(xs[0]).detach(), y)
    assert torch.equal(net(xs[0].bool()).detach(), y)  # any 0/1 dtype, one copy into floats
    assert len(net.chunk_memory()) > 0
    net.free_chunk_memory()
    assert net.chunk_memory() == []


@pytest.mark.parametrize("shape", [(5, 3, 8, 9), (4, 16, 15, 15), (2, 8, 7, 7)])
def test_channels_last_sum_pool_is_avg_pool2d_bit_for_bit(shape):
    torch.manual_seed(13)
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    ref = F.avg_pool2d(x, 2, 2, 0, divisor_override=1)
    got = SumPool2d(2)(x)
    g = torch.randn_like(ref)
    (gr,), (gg,) = torch.autograd.grad(ref, x, g), torch.autograd.grad(got, x, g)
    assert torch.equal(ref, got) and torch.equal(gr, gg)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert got.grad_fn is not None and "SumPoolCL" in type(got.grad_fn).__name__


def test_an_epochs_short_last_batch_leaves_the_full_batches_buffers():
    xs = _batches()
    net = _net()
    net.chunk_frames = 21
    net(xs[0]).sum().backward()
    full = _buffer_ptrs(net)
    net(xs[1][:2]).sum().backward()  # the short last batch of an epoch
    net(xs[1]).sum().backward()  # the next epoch's first batch: the same memory again
    assert full <= _buffer_ptrs(net)
    net(xs[0]).sum().backward()
    assert _buffer_ptrs(net) == full  # the short batch's buffers forgotten
