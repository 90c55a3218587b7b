"""A chain of convolutions, pooling and neurons in one compiled pass: the float reference's
fast path (`Simulator.steps`).

Layer by layer, the reference writes every node's output for a chunk of steps as a dense
(T, B, C, H, W) tensor, and each convolution scans its whole input for the few non-zero
values again. A chain -- a 2-D convolution or pooling node, then convolutions, pooling and
NIR neurons each fed by the one before and feeding only the next -- runs here frame by frame
instead (one sample's steps in turn, every layer of the chain per step): one frame of every
layer stays in cache, a spiking layer hands the next one the list of neurons that fired
(collected 64 at a time through a packed mask), and only the layers a caller reads are
written out (with the spike count of every layer, which is what `float_eval` reads).

The arithmetic is that of the layer-by-layer kernels, operation for operation in the same
order: `events.conv2d` (each output starts at its bias and adds `x * w` of each non-zero
input in (kernel row, kernel column, input channel) order), `events.pool2d` (0, then the
window's non-zero inputs in (row, column) order, then the divisor) and `kernels.lif_scan`
(`lif_step`'s operations; no fused multiply-add, no fast-math). So every spike and voltage
equals the layer-by-layer path's, bit for bit (tests/graph/test_fused.py, and the layer-wise
tests that compare with stepping the graph a step at a time). Neurons are laid out channels
last inside the chain (H, W, C), the order a convolution scatters into.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spinnq.graph import events
from spinnq.graph.kernels import ConvP, LIFP, LIFState, PoolP

try:  # numba is a core dependency; without it `Simulator` keeps the layer-wise path
    from numba import njit
    from numba.cpython.unsafe.numbers import trailing_zeros
except ImportError:  # pragma: no cover
    njit = None

Tensor = torch.Tensor
CONV, POOL, NEURON = 0, 1, 2  # layer kinds
SPIKING, SUBTRACT, INCLUSIVE, CUBA = 1, 2, 4, 8  # neuron flags
# columns of a chain's layer table: kind, input and output size per frame, input channels,
# output channels (convolution) or divisor (pooling), parameters' offset in `fp` (and the
# bias's, convolutions), taps'
# offsets in `ptr` and in `yoff`/`woff`, state offset (neurons), scratch offset, column in
# `outs` and in `vouts` (-1: not written out), neuron flags
KIND, N_IN, N_OUT, CH, OCH, P0, P1, T0, T1, S0, Y0, OUT, VOUT, FLAGS = range(14)


def available() -> bool:
    return njit is not None


@dataclass
class Layer:
    """One node of a chain as the kernel takes it."""

    kind: int
    params: ConvP | PoolP | LIFP
    in_shape: tuple[int, int, int]  # (C, H, W)
    out_shape: tuple[int, int, int]


def _hwc(a: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
    """A neuron parameter broadcast to the layer's (C, H, W) shape, flat in (H, W, C) order."""
    full = torch.broadcast_to(a.to(dtype), shape)
    return full.permute(1, 2, 0).reshape(-1).contiguous().numpy()


