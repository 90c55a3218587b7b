"""Event-driven emulator engine (numba): the same chip arithmetic as `emulate.py`, spike by
spike, the way the chip itself works.

A population's input at step t is built only from the spikes that arrive. Neurons of a
(C, H, W) population are kept in H, W, C order inside the engine, so every fan-out is made of
contiguous runs over the target neurons, and the adds vectorize:

- dense: a spike adds one row of the (pre, post) integer table (the projection's weight,
  transposed; compile stores it that way, so this is a view, not a copy);
- conv (and pooling): the tap geometry of the projection (stride, padding, dilation, fused
  sum-pool) is fixed per projection, so a spike's targets are *computed*: for each kernel tap
  one run of `cout` output channels, weights from the (taps, cout) kernel table. Nothing is
  stored per pre neuron, so conv layers of millions of neurons cost no tables.

Weights stay int8 (int16 where a hand-built program needs it) and are summed into int32
accumulators: exact, like the chip. The neuron update is branch-free over contiguous float32
arrays (the same float32 operations in the same order as `emulate.lif_step`, no fast-math, so
no fused multiply-add unless `fma` asks for one; the tests check it against the torch engine
bit for bit); spikes are collected in a second pass that skips 8 neurons at a time. Only
recorded populations pay for recording; counters are written per population and step. Slices
of the batch run in plain threads (the kernel releases the GIL; no OpenMP/TBB pool).

Covers every program without `lif_curr_exp` populations (those use the torch engine).
Optional: needs numba (`pip install numba`, the `fast` extra); `emulate` falls back to the
torch engine without it.
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.inputs import check_spikes
from spinnq.s2.program import COUNTERS, Program, Projection, Run, fingerprint, sum_bound

try:  # optional accelerator
    from numba import njit
    from numba.core.errors import NumbaPendingDeprecationWarning
except ImportError:  # pragma: no cover - exercised where numba is absent
    njit = None
    NumbaPendingDeprecationWarning = Warning

SPK, SYN, PKT, MAC = 0, 1, 2, 3  # counter columns in the kernel
DENSE, CONV = 0, 1  # projection kinds in the kernel
# conv geometry columns (one row per projection in `geo`)
GEO = ("C", "H", "W", "pool", "Hp", "Wp", "Cig", "kh", "kw", "sy", "sx", "py", "px", "dly",
       "dlx", "Ho", "Wo", "Co", "cout", "mx", "log2C", "log2W", "log2pool", "log2sy", "log2sx")
CHUNK = 1 << 22  # elements per chunk when a whole-table temporary would be large


def available() -> bool:
    return njit is not None


def supported(program: Program) -> bool:
    return not any(p.model in chip.CUBA_MODELS for p in program.populations.values())


# ------------------------------------------------------------------------ fan-out tables
def perm(shape: tuple[int, ...]) -> np.ndarray:
    """Engine order -> NIR flat index: (C, H, W) populations are held as H, W, C."""
    n = int(np.prod(shape))
    if len(shape) == 3:
        C, H, W = shape
        return np.arange(n).reshape(C, H, W).transpose(1, 2, 0).ravel()
    return np.arange(n)


def _table_dtype(proj: Projection) -> np.dtype:
    """int8 for chip weights; int16 where a hand-built program holds larger integers."""
    w = np.asarray(proj.weight)
    if w.dtype == np.int8:
        return w.dtype
    lo, hi = (int(w.min()), int(w.max())) if w.size else (0, 0)
    if w.dtype.kind == "f" and w.size and not _all_integral(w):
        raise InputError(f"projection {proj.pre} -> {proj.post}: weights must be integers "
                         "(chip units) for the event engine")
    if -127 <= lo and hi <= 127:
        return np.dtype(np.int8)
    if -32767 <= lo and hi <= 32767:
        return np.dtype(np.int16)
    raise InputError(f"projection {proj.pre} -> {proj.post}: weights reach {max(-lo, hi)}, "
                     "over the 16-bit range the event engine holds")


def _all_integral(w: np.ndarray) -> bool:
    flat = w.reshape(-1, order="A")
    return all(bool(np.all(flat[i:i + CHUNK] == np.round(flat[i:i + CHUNK])))
               for i in range(0, flat.size, CHUNK))


def nonzero_rows(t: np.ndarray) -> np.ndarray:
    """Nonzero entries per row of a 2-D table, in row chunks (no table-sized temporary)."""
    rows = max(1, CHUNK // max(1, t.shape[1]))
    return np.concatenate([np.count_nonzero(t[i:i + rows], axis=1)
                           for i in range(0, t.shape[0], rows)] or [np.zeros(0, np.int64)]
                          ).astype(np.int64)


def dense_table(proj: Projection, pre_shape, post_shape) -> np.ndarray:
    """(pre, post) integer table in engine order: row j is the fan-out of pre neuron j. A view
    of the weight when compile stored it (post, pre) column-major, as it does."""
    dt = _table_dtype(proj)
    t = np.asarray(proj.weight).T
    if len(pre_shape) == 3:
        t = t[perm(pre_shape)]
    if len(post_shape) == 3:
        t = t[:, perm(post_shape)]
    if t.dtype != dt:
        rows = max(1, CHUNK // max(1, t.shape[1]))
        out = np.empty(t.shape, dt)
        for i in range(0, t.shape[0], rows):
            out[i:i + rows] = t[i:i + rows]
        t = out
    return np.ascontiguousarray(t)


def conv_table(proj: Projection) -> np.ndarray:
    """(G*Cig*kh*kw taps, cout) kernel table: row ((g*Cig + cin)*kh + dy)*kw + dx holds the
    weights of one tap into the `cout` output channels of group g."""
    w = np.asarray(proj.weight)
    Co, Cig, kh, kw = w.shape
    G = int(proj.conv.get("groups", 1))
    t = w.reshape(G, Co // G, Cig, kh, kw).transpose(0, 2, 3, 4, 1).reshape(-1, Co // G)
    return np.ascontiguousarray(t, dtype=_table_dtype(proj))


def conv_geometry(proj: Projection, pre_shape) -> np.ndarray:
    """The projection's tap geometry as one int64 row (columns `GEO`); `mx` > 0 marks the
    row layout of `conv_rows_table` (one group, no dilation)."""
    c = proj.conv
    C, H, W = pre_shape
    k = int(c.get("pool") or 1)
    Co, Cig, kh, kw = np.shape(proj.weight)
    (sy, sx), (py, px), (dly, dlx) = c["stride"], c["padding"], c["dilation"]
    _, Ho, Wo = c["out_shape"]
    G = int(c.get("groups", 1))
    mx = -(-kw // sx) if G == 1 and dly == dlx == 1 else 0
    return np.array([C, H, W, k, H // k, W // k, Cig, kh, kw, sy, sx, py, px, dly, dlx, Ho, Wo,
                     Co, Co // G, mx] + [_log2(d) for d in (C, W, k, sy, sx)], dtype=np.int64)


def _log2(d: int) -> int:
    """k if d == 2**k, else -1: the kernel divides by a power of two with a shift."""
    d = int(d)
    return d.bit_length() - 1 if d > 0 and d & (d - 1) == 0 else -1


def conv_rows_table(proj: Projection, mx: int) -> tuple[np.ndarray, np.ndarray]:
    """Kernel table for one group without dilation, laid out so that one spike's taps in one
    kernel row are ONE contiguous run. A spike at input column x reaches, through kernel
    column dx = ph + sx*m (ph = (x + px) mod sx), the output column (x + px - ph)/sx - m: the
    columns it reaches are consecutive, and so are their Co channels in H, W, C order. Row
    ((c*kh + dy)*sx + ph)*mx + (mx-1-m) holds the Co weights of tap (c, dy, ph + sx*m), so the
    weights of m = m0..m1 are consecutive too (m reversed: output columns ascend). Also the
    nonzero weights, cumulated along each run (mx + 1 per (c, dy, ph)), for the counters."""
    w = np.asarray(proj.weight)
    Co, C, kh, kw = w.shape
    sx = int(proj.conv["stride"][1])
    t = np.zeros((C, kh, sx, mx, Co), dtype=_table_dtype(proj))
    for ph in range(sx):
        for m in range(mx):
            dx = ph + sx * m
            if dx < kw:
                t[:, :, ph, mx - 1 - m, :] = w[:, :, :, dx].transpose(1, 2, 0)
    nz = np.zeros((C, kh, sx, mx + 1), np.int64)
    np.cumsum(np.count_nonzero(t, axis=4), axis=3, out=nz[..., 1:])
    return t.reshape(-1, Co), nz.reshape(-1)


def conv_tables(proj: Projection, pre_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight table, nonzero counts, geometry) of a conv/pool projection for the kernel."""
    geo = conv_geometry(proj, pre_shape)
    mx = int(geo[GEO.index("mx")])
    if mx:
        return (*conv_rows_table(proj, mx), geo)
    t = conv_table(proj)
    return t, nonzero_rows(t), geo


