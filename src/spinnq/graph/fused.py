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

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from spinnq.graph import events
from spinnq.graph.kernels import LIFP, ConvP, LIFState, PoolP

try:  # numba is a core dependency; without it `Simulator` keeps the layer-wise path
    from numba import njit
    from numba.cpython.unsafe.numbers import trailing_zeros
except ImportError:  # pragma: no cover
    njit = None

Tensor = torch.Tensor
CONV, POOL, NEURON = 0, 1, 2  # layer kinds
# neuron flags (UNIFORM: every parameter one value for all neurons)
SPIKING, SUBTRACT, INCLUSIVE, CUBA, UNIFORM = 1, 2, 4, 8, 16
# columns of a chain's layer table: kind, input and output size per frame, input channels,
# output channels (convolution) or divisor (pooling), parameters' offset in `fp` (and the
# bias's, convolutions), taps'
# offsets in `ptr` and in `yoff`/`woff`, state offset (neurons), scratch offset, column in
# `outs` and in `vouts` (-1: not written out), neuron flags, log2 of the input channels
# (-1: not a power of two)
KIND, N_IN, N_OUT, CH, OCH, P0, P1, T0, T1, S0, Y0, OUT, VOUT, FLAGS, SHIFT = range(15)


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
                   at["tap"], state, scratch, -1, -1, 0, _log2(ly.in_shape[0])]
            if ly.kind == NEURON:
                p = ly.params
                z = torch.zeros((), dtype=dtype)
                laid = [_hwc(a if a is not None else z, ly.out_shape, dtype) for a in
                        (p.alpha, p.gain, p.leak, p.v_th, p.v_reset, p.syn_alpha, p.syn_gain)]
                fp += laid
                row[FLAGS] = ((p.v_th is not None) * SPIKING | p.subtract * SUBTRACT
                              | p.inclusive * INCLUSIVE | (p.syn_alpha is not None) * CUBA
                              | all((a == a[0]).all() for a in laid) * UNIFORM)
                state += n_out * (2 if p.syn_alpha is not None else 1)
            else:
                t, weights, row[OCH] = _scatter_tables(ly, dtype)
                ptr.append(t[0])
                tap.append(t[1:])
                if weights is not None:
                    fp += weights
                    row[P1] = at["fp"] + len(weights[0])
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
        self.size = np.concatenate([t[2] for t in tap]).astype(np.uint64)
        self.state_size = state

    def run(self, x: Tensor, states: list[LIFState | None], write: set[int],
            keep_v: set[int], spikes: tuple[np.ndarray, ...] | None = None
            ) -> tuple[dict[int, Tensor], dict[int, Tensor], list[LIFState | None], np.ndarray]:
        """The chain over x (T, B, C, H, W), any strides: the outputs of the layers in `write`
        and the voltages after each step of the neurons in `keep_v` ((T, B, C, H, W),
        channels last in memory), every neuron's final state (`states`: theirs before, None
        for the other layers) and each layer's spike count (zero for non-spiking ones).
        `spikes`: x's events already listed (x all 0/1), (first, end) (T, B) int64 and the
        indices (int32, (H, W, C) order, ascending per frame): frame (t, b) is
        indices[first[t, b]:end[t, b]], read instead of x (the s2 engine's decoded input,
        `s2.events.decode_input`, shared by calibration)."""
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
        if spikes is None:
            frames, offsets, channels_last = _frames(x.detach())
            first, end, idx = offsets, offsets[:0], _NO_SPIKES
        else:
            first, end, idx = spikes
            frames, offsets, channels_last = np.zeros(1, self.fp.dtype), first, True
        _run(frames, offsets, channels_last, x.shape[2], _log2(x.shape[2]), desc, self.fp,
             self.ptr, self.yoff, self.woff, self.size, state, outs, vouts, counts, end, idx)

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


def _scatter_tables(ly: Layer, dtype: torch.dtype) -> tuple[tuple, list | None, int]:
    """A convolution's or pooling's tables: (per input pixel its runs (`run_table`), or its
    taps (pooling: `events.tap_table`, each of size 1); the convolution's weights in run
    order and its bias (None for pooling); the output channels, or the pooling divisor)."""
    p, (c, h, w), out_hw = ly.params, ly.in_shape, ly.out_shape[1:]
    if ly.kind == POOL:
        t = events.tap_table((h, w), out_hw, tuple(p.kernel), tuple(p.stride),
                             tuple(p.padding), (1, 1), c, c)
        div = p.divisor if p.divisor is not None else p.kernel[0] * p.kernel[1]
        return (t[0], t[1], t[2], np.ones_like(t[1])), None, div
    kh, kw, _, o = p.hwio.shape
    t, order = run_table((h, w), out_hw, (kh, kw), tuple(p.stride), tuple(p.padding),
                         tuple(p.dilation), o)
    a, b = zip(*order, strict=True)
    wr = p.hwio.to(dtype)[list(a), list(b)].permute(1, 0, 2).reshape(-1)  # (C, taps, O)
    bias = p.bias if p.bias is not None else torch.zeros(o)
    return t, [wr.numpy(), bias.to(dtype).numpy()], o