class Chain:
    """The tables of a chain of `Layer`s (built once per simulator) and its runs."""

    def __init__(self, layers: list[Layer], dtype: torch.dtype):
        self.layers, self.dtype = layers, dtype
        rows, fp, ptr, tap, state, scratch = [], [], [], [], 0, 0
        at = {"fp": 0, "ptr": 0, "tap": 0}
        for ly in layers:
            n_in, n_out = int(np.prod(ly.in_shape)), int(np.prod(ly.out_shape))
            row = [ly.kind, n_in, n_out, ly.in_shape[0], 0, at["fp"], 0, at["ptr"],
                   at["tap"], state, scratch, -1, -1, 0]
            if ly.kind == NEURON:
                p = ly.params
                z = torch.zeros((), dtype=dtype)
                fp += [_hwc(a if a is not None else z, ly.out_shape, dtype) for a in
                       (p.alpha, p.gain, p.leak, p.v_th, p.v_reset, p.syn_alpha, p.syn_gain)]
                row[FLAGS] = ((p.v_th is not None) * SPIKING | p.subtract * SUBTRACT
                              | p.inclusive * INCLUSIVE | (p.syn_alpha is not None) * CUBA)
                state += n_out * (2 if p.syn_alpha is not None else 1)
            else:
                p = ly.params
                kernel = p.hwio.shape[:2] if ly.kind == CONV else p.kernel
                dil = p.dilation if ly.kind == CONV else (1, 1)
                o = p.hwio.shape[3] if ly.kind == CONV else ly.in_shape[0]
                t = events.tap_table(ly.in_shape[1:], ly.out_shape[1:], tuple(kernel),
                                     tuple(p.stride), tuple(p.padding), tuple(dil),
                                     ly.in_shape[0], o)
                ptr.append(t[0])
                tap += [t[1:]]
                if ly.kind == CONV:
                    b = p.bias if p.bias is not None else torch.zeros(o)
                    fp += [p.hwio.to(dtype).reshape(-1).numpy(), b.to(dtype).numpy()]
                    row[OCH], row[P1] = o, at["fp"] + p.hwio.numel()
                else:
                    row[OCH] = p.divisor if p.divisor is not None else kernel[0] * kernel[1]
                at["ptr"] += len(t[0])
                at["tap"] += len(t[1])
            at["fp"] = sum(len(a) for a in fp)
            scratch += n_out
            rows.append(row)
        self.desc = np.asarray(rows, dtype=np.int64)
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        self.fp = np.concatenate([np.asarray(a, dtype=np_dtype) for a in fp])
        self.ptr = np.concatenate(ptr).astype(np.uint64)
        self.yoff = np.concatenate([t[0] for t in tap]).astype(np.uint64)
        self.woff = np.concatenate([t[1] for t in tap]).astype(np.uint64)
        self.state_size = state

    def run(self, x: Tensor, states: list[LIFState | None], write: set[int],
            keep_v: set[int]) -> tuple[dict[int, Tensor], dict[int, Tensor],
                                       list[LIFState | None], np.ndarray]:
        """The chain over x (T, B, C, H, W), any strides: the outputs of the layers in `write`
        and the voltages after each step of the neurons in `keep_v` ((T, B, C, H, W),
        channels last in memory), every neuron's final state (`states`: theirs before, None
        for the other layers) and each layer's spike count (zero for non-spiking ones)."""
        t, b = x.shape[0], x.shape[1]
        desc = self.desc.copy()
        width = {OUT: 0, VOUT: 0}
        for col, chosen in ((OUT, write), (VOUT, keep_v)):
            for i in sorted(chosen):
                desc[i, col] = width[col]
                width[col] += desc[i, N_OUT]
        state = np.empty((b, self.state_size), dtype=self.fp.dtype)
        for i, s in enumerate(states):
            if s is not None:
                n, at = desc[i, N_OUT], desc[i, S0]
                state[:, at:at + n] = s.v.permute(0, 2, 3, 1).reshape(b, n).numpy()
                if s.i is not None:
                    state[:, at + n:at + 2 * n] = s.i.permute(0, 2, 3, 1).reshape(b, n).numpy()
        outs = np.empty((t, b, width[OUT]), dtype=self.fp.dtype)
        vouts = np.empty((t, b, width[VOUT]), dtype=self.fp.dtype)
        counts = np.zeros(len(self.layers), dtype=np.int64)
        frames = x.detach().permute(0, 1, 3, 4, 2).numpy()  # (T, B, H, W, C): a view
        _run(frames, desc, self.fp, self.ptr, self.yoff, self.woff, state, outs, vouts, counts)

        def back(a: np.ndarray, lead: tuple, i: int, off: int) -> Tensor:
            c, h, w = self.layers[i].out_shape
            n = c * h * w
            return torch.from_numpy(a[..., off:off + n]).reshape(*lead, h, w, c).movedim(-1, -3)

        new = [None if s is None else LIFState(
            back(state, (b,), i, desc[i, S0]),
            back(state, (b,), i, desc[i, S0] + desc[i, N_OUT]) if s.i is not None else None)
            for i, s in enumerate(states)]
        return ({i: back(outs, (t, b), i, desc[i, OUT]) for i in write},
                {i: back(vouts, (t, b), i, desc[i, VOUT]) for i in keep_v}, new, counts)