def fanout(proj: Projection, pre_shape, post_shape, j: int) -> tuple[np.ndarray, np.ndarray]:
    """(post NIR flat index, integer weight) of the synapses one spike of pre neuron `j` (NIR
    flat index) reaches, computed by the engine's own fan-out code (for tests and tools)."""
    n_post = int(np.prod(post_shape))
    cur = np.zeros(n_post, np.int32)
    probe = np.zeros(n_post, np.int32)  # a second pass with weights 1 finds zero-sum targets
    je = int(np.argsort(perm(pre_shape))[j])
    if proj.kind == "dense":
        t = dense_table(proj, pre_shape, post_shape)
        cur += t[je]
        probe += t[je] != 0
    else:
        t, nz, geo = conv_tables(proj, pre_shape)
        js = np.array([je], dtype=np.int32)
        _conv(cur, 0, js, t, nz, geo)
        _conv(probe, 0, js, (t != 0).astype(t.dtype), nz, geo)
    back = perm(post_shape)
    hit = np.nonzero(probe)[0]
    return back[hit], cur[hit]


# ----------------------------------------------------- synapse lists (for other modules)
def fanout_table(proj: Projection, pre_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Every synapse as a list, CSR by pre neuron (NIR flat indices): (indptr (pre+1,), post
    index (nnz,), integer weight (nnz,)). For tools that need the synapses themselves (the
    energy model's routes); the engine computes each spike's fan-out instead (`fanout`)."""
    w = np.asarray(proj.weight)
    n_pre = int(np.prod(pre_shape))
    if proj.kind == "dense":
        j, i = np.nonzero(w.T)
        vals = w.T[j, i]
    else:
        j, i, vals = _conv_entries(w, proj.conv, pre_shape)
    order = np.argsort(j, kind="stable")
    j, i, vals = j[order], i[order], vals[order]
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.bincount(j, minlength=n_pre), out=indptr[1:])
    return indptr, i.astype(np.int32), vals.astype(np.float32)


def _conv_taps(w: np.ndarray, c: dict, pre_shape):
    """For every kernel tap (dy, dx) of a conv with an optional fused SumPool: the pre
    neurons it connects (NIR flat index), their output position (oy, ox), their group and
    input channel within the group."""
    C, H, W = pre_shape
    k = int(c.get("pool") or 1)
    Hp, Wp = H // k, W // k
    jj = np.arange(C * H * W)
    cc, yy, xx = jj // (H * W), (jj // W) % H, jj % W
    iy, ix = yy // k, xx // k
    valid = (iy < Hp) & (ix < Wp)
    _, Cig, kh, kw = w.shape
    (sy, sx), (py, px), (dly, dlx) = c["stride"], c["padding"], c["dilation"]
    _, Ho, Wo = c["out_shape"]
    for dy in range(kh):
        for dx in range(kw):
            ny, nx = iy + py - dy * dly, ix + px - dx * dlx
            ok = valid & (ny % sy == 0) & (nx % sx == 0)
            oy, ox = ny // sy, nx // sx
            ok &= (oy >= 0) & (oy < Ho) & (ox >= 0) & (ox < Wo)
            yield dy, dx, jj[ok], oy[ok], ox[ok], cc[ok] // Cig, cc[ok] % Cig


def _conv_entries(w: np.ndarray, c: dict, pre_shape) -> tuple[np.ndarray, ...]:
    """Every (pre, post, weight) synapse of a conv with an optional fused SumPool."""
    Co = w.shape[0]
    cout = Co // int(c.get("groups", 1))
    _, Ho, Wo = c["out_shape"]
    js, posts, vals = [], [], []
    for dy, dx, sel, oy, ox, g, cin in _conv_taps(w, c, pre_shape):
        co = g[:, None] * cout + np.arange(cout)[None, :]  # (n, cout)
        wv = w[co, cin[:, None], dy, dx]
        post = co * (Ho * Wo) + (oy * Wo + ox)[:, None]
        js.append(np.broadcast_to(sel[:, None], co.shape).ravel())
        posts.append(post.ravel())
        vals.append(wv.ravel())
    j, i, v = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (js, posts, vals))
    nz = v != 0
    return j[nz], i[nz], v[nz]


# ------------------------------------------------------------------------------- kernel
if njit is not None:

    @njit(cache=True, nogil=True)
    def _spike_csr(flat):
        """Rows of 0/1 spikes -> CSR (ptr, idx); also the first value that is not 0 or 1
        (NaN included) as `bad`, with `ok` False, so the caller can refuse the input. Both
        passes are branch-free over a row (the input is most of a sparse run's reads)."""
        rows, cols = flat.shape
        ptr = np.zeros(rows + 1, np.int64)
        for r in range(rows):
            x = flat[r]
            c = 0
            bad = 0
            for j in range(cols):
                c += x[j] != 0
                bad += (x[j] != 0) & (x[j] != 1)
            if bad:
                for j in range(cols):
                    if x[j] != 0 and x[j] != 1:
                        return ptr, np.zeros(0, np.int32), False, x[j]
            ptr[r + 1] = ptr[r] + c
        idx = np.empty(ptr[rows] + 1, np.int32)
        for r in range(rows):
            x = flat[r]
            out = idx[ptr[r]:ptr[r + 1] + 1]
            e = 0
            for j in range(cols):
                out[e] = j
                e += x[j] != 0
        return ptr, idx[:ptr[rows]], True, flat[0, 0]

    # Indexing note: hot loops index with *unsigned* integers (`cur[p + c]`, p and c uint64).
    # With signed indices numba wraps negatives element by element and the loop does not
    # vectorize (measured 10-20x slower); views (`cur[ps:ps + L]`) vectorize but each costs
    # two atomic reference-count updates on the array, which per spike and tap were a fifth
    # of a one-thread run and kept two threads from scaling (1.2x instead of ~2x).
    @njit(cache=True, nogil=True, inline="always")
    def add_run(cur, ps, src, ws, L):
        """cur[ps:ps+L] += src[ws:ws+L]. One plain loop: LLVM vectorizes it, and branches to
        fixed-width copies for common lengths measured slower inside the spike loops."""
        p = np.uint64(ps)
        w = np.uint64(ws)
        for c in range(np.uint64(L)):
            cur[p + c] += src[w + c]

    @njit(cache=True, nogil=True, inline="always")
    def _div(num, d, log2d):
        """num // d for num >= 0: a shift when d is a power of two (log2d >= 0), else an
        unsigned division (no floor fix-up). A 64-bit division costs 10-40 cycles, more than
        a run of adds."""
        if log2d >= 0:
            return num >> log2d
        return np.int64(np.uint64(num) // np.uint64(d))

    @njit(cache=True, nogil=True)
    def _conv_spikes(cur, o, js, flat, nz, geo):
        """Add the fan-out of the spikes of pre neurons `js` (engine order, H W C) through a
        conv/pool projection into cur[o:]: per spike one run of `cout` channels per kernel
        tap that lands inside the output (`flat`: the (taps, cout) table, flattened).
        Returns the nonzero synapses reached (the counter). The spike loop is in here, not
        in the caller: an array passed per spike costs atomic reference counts."""
        C, W = geo[0], geo[2]
        kp, Hp, Wp, kh, kw = geo[3], geo[4], geo[5], geo[7], geo[8]
        sy, sx, py, px, dly, dlx = geo[9], geo[10], geo[11], geo[12], geo[13], geo[14]
        Ho, Wo, Co, cout, Cig = geo[15], geo[16], geo[17], geo[18], geo[6]
        ev = 0
        for a in range(js.shape[0]):
            j = js[a]
            c = j % C
            r = j // C
            iy = (r // W) // kp
            ix = (r % W) // kp
            if iy >= Hp or ix >= Wp:  # cut off by the fused pool
                continue
            g0 = o + (c // Cig) * cout  # the group's first output channel
            base = c * kh  # tap rows of input channel c: ((g*Cig + cin)*kh + dy)*kw + dx
            for dy in range(kh):
                ny = iy + py - dy * dly
                if ny < 0:  # decreases with dy: no later tap lands either
                    break
                if ny % sy != 0:
                    continue
                oy = ny // sy
                if oy >= Ho:
                    continue
                for dx in range(kw):
                    nx = ix + px - dx * dlx
                    if nx < 0:
                        break
                    if nx % sx != 0:
                        continue
                    ox = nx // sx
                    if ox >= Wo:
                        continue
                    tap = (base + dy) * kw + dx
                    add_run(cur, g0 + (oy * Wo + ox) * Co, flat, tap * cout, cout)
                    ev += nz[tap]
        return ev

    @njit(cache=True, nogil=True)
    def _conv_rows(cur, o, js, flat, nzp, geo):
        """`_conv_spikes` for the row layout (`conv_rows_table`, flattened): per spike one
        contiguous run of (taps in the kernel row) x Co adds per kernel row that lands in
        the output."""
        C, W = geo[0], geo[2]
        kp, Hp, Wp, kh = geo[3], geo[4], geo[5], geo[7]
        sy, sx, py, px = geo[9], geo[10], geo[11], geo[12]
        Ho, Wo, Co, mx, kw = geo[15], geo[16], geo[17], geo[19], geo[8]
        lC, lW, lkp, lsy, lsx = geo[20], geo[21], geo[22], geo[23], geo[24]
        ev = 0
        for a in range(js.shape[0]):
            j = js[a]
            r = _div(np.int64(j), C, lC)
            c = j - r * C
            iy = _div(r, W, lW)
            ix = r - iy * W
            if kp > 1:
                iy = _div(iy, kp, lkp)
                ix = _div(ix, kp, lkp)
                if iy >= Hp or ix >= Wp:  # cut off by the fused pool
                    continue
            tx = ix + px
            if sx == 1:
                ph = 0
                oxt = tx
                m1 = min(mx - 1, oxt)  # ox = oxt - m >= 0
            else:
                oxt = _div(tx, sx, lsx)  # output column of m = 0
                ph = tx - oxt * sx
                m1 = min((kw - ph + sx - 1) // sx - 1, oxt)  # taps of this phase
            m0 = max(0, oxt - Wo + 1)  # ox < Wo
            if m0 > m1:
                continue
            L = (m1 - m0 + 1) * Co
            for dy in range(kh):
                ny = iy + py - dy
                if ny < 0:
                    break
                oy = ny
                if sy > 1:
                    oy = _div(ny, sy, lsy)
                    if oy * sy != ny:
                        continue
                if oy >= Ho:
                    continue
                grp = (c * kh + dy) * sx + ph
                add_run(cur, o + (oy * Wo + oxt - m1) * Co, flat,
                        (grp * mx + mx - 1 - m1) * Co, L)
                z = grp * (mx + 1)
                ev += nzp[z + mx - m0] - nzp[z + mx - 1 - m1]
        return ev

    @njit(cache=True, nogil=True)
    def _conv(cur, o, js, tab, nz, geo):
        """The spikes of pre neurons `js` through a conv/pool projection, in the layout its
        tables use; the nonzero synapses reached."""
        flat = tab.reshape(tab.size)
        if geo[19] > 0:
            return _conv_rows(cur, o, js, flat, nz, geo)
        return _conv_spikes(cur, o, js, flat, nz, geo)

    @njit(cache=True, nogil=True)
    def _project(cur, o, js, kind, tab, nz, geo):
        """Deliver the spikes of pre neurons `js` through one projection; synaptic events."""
        if kind != DENSE:
            return _conv(cur, o, js, tab, nz, geo)
        ev = 0
        n = tab.shape[1]
        flat = tab.reshape(tab.size)
        for a in range(js.shape[0]):
            j = js[a]
            add_run(cur, o, flat, j * n, n)
            ev += nz[j]
        return ev

    @njit(cache=True, nogil=True)
    def _update(v, cur, fired, alpha, th, off, vr, subtract, fma, offset_first):
        """The neuron update of one population (views of equal length), branch-free (selects,
        no jumps) so it vectorizes: v' = alpha*v + I + i_offset (or + i_offset + I), fire on
        v' > threshold, reset by subtraction or to v_reset; fired[i] = 0/1. Read-outs have
        threshold +inf."""
        n = v.shape[0]
        if fma:  # one rounding for alpha*v + first term: the product is exact in float64
            for i in range(n):
                x_i = np.float32(cur[i])
                p1 = off[i] if offset_first else x_i
                p2 = x_i if offset_first else off[i]
                x = np.float32(np.float64(alpha[i]) * np.float64(v[i]) + np.float64(p1)) + p2
                f = x > th[i]
                y = x - th[i] if subtract else vr[i]
                v[i] = y if f else x
                fired[i] = f
        else:
            for i in range(n):
                x_i = np.float32(cur[i])
                p1 = off[i] if offset_first else x_i
                p2 = x_i if offset_first else off[i]
                x = alpha[i] * v[i] + p1 + p2
                f = x > th[i]
                y = x - th[i] if subtract else vr[i]
                v[i] = y if f else x
                fired[i] = f

    @njit(cache=True, nogil=True)
    def _collect(fired, fw, n, out):
        """Indices of the neurons that fired (fired[0:n] as 0/1 bytes) into out; skips
        8 quiet neurons per 64-bit word, and inside a word stores every index and advances
        by the flag (no branch per neuron: at a few % firing they mispredict). Returns how
        many fired."""
        full = n >> 3
        ns = 0
        for w in range(full):
            if fw[w] != 0:
                i0 = w * 8
                for i in range(i0, i0 + 8):
                    out[ns] = i
                    ns += fired[i]
        for i in range(full * 8, n):  # the last partial word: out has exactly n slots
            if fired[i] != 0:
                out[ns] = i
                ns += 1
        return ns

    # No numba parallel layer on purpose: OpenMP/TBB share or fight torch's thread pool
    # (measured: torch ops 20x slower after a parallel numba call on a 2-core box). Instead
    # the kernel releases the GIL and `run_events` runs slices of the batch in plain threads.
    @njit(cache=True, nogil=True)
    def _kernel(in_ptr, in_idx, T, steps, pop_off, pop_n, alpha, th, off, vreset, may_sat,
                subtract, fma, offset_first, pr_pre, pr_delay, pr_macs, pr_kind, pr_wide,
                pr_tab, tabs8, tabs16, nzs, geo, by_post_ptr, by_post, R, rec_off, rec_s,
                rec_v, cnt, sat, acc_limit, done):
        B = cnt.shape[0]
        P = pop_n.shape[0]
        N = alpha.shape[0]
        lim = np.int32(acc_limit)
        nmax = 8
        for k in range(P):
            nmax = max(nmax, pop_n[k] + 8)
        for b in range(B):
            v = np.zeros(N, np.float32)
            cur = np.zeros(N, np.int32)
            fw = np.zeros((nmax + 7) // 8, np.uint64)
            fired = fw.view(np.uint8)
            ring = np.zeros((R, N), np.int32)
            ring_n = np.zeros((R, P), np.int32)
            for t in range(steps):
                slot = t % R
                o0 = pop_off[0]
                m = 0
                if t < T:
                    row = b * T + t
                    for e in range(in_ptr[row], in_ptr[row + 1]):
                        ring[slot, o0 + m] = in_idx[e]
                        m += 1
                ring_n[slot, 0] = m
                cnt[b, t, 0, SPK] = m
                if rec_off[0] >= 0:
                    for a in range(m):
                        rec_s[b, t, rec_off[0] + ring[slot, o0 + a]] = 1
                for k in range(1, P):
                    o = pop_off[k]
                    n = pop_n[k]
                    cur[o:o + n] = 0
                    for qq in range(by_post_ptr[k], by_post_ptr[k + 1]):
                        q = by_post[qq]
                        d = pr_delay[q]
                        if t - d < 0:
                            continue
                        s2 = (t - d) % R
                        pre = pr_pre[q]
                        nsp = ring_n[s2, pre]
                        if nsp == 0:
                            continue
                        po = pop_off[pre]
                        js = ring[s2, po:po + nsp]
                        if pr_wide[q]:
                            ev = _project(cur, o, js, pr_kind[q], tabs16[pr_tab[q]], nzs[q],
                                          geo[q])
                        else:
                            ev = _project(cur, o, js, pr_kind[q], tabs8[pr_tab[q]], nzs[q],
                                          geo[q])
                        cnt[b, t, k, SYN] += ev
                        cnt[b, t, k, PKT] += nsp
                        cnt[b, t, k, MAC] += pr_macs[q]
                    if may_sat[k]:  # saturate, never wrap (skipped when sums cannot reach)
                        acc = cur[o:o + n]
                        for i in range(n):
                            x = acc[i]
                            if x > lim or x < -lim:
                                acc[i] = lim if x > 0 else -lim
                                sat[b] += 1
                    _update(v[o:o + n], cur[o:o + n], fired[:n], alpha[o:o + n], th[o:o + n],
                            off[o:o + n], vreset[o:o + n], subtract, fma, offset_first)
                    ns = _collect(fired, fw, n, ring[slot, o:o + n])
                    ring_n[slot, k] = ns
                    cnt[b, t, k, SPK] = ns
                    ro = rec_off[k]
                    if ro >= 0:
                        rec_v[b, t, ro:ro + n] = v[o:o + n]
                        for a in range(ns):
                            rec_s[b, t, ro + ring[slot, o + a]] = 1
                done[0] += 1  # sample-steps finished: a progress bar reads it while we run


class _Prepared:
    """Everything the kernel needs that depends on the program only (built once per program:
    a closed-loop task emulates the same program thousands of times)."""

    def __init__(self, program: Program):
        names = list(program.populations)
        pops = [program.populations[n] for n in names]
        self.names, self.pops = names, pops
        self.perms = [perm(p.shape) for p in pops]
        self.index = index = {n: k for k, n in enumerate(names)}
        self.sizes = sizes = np.array([p.size for p in pops], dtype=np.int64)
        self.pop_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

        def cat(key: str, default: float) -> np.ndarray:
            return np.concatenate([np.asarray(p.params.get(key, np.full(p.size, default)),
                                              dtype=np.float32).reshape(p.size)[pm]
                                   for p, pm in zip(pops, self.perms, strict=True)])

        self.alpha, self.th = cat("alpha", 1.0), cat("threshold", np.inf)
        self.off, self.vr = cat("i_offset", 0.0), cat("v_reset", 0.0)
        self.th[np.repeat([p.record_only for p in pops], sizes)] = np.inf  # never fire
        bounds = np.zeros(len(pops))
        for p in program.projections:
            bounds[index[p.post]] += sum_bound(p)
        self.may_sat = bounds > chip.ACC_LIMIT
        projs = program.projections
        Q = len(projs)
        self.pr_kind = np.array([DENSE if p.kind == "dense" else CONV for p in projs] or [0],
                                dtype=np.int64)
        self.geo = np.zeros((max(Q, 1), len(GEO)), dtype=np.int64)
        self.pr_tab = np.zeros(max(Q, 1), dtype=np.int64)
        self.pr_wide = np.zeros(max(Q, 1), dtype=np.bool_)
        # Plain lists (numba reflects them): a typed List costs seconds of compiling in every
        # new process, which a CLI call would pay each time.
        self.tabs8: list[np.ndarray] = []
        self.tabs16: list[np.ndarray] = []
        self.nzs: list[np.ndarray] = []
        for q, p in enumerate(projs):
            pre = program.populations[p.pre].shape
            if p.kind == "dense":
                t = dense_table(p, pre, program.populations[p.post].shape)
                nz = nonzero_rows(t)
            else:
                t, nz, self.geo[q] = conv_tables(p, pre)
            wide = t.dtype == np.int16
            lst = self.tabs16 if wide else self.tabs8
            self.pr_wide[q], self.pr_tab[q] = wide, len(lst)
            lst.append(t)
            self.nzs.append(nz)
        if not projs:  # numba needs one (unused) entry to type an empty list
            self.tabs8.append(np.zeros((1, 1), np.int8))
            self.nzs.append(np.zeros(1, np.int64))
        if not self.tabs16:
            self.tabs16.append(np.zeros((1, 1), np.int16))
        self.pr_pre = np.array([index[p.pre] for p in projs] or [0], dtype=np.int64)
        self.pr_delay = np.array([p.delay for p in projs] or [1], dtype=np.int64)
        self.pr_macs = np.array([program.populations[p.post].size
                                 * int(np.prod(np.shape(p.weight)[1:]))
                                 if p.kind == "conv" else 0 for p in projs] or [0],
                                dtype=np.float64)
        posts = np.array([index[p.post] for p in projs], dtype=np.int64)
        self.by_post = np.argsort(posts, kind="stable").astype(np.int64)
        self.by_post_ptr = np.zeros(len(pops) + 1, dtype=np.int64)
        np.cumsum(np.bincount(posts, minlength=len(pops)), out=self.by_post_ptr[1:])
        self.R = int(max([p.delay for p in projs], default=1)) + 1
        self.in_perm_back = np.argsort(self.perms[0])


# Prepared programs, owned by this engine (not hung on the Program, which stays plain data):
# a few recent ones. Keyed by the program object *and* its content: the dense tables are views
# of that program's weights, so an equal program elsewhere must not share them (an in-place
# edit of one would change the other's run), and an edited program gets new tables.
_CACHE: OrderedDict[tuple, tuple[weakref.ref, _Prepared]] = OrderedDict()
CACHE_SIZE = 4


def prepared(program: Program) -> _Prepared:
    """The kernel's view of `program`, reused while it is the same, unchanged program."""
    key = (id(program), fingerprint(program))
    hit = _CACHE.get(key)
    if hit is None or hit[0]() is not program:  # a new program may reuse a freed id
        hit = _CACHE[key] = (weakref.ref(program), _Prepared(program))
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return hit[1]


_POOL: dict[int, ThreadPoolExecutor] = {}  # size -> the pool kept for the process
# A forked child inherits the pool but not its threads: it would queue work nobody runs.
os.register_at_fork(after_in_child=_POOL.clear)


def _pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool kept for the process: new threads per call cost a warm-up (their first
    allocations, cold caches) that measured 10-40 % of a short batch's run."""
    if workers not in _POOL:
        _POOL[workers] = ThreadPoolExecutor(workers, thread_name_prefix="spinnq-events")
    return _POOL[workers]


def run_events(program: Program, xb: torch.Tensor, steps: int, rec: list[str],
               on_step: Callable[[int, int], None] | None = None) -> Run:
    """Emulate with the event-driven kernel; same Run as `emulate.emulate`. `on_step(done,
    total)` is called about 10 times a second with the sample-steps finished (the kernel
    counts them as it runs; the caller's thread polls)."""
    cfg = program.arithmetic
    P = prepared(program)
    names, index, sizes, perms = P.names, P.index, P.sizes, P.perms
    rec_off = np.full(len(names), -1, dtype=np.int64)
    o = 0
    for r in rec:
        rec_off[index[r]] = o
        o += program.populations[r].size
    B, T = int(xb.shape[0]), int(xb.shape[1])
    flat = np.ascontiguousarray(xb.reshape(B * T, -1).numpy())
    rec_s = np.zeros((B, steps, o), dtype=np.uint8)
    rec_v = np.zeros((B, steps, o), dtype=np.float32)
    cnt = np.zeros((B, steps, len(names), 4), dtype=np.float64)
    sat = np.zeros(B, dtype=np.int64)
    workers = max(1, min(torch.get_num_threads(), B))
    done = np.zeros((workers, 8), dtype=np.int64)  # a cache line per worker

    def run_slice(w: int, b0: int, b1: int) -> bool:
        """Samples b0..b1-1: their own input CSR, and views of the shared outputs."""
        in_ptr, cols, ok, _ = _spike_csr(flat[b0 * T:b1 * T])
        if not ok:
            return False
        in_idx = P.in_perm_back[cols].astype(np.int32)  # NIR index -> engine order
        _kernel(in_ptr, in_idx, T, steps, P.pop_off, sizes, P.alpha, P.th, P.off, P.vr,
                P.may_sat, cfg.reset == "subtract", cfg.fma, cfg.add_order == "offset_first",
                P.pr_pre, P.pr_delay, P.pr_macs, P.pr_kind, P.pr_wide, P.pr_tab, P.tabs8,
                P.tabs16, P.nzs, P.geo, P.by_post_ptr, P.by_post, P.R, rec_off, rec_s[b0:b1],
                rec_v[b0:b1], cnt[b0:b1], sat[b0:b1], chip.ACC_LIMIT, done[w])
        return True

    # Samples are independent: split the batch over as many threads as torch may use (the
    # kernel holds no GIL), so the emulator and torch baselines get the same cores.
    bounds = np.linspace(0, B, workers + 1).astype(int)
    with warnings.catch_warnings():  # numba: the table lists are reflected lists, on purpose
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        if workers == 1 and on_step is None:
            oks = [run_slice(0, 0, B)]
        else:
            pool = _pool(workers)
            futs = [pool.submit(run_slice, w, bounds[w], bounds[w + 1]) for w in range(workers)]
            if on_step is not None:
                while wait(futs, timeout=0.1).not_done:
                    on_step(int(done[:, 0].sum()), B * steps)
            oks = [f.result() for f in futs]
    if on_step is not None:
        on_step(B * steps, B * steps)
    if not all(oks):
        check_spikes(xb)  # raises the InputError naming the value
    mean = cnt.mean(0)  # per inference
    counters = {}
    for k, name in enumerate(names):
        c = {key: np.zeros(steps) for key in COUNTERS}
        c["spikes"], c["syn_events"] = mean[:, k, SPK], mean[:, k, SYN]
        c["packets_in"], c["macs"] = mean[:, k, PKT], mean[:, k, MAC]
        if k > 0:
            c["neuron_updates"][:] = sizes[k]
        counters[name] = c
    out_s, out_v = {}, {}
    for r in rec:
        k = index[r]
        a, n, shape = rec_off[k], sizes[k], program.populations[r].shape
        back = np.argsort(perms[k]) if len(shape) == 3 else slice(None)  # NIR <- engine
        out_s[r] = torch.from_numpy(rec_s[:, :, a:a + n][:, :, back].astype(np.float32)
                                    ).reshape(B, steps, *shape)
        if r != program.input:
            vs = np.asarray(program.populations[r].v_scale, dtype=np.float32)
            out_v[r] = torch.from_numpy(rec_v[:, :, a:a + n][:, :, back] / vs
                                        ).reshape(B, steps, *shape)
    return Run(out_s, out_v, counters, steps, int(sat.sum()))
