"""The reference simulator's event-by-event convolution and pooling (`spinnq.graph.events`):
their arithmetic is the one the module states (a float sum in a fixed order), whatever the
batch, layout or density, and within float rounding of torch's dense operators."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spinnq.graph import events


def _frames(rng, shape, p=0.1, binary=True):
    x = rng.random(shape) < p
    return torch.from_numpy(x.astype(np.float32) if binary else
                            (x * rng.normal(size=shape)).astype(np.float32))


def _sequential_conv(x, w, b, stride, pad, dil):
    """The stated definition, one float32 operation at a time: bias, then x * w of each
    input in (kernel row, kernel column, input channel) order."""
    x, w = x.numpy(), w.numpy()
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.empty((n, o, oh, ow), np.float32)
    for f in range(n):
        for oc in range(o):
            for i in range(oh):
                for j in range(ow):
                    acc = np.float32(b[oc])
                    for a in range(kh):
                        for bb in range(kw):
                            iy, ix = i * stride[0] - pad[0] + a * dil[0], j * stride[1] - pad[1] + bb * dil[1]
                            if 0 <= iy < h and 0 <= ix < wd:
                                for ch in range(c):
                                    if x[f, ch, iy, ix] != 0:
                                        acc = np.float32(acc + np.float32(x[f, ch, iy, ix] * w[oc, ch, a, bb]))
                    y[f, oc, i, j] = acc
    return torch.from_numpy(y)


@pytest.mark.parametrize("stride,pad,dil,binary", [
    ((1, 1), (1, 1), (1, 1), True), ((2, 2), (1, 1), (1, 1), False),
    ((2, 1), (0, 2), (2, 1), False)])
def test_conv_is_the_stated_sum_and_close_to_torch(stride, pad, dil, binary):
    rng = np.random.default_rng(0)
    x = _frames(rng, (3, 4, 9, 8), p=0.3, binary=binary)
    w = torch.from_numpy(rng.normal(size=(5, 4, 3, 3)).astype(np.float32))
    b = torch.from_numpy(rng.normal(size=5).astype(np.float32))
    got = events.conv2d(x, w.permute(2, 3, 1, 0).contiguous(), b, stride, pad, dil)
    assert torch.equal(got, _sequential_conv(x, w, b, stride, pad, dil))
    torch.testing.assert_close(got, F.conv2d(x, w, b, stride, pad, dil), rtol=1e-5, atol=1e-5)


def test_conv_frames_alone_or_together_same_bits_in_any_layout():
    """A frame's result does not depend on the frames beside it, nor on the memory layout of
    the input: the property that lets `Simulator.steps` take many steps in one call."""
    rng = np.random.default_rng(1)
    x = _frames(rng, (4, 6, 3, 11, 11), p=0.2, binary=False)  # (B, T, C, H, W)
    w = torch.from_numpy(rng.normal(size=(16, 3, 5, 5)).astype(np.float32))
    hwio = w.permute(2, 3, 1, 0).contiguous()
    args = (None, (2, 2), (1, 1), (1, 1))
    seq = x.transpose(0, 1)  # (T, B, ...), strided
    together = events.conv2d(seq, hwio, *args)
    assert together.shape == (6, 4, 16, 5, 5)
    channels_last = seq.contiguous().permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    assert torch.equal(events.conv2d(channels_last, hwio, *args), together)
    for t in range(6):
        assert torch.equal(events.conv2d(seq[t], hwio, *args), together[t])
        assert torch.equal(events.conv2d(seq[t, 1:3].contiguous(), hwio, *args),
                           together[t, 1:3])


@pytest.mark.parametrize("kernel,stride,pad,divisor", [
    ((2, 2), (2, 2), (0, 0), 1), ((2, 2), (2, 2), (0, 0), 4), ((3, 3), (2, 2), (1, 1), 9),
    ((3, 2), (1, 2), (1, 0), 1)])
def test_pooling_equals_torch_bit_for_bit(kernel, stride, pad, divisor):
    rng = np.random.default_rng(2)
    x = _frames(rng, (5, 3, 9, 10), p=0.5, binary=False)
    want = F.avg_pool2d(x, kernel, stride, pad, count_include_pad=True,
                        divisor_override=1 if divisor == 1 else None)
    got = events.pool2d(x, kernel, stride, pad, divisor)
    assert torch.equal(got, want)
    assert torch.equal(events.pool2d(x.unsqueeze(0), kernel, stride, pad, divisor)[0], want)


def test_other_calls_go_to_torch():
    w = torch.zeros(2, 2, 3, 3)
    assert events.usable(torch.zeros(1, 2, 4, 4), w)
    assert not events.usable(torch.zeros(1, 2, 4, 4, dtype=torch.float64), w)
    assert not events.usable(torch.zeros(1, 2, 4, 4), w, groups=2)
    assert not events.usable(torch.zeros(2, 4, 4), w)
    with torch.enable_grad():
        assert not events.usable(torch.zeros(1, 2, 4, 4), w.requires_grad_())