@functools.lru_cache(maxsize=64)
def run_table(in_hw: tuple, out_hw: tuple, k: tuple, stride: tuple, padding: tuple,
              dilation: tuple, o: int) -> tuple[tuple[np.ndarray, ...], list[tuple]]:
    """A convolution's scatter as runs: per input pixel (row-major), CSR (`ptr`), each run's
    first output element (`yoff`: pixel * O), its first weight within a channel's block
    (`woff`) and its length (`size`), and the taps' (kernel row, column) in the order the
    blocks hold them (`order`: the weights of channel c are hwio[order][:, c] flat, one
    block of len(order) * O). Taps of one kernel row whose outputs are adjacent columns
    (stride a multiple of the dilation) are one run, so an input event adds a few long runs
    instead of a tap's O values at a time; each output still gets at most one add per event,
    so the sums are `events.conv2d`'s, in its order of events."""
    order, at = [], {}
    classes = stride[1] // math.gcd(stride[1], dilation[1])  # the columns one input reaches
    for a in range(k[0]):  # per kernel row and class, by output column (b descending)
        for r in range(classes):
            for b in range(k[1] - 1, -1, -1):
                if b % classes == r:
                    at[(a, b)] = len(order)
                    order.append((a, b))
    ptr, yoff, woff, size = [0], [], [], []
    for rows in events.reach(in_hw, out_hw, k, stride, padding, dilation):
        for a, oy, cols in rows:
            for ox, b in sorted((ox, b) for b, ox in cols):
                y0, w0 = (oy * out_hw[1] + ox) * o, at[(a, b)] * o
                if size and len(yoff) > ptr[-1] and yoff[-1] + size[-1] == y0 \
                        and woff[-1] + size[-1] == w0:
                    size[-1] += o  # the next column, the next weights: one run
                else:
                    yoff.append(y0)
                    woff.append(w0)
                    size.append(o)
        ptr.append(len(yoff))
    return tuple(np.asarray(v, dtype=np.uint64) for v in (ptr, yoff, woff, size)), order


def _log2(c: int) -> int:
    """log2(c) for a power of two, else -1: the kernels then split an index into (pixel,
    channel) by a shift and a mask, not a division (tens of cycles per event)."""
    return c.bit_length() - 1 if c & (c - 1) == 0 else -1


_NO_SPIKES = np.zeros(1, np.int32)  # `_run` without listed spikes


def _frames(x: Tensor) -> tuple[np.ndarray, np.ndarray, bool]:
    """x (T, B, C, H, W) as frames without a copy where each frame is contiguous, channels
    first or last (a slice of the caller's input, a node's output): (a flat array over x's
    memory, each frame's first element (T, B), channels last); else a copy."""
    c, h, w = x.shape[2:]
    strides = tuple(x.stride()[2:]) if c * h * w > 1 else (h * w, w, 1)
    channels_last = strides == (1, w * c, c) and c > 1
    if not channels_last and strides != (h * w, w, 1):
        x = x.contiguous()
    offsets = (torch.arange(x.shape[0]).unsqueeze(1) * x.stride(0)
               + torch.arange(x.shape[1]) * x.stride(1)).numpy()
    span = int(offsets.max()) + c * h * w if offsets.size else 0
    flat = torch.as_strided(x, (span,), (1,), x.storage_offset()) if span else x.new_zeros(0)
    return flat.numpy(), offsets, channels_last