if njit is not None:
    _GATHER = np.uint64(0x0102040810204080)

    @njit(cache=True, nogil=True)
    def _collect(flags, fw, n, ev):  # pragma: no cover - compiled
        """Indices of the non-zero flags[0:n] (0/1 bytes; fw the same memory as 64-bit
        words) into ev, ascending; how many. 64 at a time: a word's 8 flags gathered into a
        byte by a multiply, then one store per set bit (its trailing-zero count), the first 8
        without a branch (the s2 event engine's collection)."""
        nb = n >> 6
        m = 0
        for blk in range(nb):
            mask = np.uint64(0)
            for k in range(8):
                mask |= ((fw[blk * 8 + k] * _GATHER) >> np.uint64(56)) << np.uint64(8 * k)
            i0 = blk * 64
            for _ in range(8):
                ev[m] = i0 + np.int64(trailing_zeros(mask))
                m += mask != 0
                mask &= mask - np.uint64(1)
            while mask != 0:
                ev[m] = i0 + np.int64(trailing_zeros(mask))
                m += 1
                mask &= mask - np.uint64(1)
        for i in range(nb * 64, n):
            ev[m] = i
            m += flags[i] != 0
        return m

    @njit(cache=True, nogil=True)
    def _input_events(x, t, b, flags, fw, ev, evv):  # pragma: no cover - compiled
        """Frame (t, b) of x (T, B, H, W, C): its non-zero values and their (H, W, C)
        indices, ascending, into ev / evv; how many."""
        h, w, c = x.shape[2], x.shape[3], x.shape[4]
        k = 0
        for i in range(h):
            for j in range(w):
                for q in range(c):
                    flags[k] = x[t, b, i, j, q] != 0
                    k += 1
        m = _collect(flags, fw, k, ev)
        for e in range(m):
            pix, q = divmod(ev[e], c)
            i, j = divmod(pix, w)
            evv[e] = x[t, b, i, j, q]
        return m

    @njit(cache=True, nogil=True)
    def _dense_events(y, flags, fw, ev, evv):  # pragma: no cover - compiled
        """`_input_events` of a layer's dense output y."""
        n = y.shape[0]
        for k in range(n):
            flags[k] = y[k] != 0
        m = _collect(flags, fw, n, ev)
        for e in range(m):
            evv[e] = y[ev[e]]
        return m

    @njit(cache=True, nogil=True)
    def _conv(ev, evv, m, y, channels, w, bias, ptr, yoff, woff):  # pragma: no cover
        """`events.conv2d`'s sum for one frame: y = bias, then each event's taps in order."""
        o_n = np.uint64(bias.shape[0])
        for j in range(0, np.uint64(y.shape[0]), o_n):
            for o in range(o_n):
                y[j + o] = bias[o]
        for e in range(m):
            k = ev[e]
            v = evv[e]
            pix = k // channels
            co = np.uint64(k - pix * channels) * o_n
            for a in range(ptr[pix], ptr[pix + 1]):
                yb = yoff[a]
                wb = woff[a] + co
                for o in range(o_n):
                    y[yb + o] += v * w[wb + o]

    @njit(cache=True, nogil=True)
    def _pool(ev, evv, m, y, channels, divisor, ptr, yoff):  # pragma: no cover - compiled
        """`events.pool2d`'s sum for one frame: 0, each event into its windows, / divisor."""
        y[:] = 0
        for e in range(m):
            k = ev[e]
            pix = k // channels
            c = np.uint64(k - pix * channels)
            for a in range(ptr[pix], ptr[pix + 1]):
                y[yoff[a] + c] += evv[e]
        if divisor != 1:
            d = y.dtype.type(divisor)
            for j in range(y.shape[0]):
                y[j] = y[j] / d

    @njit(cache=True, nogil=True)
    def _neuron(x, s, p, n, flags, y, fired):  # pragma: no cover - compiled
        """`kernels.lif_scan`'s step for one frame: x the input, s the state (v, then i for
        CubaLIF), p the parameters (alpha, gain, leak, v_th, v_reset, syn_alpha, syn_gain,
        n each); y the output (spikes, or v), fired the 0/1 spike flags; the spike count."""
        spiking, subtract = (flags & SPIKING) != 0, (flags & SUBTRACT) != 0
        inclusive, cuba = (flags & INCLUSIVE) != 0, (flags & CUBA) != 0
        zero = y.dtype.type(0)
        one = y.dtype.type(1)
        count = 0
        for k in range(n):
            xin = x[k]
            if cuba:  # i = syn_alpha * i + syn_gain * x; x = i
                i = p[5 * n + k] * s[n + k] + p[6 * n + k] * xin
                s[n + k] = i
                xin = i
            w = p[k] * s[k] + p[n + k] * xin + p[2 * n + k]
            if spiking:
                th = p[3 * n + k]
                z = (w > th) | (inclusive & (w == th))
                y[k] = one if z else zero
                fired[k] = z
                count += z
                w = (w - (th if z else zero)) if subtract else (p[4 * n + k] if z else w)
            else:
                y[k] = w
            s[k] = w
        return count

    @njit(cache=True, nogil=True, error_model="numpy")
    def _run(x, desc, fp, ptr, yoff, woff, state, outs, vouts, counts):  # pragma: no cover
        """The chain (rows of `desc`) over every frame of x (T, B, H, W, C): one sample's
        steps in turn, every layer per step, the layers' dense outputs in one scratch frame
        (`Chain.run` says what the arguments hold)."""
        n0 = x.shape[2] * x.shape[3] * x.shape[4]
        nmax, size = n0, 0
        for d in desc:
            nmax, size = max(nmax, d[N_OUT]), max(size, d[Y0] + d[N_OUT])
        fw = np.zeros(nmax // 8 + 2, dtype=np.uint64)  # nmax bytes and more
        flags = fw.view(np.uint8)
        ev = np.empty(nmax + 1, dtype=np.int64)
        evv = np.empty(nmax + 1, dtype=x.dtype)
        y = np.empty(size, dtype=x.dtype)
        for b in range(x.shape[1]):
            s = state[b]
            for t in range(x.shape[0]):
                m = _input_events(x, t, b, flags, fw, ev, evv)
                for lay in range(desc.shape[0]):
                    d = desc[lay]
                    out = y[d[Y0]:d[Y0] + d[N_OUT]]
                    if lay > 0:  # the layer before: its dense output, maybe its spikes
                        q = desc[lay - 1]
                        prev = y[q[Y0]:q[Y0] + q[N_OUT]]
                        if d[KIND] != NEURON and q[KIND] == NEURON and q[FLAGS] & SPIKING:
                            m = _collect(flags, fw, q[N_OUT], ev)
                            evv[:m] = 1
                        elif d[KIND] != NEURON:
                            m = _dense_events(prev, flags, fw, ev, evv)
                    if d[KIND] == CONV:
                        _conv(ev, evv, m, out, d[CH], fp[d[P0]:d[P1]], fp[d[P1]:d[P1] + d[OCH]],
                              ptr[d[T0]:], yoff[d[T1]:], woff[d[T1]:])
                    elif d[KIND] == POOL:
                        _pool(ev, evv, m, out, d[CH], d[OCH], ptr[d[T0]:], yoff[d[T1]:])
                    else:
                        counts[lay] += _neuron(prev, s[d[S0]:], fp[d[P0]:], d[N_OUT], d[FLAGS],
                                               out, flags)
                    if d[OUT] >= 0:
                        outs[t, b, d[OUT]:d[OUT] + d[N_OUT]] = out
                    if d[VOUT] >= 0:
                        vouts[t, b, d[VOUT]:d[VOUT] + d[N_OUT]] = s[d[S0]:d[S0] + d[N_OUT]]