if njit is not None:
    _GATHER = np.uint64(0x0102040810204080)

    @njit(cache=True, nogil=True)
    def _collect(flags, fw, n, ev, masks):  # pragma: no cover - compiled
        """Indices of the non-zero flags[0:n] (0/1 bytes; fw the same memory as 64-bit
        words) into ev, ascending; how many (`_pack`, then `_spikes`: the s2 event
        engine's collection)."""
        _pack(flags, fw, n, masks)
        return _spikes(masks, n, ev)

    @njit(cache=True, nogil=True)
    def _split(k, channels, shift):  # pragma: no cover - compiled
        """(pixel, channel) of index k in (H, W, C) order."""
        if shift >= 0:
            return k >> shift, k & (channels - 1)
        pix = k // channels
        return pix, k - pix * channels

    @njit(cache=True, nogil=True)
    def _input_events(f, fo, n, c, shift, flags, fw, ev, evv, masks):  # pragma: no cover
        """An input frame f[fo:fo + n] stored channels first (C, H, W): its non-zero values
        and their indices in (H, W, C) order, ascending, into ev / evv; how many, and
        whether every one is 1 (spikes: x * w is then w)."""
        cu, base = np.uint64(c), np.uint64(fo)
        hw = np.uint64(n) // cu
        if c == 2:  # two planes (DVS polarities): interleaved stores, vectorised
            for pix in range(hw):
                flags[2 * pix] = f[base + pix] != 0
                flags[2 * pix + 1] = f[base + hw + pix] != 0
        else:
            for q in range(cu):
                for pix in range(hw):
                    flags[pix * cu + q] = f[base + q * hw + pix] != 0
        m = _collect(flags, fw, n, ev, masks)
        ones = True
        for e in range(m):
            pix, q = _split(ev[e], c, shift)
            v = f[base + np.uint64(q) * hw + np.uint64(pix)]
            evv[e] = v
            ones &= v == 1
        return m, ones

    @njit(cache=True, nogil=True)
    def _dense_events(y, yo, n, flags, fw, ev, evv, masks):  # pragma: no cover - compiled
        """`_input_events` of n values y[yo:] in (H, W, C) order (a layer's output)."""
        base = np.uint64(yo)
        for k in range(np.uint64(n)):
            flags[k] = y[base + k] != 0
        m = _collect(flags, fw, n, ev, masks)
        ones = True
        for e in range(m):
            v = y[base + np.uint64(ev[e])]
            evv[e] = v
            ones &= v == 1
        return m, ones

    @njit(cache=True, nogil=True)
    def _conv(ev, evv, m, unit, y, desc, lay, fp, ptr, yoff, woff, size):  # pragma: no cover
        """`events.conv2d`'s sum for one frame of layer `lay` (a row of `desc`) into y: the bias,
        then each event's runs (`run_table`; the weights hold the channels' blocks one after
        the other). `unit`: every event is 1 (spikes), so x * w is w."""
        o_n, yo = np.uint64(desc[lay, OCH]), np.uint64(desc[lay, Y0])
        wo, bo = np.uint64(desc[lay, P0]), np.uint64(desc[lay, P1])
        for j in range(0, np.uint64(desc[lay, N_OUT]), o_n):
            for o in range(o_n):
                y[yo + j + o] = fp[bo + o]
        block = (bo - wo) // np.uint64(desc[lay, CH])
        po, to = desc[lay, T0], np.uint64(desc[lay, T1])
        for e in range(m):
            v = evv[e]
            pix, c = _split(ev[e], desc[lay, CH], desc[lay, SHIFT])
            wc = wo + np.uint64(c) * block
            for a in range(to + ptr[po + pix], to + ptr[po + pix + 1]):
                yb = yo + yoff[a]
                wb = wc + woff[a]
                if unit:
                    for j in range(size[a]):
                        y[yb + j] += fp[wb + j]
                else:
                    for j in range(size[a]):
                        y[yb + j] += v * fp[wb + j]

    @njit(cache=True, nogil=True)
    def _pool(ev, evv, m, unit, y, desc, lay, ptr, yoff):  # pragma: no cover - compiled
        """`events.pool2d`'s sum for one frame of layer `lay` into y: 0, each event into its
        windows, then / divisor (`unit`: every event is 1)."""
        yo, n = np.uint64(desc[lay, Y0]), np.uint64(desc[lay, N_OUT])
        for j in range(n):
            y[yo + j] = 0
        po, to = desc[lay, T0], np.uint64(desc[lay, T1])
        one = y.dtype.type(1)
        for e in range(m):
            v = one if unit else evv[e]
            pix, c = _split(ev[e], desc[lay, CH], desc[lay, SHIFT])
            for a in range(to + ptr[po + pix], to + ptr[po + pix + 1]):
                y[yo + yoff[a] + np.uint64(c)] += v
        if desc[lay, OCH] != 1:
            div = y.dtype.type(desc[lay, OCH])
            for j in range(n):
                y[yo + j] = y[yo + j] / div

    @njit(cache=True, nogil=True)
    def _neuron(x, s, p, n, flags, y, fired, fw, masks, keep):  # pragma: no cover
        """`kernels.lif_scan`'s step for one frame: x the input, s the state (v, then i for
        CubaLIF), p the parameters (alpha, gain, leak, v_th, v_reset, syn_alpha, syn_gain,
        n each); y the output (spikes, or v; of uniform neurons only with `keep`), the
        spikes of each 64 neurons as the bits of one word of `masks` (through the 0/1 bytes
        `fired`, fw the same memory as words); the spike count. (Slices, not offsets into
        shared arrays: LLVM then vectorises.)"""
        spiking, subtract = (flags & SPIKING) != 0, (flags & SUBTRACT) != 0
        inclusive, cuba = (flags & INCLUSIVE) != 0, (flags & CUBA) != 0
        if flags & UNIFORM and spiking and not cuba:  # constant flags: a loop for each
            a, g, leak, th, vr = p[0], p[n], p[2 * n], p[3 * n], p[4 * n]
            if subtract and inclusive:
                _neuron_uniform(x, s, a, g, leak, th, vr, n, True, True, masks)
            elif subtract:
                _neuron_uniform(x, s, a, g, leak, th, vr, n, True, False, masks)
            elif inclusive:
                _neuron_uniform(x, s, a, g, leak, th, vr, n, False, True, masks)
            else:
                _neuron_uniform(x, s, a, g, leak, th, vr, n, False, False, masks)
            if keep:
                _unpack(masks, n, y)
            return _count(masks, n)
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
        if spiking:
            _pack(fired, fw, n, masks)
        return count

    @njit(cache=True, nogil=True)
    def _neuron_uniform(x, s, alpha, gain, leak, th, v_reset, n, subtract, inclusive,
                        masks):  # pragma: no cover - compiled
        """`_neuron` of spiking neurons whose parameters are one value each (no synaptic
        current): the same operations on the same values, fewer loads, and each 64
        neurons' spikes gathered into their mask word in the loop (64 at a time); the dense
        0/1 output is left to `_unpack`, where a reader needs it."""
        zero = s.dtype.type(0)
        full = n - n % 64
        for k0 in range(0, full, 64):
            mask = np.uint64(0)
            for j in range(64):
                k = k0 + j
                w = alpha * s[k] + gain * x[k] + leak
                z = (w > th) | (inclusive & (w == th))
                mask |= np.uint64(z) << np.uint64(j)
                s[k] = (w - (th if z else zero)) if subtract else (v_reset if z else w)
            masks[k0 >> 6] = mask
        mask = np.uint64(0)
        for k in range(full, n):
            w = alpha * s[k] + gain * x[k] + leak
            z = (w > th) | (inclusive & (w == th))
            mask |= np.uint64(z) << np.uint64(k - full)
            s[k] = (w - (th if z else zero)) if subtract else (v_reset if z else w)
        masks[full >> 6] = mask

    @njit(cache=True, nogil=True)
    def _unpack(masks, n, y):  # pragma: no cover - compiled
        """The 0/1 spikes of n neurons from their mask words into y."""
        for k in range(n):
            y[k] = (masks[k >> 6] >> np.uint64(k & 63)) & np.uint64(1)

    @njit(cache=True, nogil=True)
    def _count(masks, n):  # pragma: no cover - compiled
        """The set bits of the words holding n neurons' spikes (a branch-free popcount)."""
        c = np.uint64(0)
        for blk in range((n + 63) >> 6):
            v = masks[blk]
            v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
            v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2))
                                                       & np.uint64(0x3333333333333333))
            v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
            c += (v * np.uint64(0x0101010101010101)) >> np.uint64(56)
        return np.int64(c)

    @njit(cache=True, nogil=True)
    def _pack(flags, fw, n, masks):  # pragma: no cover - compiled
        """0/1 bytes flags[0:n] (fw: the same memory as words) into one bit each of masks,
        64 to a word: a word's 8 bytes gathered into a byte by a multiply."""
        for blk in range(n >> 6):
            mask = np.uint64(0)
            for k in range(8):
                mask |= ((fw[blk * 8 + k] * _GATHER) >> np.uint64(56)) << np.uint64(8 * k)
            masks[blk] = mask
        mask = np.uint64(0)
        for i in range(n - n % 64, n):
            mask |= np.uint64(flags[i] != 0) << np.uint64(i % 64)
        masks[n >> 6] = mask

    @njit(cache=True, nogil=True)
    def _spikes(masks, n, ev):  # pragma: no cover - compiled
        """The indices of the spikes in `masks` (`_neuron`'s, n neurons) into ev, ascending;
        how many."""
        m = 0
        for blk in range((n + 63) >> 6):
            mask = masks[blk]
            i0 = blk * 64
            for _ in range(8):  # the first 8 without a branch (one would be mispredicted
                ev[m] = i0 + np.int64(trailing_zeros(mask))  # at a few % of spikes): the
                m += mask != 0  # store happens anyway, the count advances by 0 or 1
                mask &= mask - np.uint64(1)
            while mask != 0:
                ev[m] = i0 + np.int64(trailing_zeros(mask))
                m += 1
                mask &= mask - np.uint64(1)
        return m

    @njit(cache=True, nogil=True, error_model="numpy")
    def _run(x, offsets, channels_last, c, shift, desc, fp, ptr, yoff, woff, size, state,
             outs, vouts, counts, ends, listed):  # pragma: no cover - compiled
        """The chain (rows of `desc`) over every frame of x (frame (t, b) of N values, of c
        channels first or last, at x[offsets[t, b]:]): one sample's steps in turn, every
        layer per step, the layers' dense outputs in one scratch frame (`Chain.run` says
        what the rest holds). With `ends` not empty, frame (t, b)'s spikes are
        listed[offsets[t, b]:ends[t, b]] instead (x is not read)."""
        n0, layers = desc[0, N_IN], desc.shape[0]
        steps, batch = offsets.shape
        nmax, room = n0, 0
        for d in desc:
            nmax, room = max(nmax, d[N_OUT]), max(room, d[Y0] + d[N_OUT])
        fw = np.zeros(nmax // 8 + 2, dtype=np.uint64)  # nmax bytes and more
        flags = fw.view(np.uint8)
        masks = np.zeros(nmax // 64 + 2, dtype=np.uint64)
        ev = np.empty(nmax + 1, dtype=np.int64)
        evv = np.empty(nmax + 1, dtype=x.dtype)
        y = np.empty(room, dtype=x.dtype)
        for b in range(batch):
            s = state[b]
            for t in range(steps):
                if ends.shape[0] > 0:  # listed once for all (0/1 spikes)
                    e0 = offsets[t, b]
                    m, unit = ends[t, b] - e0, True
                    for e in range(m):
                        ev[e] = listed[e0 + e]
                elif channels_last or c == 1:
                    m, unit = _dense_events(x, offsets[t, b], n0, flags, fw, ev, evv, masks)
                else:
                    m, unit = _input_events(x, offsets[t, b], n0, c, shift, flags, fw, ev,
                                            evv, masks)
                for lay in range(layers):
                    if lay > 0 and desc[lay, KIND] != NEURON:  # events from the layer before
                        q = lay - 1
                        if desc[q, KIND] == NEURON and (desc[q, FLAGS] & SPIKING) != 0:
                            m, unit = _spikes(masks, desc[q, N_OUT], ev), True
                        else:
                            m, unit = _dense_events(y, desc[q, Y0], desc[q, N_OUT], flags, fw,
                                                    ev, evv, masks)
                    if desc[lay, KIND] == CONV:
                        _conv(ev, evv, m, unit, y, desc, lay, fp, ptr, yoff, woff, size)
                    elif desc[lay, KIND] == POOL:
                        _pool(ev, evv, m, unit, y, desc, lay, ptr, yoff)
                    else:
                        x0, y0, n = desc[lay - 1, Y0], desc[lay, Y0], desc[lay, N_OUT]
                        counts[lay] += _neuron(y[x0:x0 + n], s[desc[lay, S0]:],
                                               fp[desc[lay, P0]:], n, desc[lay, FLAGS],
                                               y[y0:y0 + n], flags, fw, masks,
                                               desc[lay, OUT] >= 0 or lay + 1 == layers
                                               or desc[lay + 1, KIND] == NEURON)
                    _write(y, s, desc, lay, outs, vouts, t, b)

    @njit(cache=True, nogil=True)
    def _write(y, s, desc, lay, outs, vouts, t, b):  # pragma: no cover - compiled
        """Layer d's output (and voltage) of frame (t, b), where they are written out."""
        n = desc[lay, N_OUT]
        if desc[lay, OUT] >= 0:
            for k in range(n):
                outs[t, b, desc[lay, OUT] + k] = y[desc[lay, Y0] + k]
        if desc[lay, VOUT] >= 0:
            for k in range(n):
                vouts[t, b, desc[lay, VOUT] + k] = s[desc[lay, S0] + k]
