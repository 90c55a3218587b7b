"""Event-driven emulator engine (numba): the same chip arithmetic as `emulate.py`, spike by
spike, the way the chip itself works.

A population's input at step t is built only from the spikes that arrive. Neurons of a
(C, H, W) population are kept in H, W, C order inside the engine, so every fan-out is made of
contiguous runs over the target neurons, and the adds vectorize:

- dense: a spike adds one row of the (pre, post) integer table (the projection's weight,
  transposed; compile stores it that way, so this is a view, not a copy);
- conv (and pooling): the tap geometry of the projection (stride, padding, dilation, fused
  sum-pool) is fixed, so compile time stores, per input *position*, where a spike there adds
  its runs, and the channel only shifts them: no divisions, no border tests per spike. Without
  groups or dilation (`regular`) every spike adds the same shape, ceil(kh/sy) contiguous runs
  of ceil(kw/sx) x Co adds (zero weights for the taps a phase lacks), into a target padded
  (`halo`) so that runs falling off the edges land in cells nobody reads: the run loop's
  branches go the same way every time. Otherwise (and into targets a dense projection also
  feeds) each position lists its exact runs (`conv_runs`). Stored per position and per pre
  neuron (its synapse count, for the counters), not per synapse, so conv layers of millions
  of neurons stay small.

Weights stay int8 (int16 where a hand-built program needs it) and are summed into int32
accumulators: exact, like the chip. The neuron update is the chip step of `spinnq.s2.step`
(the one definition every engine runs, compiled into the update loops), branch-free over
contiguous float32 arrays (no fast-math, so no fused multiply-add unless `fma` asks for one;
the tests check it against the torch engine bit for bit) and zeroes the accumulator as it
reads it; populations with one alpha and one threshold and no offsets get a leaner update,
in a kernel compiled for them. Spikes are collected in a second pass, 64 neurons at a time
through a packed mask. The dense 0/1 input is turned into spikes inside the kernel, 16 steps
at a time in one streaming pass over the frames (checked there: a value other than 0 or 1
stops the run). Only recorded populations pay for recording; counters are written per
population and step. Slices of the batch run in plain threads (the kernel releases the GIL;
no OpenMP/TBB pool).

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
from spinnq.s2 import chip, step
from spinnq.s2.inputs import SpikeInput, check_spikes
from spinnq.s2.program import COUNTERS, Program, Projection, Run, fingerprint, sum_bound

try:  # optional accelerator
    from llvmlite import ir as llir
    from numba import njit
    from numba.core import types as nbtypes
    from numba.core.errors import NumbaPendingDeprecationWarning
    from numba.cpython.unsafe.numbers import trailing_zeros  # LLVM cttz, numba >= 0.45
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - exercised where numba is absent
    njit = None
    NumbaPendingDeprecationWarning = Warning

# sha256 of step.py (first 16 hex digits). numba's cache of the kernels is keyed on this file,
# not on step.py, whose functions are compiled into them: a change to the step must change this
# file too (tests/s2/test_step.py checks the digest), or cached kernels would run the old step.
STEP_DIGEST = "9a7009473b96afc5"
SPK, SYN, PKT, MAC = 0, 1, 2, 3  # counter columns in the kernel
# x * _GATHER >> 56 packs the 0/1 bytes of a 64-bit word x into one byte, bit i = byte i
_GATHER = np.uint64(0x0102040810204080)
DENSE, CONV, REG = 0, 1, 2  # projection kinds in the kernel (REG: `regular` conv)
IN_CHUNK = 16  # steps of input decoded at a time (one streaming pass over the frames)
IN_BUF = 1 << 20  # ... at most this many int32 spike slots: fewer steps for wide inputs
# conv geometry columns (one row per projection in `geo`)
GEO = ("C", "H", "W", "pool", "Hp", "Wp", "Cig", "kh", "kw", "sy", "sx", "py", "px", "dly",
       "dlx", "Ho", "Wo", "Co", "cout", "mx", "log2C", "my", "rs")
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
    my = -(-kh // sy) if mx else 0
    return np.array([C, H, W, k, H // k, W // k, Cig, kh, kw, sy, sx, py, px, dly, dlx, Ho, Wo,
                     Co, Co // G, mx, _log2(C), my, 0], dtype=np.int64)


def _log2(d: int) -> int:
    """k if d == 2**k, else -1: the kernel divides by a power of two with a shift."""
    d = int(d)
    return d.bit_length() - 1 if d > 0 and d & (d - 1) == 0 else -1


def conv_rows_table(proj: Projection, mx: int) -> np.ndarray:
    """Kernel table for one group without dilation, laid out so that one spike's taps in one
    kernel row are ONE contiguous run. A spike at input column x reaches, through kernel
    column dx = ph + sx*m (ph = (x + px) mod sx), the output column (x + px - ph)/sx - m: the
    columns it reaches are consecutive, and so are their Co channels in H, W, C order. Row
    ((c*kh + dy)*sx + ph)*mx + (mx-1-m) holds the Co weights of tap (c, dy, ph + sx*m), so the
    weights of m = m0..m1 are consecutive too (m reversed: output columns ascend)."""
    w = np.asarray(proj.weight)
    Co, C, kh, kw = w.shape
    sx = int(proj.conv["stride"][1])
    t = np.zeros((C, kh, sx, mx, Co), dtype=_table_dtype(proj))
    for ph in range(sx):
        for m in range(mx):
            dx = ph + sx * m
            if dx < kw:
                t[:, :, ph, mx - 1 - m, :] = w[:, :, :, dx].transpose(1, 2, 0)
    return t.reshape(-1, Co)


def conv_tables(proj: Projection, pre_shape, pad: tuple[int, ...] | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight table, run table, geometry) of a conv/pool projection for the kernel, its
    runs exact (`conv_runs`), into a target padded by `pad` = (top rows, left columns, padded
    width, ...) (None: not padded)."""
    geo = conv_geometry(proj, pre_shape)
    mx = int(geo[GEO.index("mx")])
    t = conv_rows_table(proj, mx) if mx else conv_table(proj)
    return t, conv_runs(proj, pre_shape, t, geo, pad), geo


def regular(proj: Projection) -> bool:
    """Whether a conv projection can run `regular`: one group, no dilation."""
    c = proj.conv
    return int(c.get("groups", 1)) == 1 and tuple(int(d) for d in c["dilation"]) == (1, 1)


def _positions(g: dict) -> tuple[np.ndarray, ...]:
    """Every input position s (pre-pool grid, H W order) of a conv with geometry `g`: s, its
    row and column after the fused pool, and whether the pool keeps it (edge rows/columns
    beyond a whole pool window are dropped)."""
    sp = np.arange(g["H"] * g["W"], dtype=np.int64)
    iy, ix = (sp // g["W"]) // g["pool"], (sp % g["W"]) // g["pool"]
    return sp, iy, ix, (iy < g["Hp"]) & (ix < g["Wp"])


def _origins(geo: np.ndarray):
    """Per input position (pre-pool grid, H W order) of a regular conv: whether a spike there
    reaches the output at all (a fused pool drops edge rows/columns), the output row and
    column its phase-0 taps reach, and its row and column phases."""
    g = dict(zip(GEO, (int(v) for v in geo), strict=False))
    _, iy, ix, valid = _positions(g)
    ty, tx = iy + g["py"], ix + g["px"]
    oyt, oxt = ty // g["sy"], tx // g["sx"]
    return valid, oyt, oxt, ty - oyt * g["sy"], tx - oxt * g["sx"]


def halo(proj: Projection, pre_shape) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows and columns of padding a target needs around its
    output grid so that this projection's `regular` runs never leave it."""
    geo = conv_geometry(proj, pre_shape)
    g = dict(zip(GEO, (int(v) for v in geo), strict=False))
    valid, oyt, oxt, _, _ = _origins(geo)
    if not valid.any():
        return 0, 0, 0, 0
    oyt, oxt = oyt[valid], oxt[valid]
    return (max(0, g["my"] - 1 - int(oyt.min())), max(0, int(oyt.max()) - g["Ho"] + 1),
            max(0, g["mx"] - 1 - int(oxt.min())), max(0, int(oxt.max()) - g["Wo"] + 1))


def regular_tables(proj: Projection, pre_shape, pad: tuple[int, int, int, int] | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight table, start table, geometry) of a `regular` conv into a target padded by
    `pad` = (top rows, left columns, padded width, padded height; from `halo`). Every spike
    adds the same shape: my = ceil(kh/sy) rows of mx = ceil(kw/sx) columns x Co channels, one
    contiguous run per row, taps outside the kernel as zero weights and targets outside the
    output in the padding (never read): no lengths, no row counts, no border tests per spike,
    so the run loop's branches are the same every time. Table row (((c*sy + phy)*my + r)*sx +
    ph)*mx + mx-1-m holds tap (dy, dx) = (phy + sy*(my-1-r), ph + sx*m): rows and columns
    reversed, so that targets and weights both ascend (a loop whose pointers step backwards
    loses LLVM's vectorized path to its overlap check: measured 2x slower). Start table,
    int64: [target start (S), weight start (S), synapses per pre neuron (S*C)]; target -1 for
    positions that reach nothing."""
    geo = conv_geometry(proj, pre_shape)
    g = dict(zip(GEO, (int(v) for v in geo), strict=False))
    C, Co, kh, kw, sy, sx, mx, my = (g["C"], g["Co"], g["kh"], g["kw"], g["sy"], g["sx"],
                                     g["mx"], g["my"])
    w = np.asarray(proj.weight)
    t = np.zeros((C, sy, my, sx, mx, Co), dtype=_table_dtype(proj))
    for phy in range(sy):
        for r in range(my):
            for ph in range(sx):
                for m in range(mx):
                    dy, dx = phy + sy * r, ph + sx * m
                    if dy < kh and dx < kw:
                        t[:, phy, my - 1 - r, ph, mx - 1 - m, :] = w[:, :, dy, dx].T
    hT, hL, Wq, Hq = pad or (0, 0, g["Wo"], g["Ho"])  # None: a target that needs none
    valid, oyt, oxt, phy, ph = _origins(geo)
    top, left = oyt[valid] - (my - 1) + hT, oxt[valid] - (mx - 1) + hL
    if valid.any() and (top.min() < 0 or left.min() < 0 or top.max() + my > Hq
                        or left.max() + mx > Wq):  # the kernel does not check bounds: we do
        raise RuntimeError(f"internal: runs of a regular conv leave its padded target {pad}")
    dst = np.where(valid, ((oyt - (my - 1) + hT) * Wq + oxt - (mx - 1) + hL) * Co, -1)
    src = ((phy * my * sx) + ph) * mx * Co
    S = g["H"] * g["W"]
    exact_t = conv_rows_table(proj, mx)
    ev = conv_runs(proj, pre_shape, exact_t, geo)[-S * C:] if S * C else np.zeros(0, np.int64)
    geo[GEO.index("rs")] = Wq * Co
    return t.reshape(-1, Co), np.concatenate([dst, src, ev]).astype(np.int64), geo


def conv_runs(proj: Projection, pre_shape, t: np.ndarray, geo: np.ndarray,
              pad: tuple[int, ...] | None = None) -> np.ndarray:
    """Every spike's runs, fixed at compile time: for each input position s (pre-pool grid,
    H W order) the runs (target start, weight start, length) its spikes add, relative to the
    spiking channel's own offsets; per channel c the offsets; per pre neuron the nonzero
    synapses it reaches. Packed into one int64 array: [ptr (S+1) | dst | src | len | cdst (C)
    | csrc (C) | ev (C*S)]; the kernel finds each section from S, C and the run count ptr[S]."""
    g = dict(zip(GEO, (int(v) for v in geo), strict=False))
    C, H, W = g["C"], g["H"], g["W"]
    kh, kw, sy, sx, py, px = g["kh"], g["kw"], g["sy"], g["sx"], g["py"], g["px"]
    dly, dlx, Ho, Wo, Co, cout, mx, Cig = (g["dly"], g["dlx"], g["Ho"], g["Wo"], g["Co"],
                                           g["cout"], g["mx"], g["Cig"])
    hT, hL, Wq = pad[:3] if pad else (0, 0, Wo)
    S = H * W
    sp, iy, ix, valid = _positions(g)
    parts = []
    if mx:
        tx = ix + px
        oxt = tx // sx
        ph = tx - oxt * sx
        m1 = np.minimum((kw - ph + sx - 1) // sx - 1, oxt)
        m0 = np.maximum(0, oxt - Wo + 1)
        for dy in range(kh):
            ny = iy + py - dy
            oy = ny // sy
            ok = valid & (ny >= 0) & (ny % sy == 0) & (oy < Ho) & (m0 <= m1)
            parts.append((sp[ok], (((oy + hT) * Wq + oxt - m1 + hL) * Co)[ok],
                          (((dy * sx + ph) * mx + mx - 1 - m1) * Co)[ok], ((m1 - m0 + 1) * Co)[ok]))
        cstride, cdst = kh * sx * mx * Co, np.zeros(C, np.int64)
    else:
        for dy in range(kh):
            for dx in range(kw):
                ny, nx = iy + py - dy * dly, ix + px - dx * dlx
                oy, ox = ny // sy, nx // sx
                ok = (valid & (ny % sy == 0) & (nx % sx == 0) & (oy >= 0) & (oy < Ho)
                      & (ox >= 0) & (ox < Wo))
                n = int(ok.sum())
                parts.append((sp[ok], (((oy + hT) * Wq + ox + hL) * Co)[ok],
                              np.full(n, (dy * kw + dx) * cout), np.full(n, cout)))
        cstride, cdst = kh * kw * cout, (np.arange(C, dtype=np.int64) // Cig) * cout
    rs, rd, rsrc, rl = (np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64)
                        for i in range(4))
    order = np.argsort(rs, kind="stable")
    rs, rd, rsrc, rl = rs[order], rd[order], rsrc[order], rl[order]
    ptr = np.zeros(S + 1, np.int64)
    np.cumsum(np.bincount(rs, minlength=S), out=ptr[1:])
    csrc = np.arange(C, dtype=np.int64) * cstride
    nzc = np.zeros(t.size + 1, np.int64)
    np.cumsum(t.reshape(-1) != 0, out=nzc[1:])
    ev = np.zeros((S, C), np.int64)
    for c in range(C):
        a = csrc[c] + rsrc
        ev[:, c] = np.bincount(rs, weights=nzc[a + rl] - nzc[a], minlength=S)
    return np.concatenate([ptr, rd, rsrc, rl, cdst, csrc, ev.reshape(-1)])


def fanout(proj: Projection, pre_shape, post_shape, j: int, layout: str = "engine"
           ) -> tuple[np.ndarray, np.ndarray]:
    """(post NIR flat index, integer weight) of the synapses one spike of pre neuron `j` (NIR
    flat index) reaches, computed by the engine's own fan-out code (for tests and tools).
    A conv runs as the engine runs it into a target only convs feed (`layout="engine"`:
    `regular` where it can, into a padded target), or through the exact run tables
    (`layout="exact"`, what a target that a dense projection also feeds gets)."""
    n_post = int(np.prod(post_shape))
    cur = np.zeros(n_post, np.int32)
    probe = np.zeros(n_post, np.int32)  # a second pass with weights 1 finds zero-sum targets
    je = int(np.argsort(perm(pre_shape))[j])
    js = np.array([je], dtype=np.int32)
    if proj.kind == "dense":
        t = dense_table(proj, pre_shape, post_shape)
        cur += t[je]
        probe += t[je] != 0
    elif layout == "engine" and regular(proj):
        Co, Ho, Wo = post_shape
        hT, hB, hL, hR = halo(proj, pre_shape)
        Hq, Wq = Ho + hT + hB, Wo + hL + hR
        t, st, geo = regular_tables(proj, pre_shape, (hT, hL, Wq, Hq))
        for out, tab in ((cur, t), (probe, (t != 0).astype(t.dtype))):
            padded = np.zeros(Hq * Wq * Co, np.int32)
            _conv_reg(padded, 0, js, 0, 1, tab, st, geo)
            out[:] = padded.reshape(Hq, Wq, Co)[hT:hT + Ho, hL:hL + Wo].reshape(-1)
    else:
        t, nz, geo = conv_tables(proj, pre_shape)
        _conv(cur, 0, js, 0, 1, t, nz, geo)
        _conv(probe, 0, js, 0, 1, (t != 0).astype(t.dtype), nz, geo)
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

    @intrinsic
    def _add16(typingctx, cur, p, src, w):
        """cur[p:p+16] += src[w:w+16] (int8/int16 weights into int32) as one 16-lane vector
        operation. LLVM vectorizes `add_run` only behind a run-time overlap check of the two
        arrays and picks 8-lane steps for runs under 64: for the regular conv's runs (a
        multiple of 16, known per call) the explicit vector is 7 % faster on the whole seed
        network (measured)."""
        sig = nbtypes.void(cur, p, src, w)

        def codegen(context, builder, signature, args):
            ca = context.make_array(signature.args[0])(context, builder, args[0])
            sa = context.make_array(signature.args[2])(context, builder, args[2])
            vs = llir.VectorType(context.get_data_type(signature.args[2].dtype), 16)
            vc = llir.VectorType(context.get_data_type(signature.args[0].dtype), 16)
            sp = builder.bitcast(builder.gep(sa.data, [args[3]]), vs.as_pointer())
            cp = builder.bitcast(builder.gep(ca.data, [args[1]]), vc.as_pointer())
            x = builder.add(builder.load(cp, align=4), builder.sext(builder.load(sp, align=1), vc))
            builder.store(x, cp, align=4)
            return context.get_dummy_value()
        return sig, codegen

    @njit(cache=True, nogil=True)
    def _conv(cur, o, spk, s0, ns, tab, rt, geo):
        """The spikes spk[s0:s0+ns] (pre neurons, engine order) through a conv/pool
        projection into cur[o:]: per spike the runs its input position adds (`conv_runs`),
        at its channel's offsets. Returns the nonzero synapses reached (the counter)."""
        flat = tab.reshape(tab.size)
        C, lC = geo[0], geo[20]
        S = geo[1] * geo[2]
        n = rt[S]
        od, osr, ol = S + 1, S + 1 + n, S + 1 + 2 * n
        ocd = S + 1 + 3 * n
        ocs = ocd + C
        oev = ocs + C
        ev = 0
        for a in range(s0, s0 + ns):
            j = np.int64(spk[a])
            sp = _div(j, C, lC)
            c = j - sp * C
            d0 = o + rt[ocd + c]
            w0 = rt[ocs + c]
            for r in range(rt[sp], rt[sp + 1]):
                add_run(cur, d0 + rt[od + r], flat, w0 + rt[osr + r], rt[ol + r])
            ev += rt[oev + j]
        return ev

    @njit(cache=True, nogil=True)
    def _conv_reg(cur, o, spk, s0, ns, tab, st, geo):
        """The spikes spk[s0:s0+ns] through a `regular` conv into a padded target at cur[o:]:
        per spike my runs of mx*Co adds, one per kernel row, rows apart by the target's
        row stride."""
        flat = tab.reshape(tab.size)
        C, lC, S = geo[0], geo[20], geo[1] * geo[2]
        sy, sx, Co, mx, my, rs = geo[9], geo[10], geo[17], geo[19], geo[21], geo[22]
        L = mx * Co
        rstep = sx * L
        cstep = sy * my * rstep
        vec = L % 16 == 0  # whole 16-lane vectors (Co a multiple of 16, or mx*Co)
        nv = np.uint64(L // 16)
        ev = 0
        for a in range(s0, s0 + ns):
            j = np.int64(spk[a])
            sp = _div(j, C, lC)
            c = j - sp * C
            d = st[sp]
            if d < 0:  # cut off by a fused pool
                continue
            d += o
            w = c * cstep + st[S + sp]
            if vec:
                for r in range(my):
                    p = np.uint64(d + r * rs)
                    q = np.uint64(w + r * rstep)
                    for u in range(nv):
                        _add16(cur, p + (u << np.uint64(4)), flat, q + (u << np.uint64(4)))
            else:
                for r in range(my):
                    add_run(cur, d + r * rs, flat, w + r * rstep, L)
            ev += st[2 * S + j]
        return ev

    @njit(cache=True, nogil=True)
    def _dense(cur, o, spk, s0, ns, tab, nz):
        """The spikes spk[s0:s0+ns] through a dense projection: one table row each."""
        ev = 0
        n = tab.shape[1]
        flat = tab.reshape(tab.size)
        for a in range(s0, s0 + ns):
            j = spk[a]
            add_run(cur, o, flat, j * n, n)
            ev += nz[j]
        return ev

    @njit(cache=True, nogil=True, inline="always")
    def _select(c, a, b):
        """a where c else b: a select, not a jump, so the update loops vectorize."""
        return a if c else b

    # The chip step (`spinnq.s2.step`), compiled into the update loops below (see
    # `STEP_DIGEST` for numba's cache).
    STEP = step.define(np.float64, np.float32, _select,
                       njit(cache=True, nogil=True, inline="always"))
    _neuron, _integrate, _fire, _reset = STEP.neuron, STEP.integrate, STEP.fire, STEP.reset

    @njit(cache=True, nogil=True, inline="always")
    def _update_loop(v, vo, cur, co, fired, fo, n, alpha, th, off, vr, subtract, fma,
                     offset_first):
        """`_update`'s loop, `fma` a compile-time constant of each call (one loop each)."""
        vu, cu, fu = np.uint64(vo), np.uint64(co), np.uint64(fo)
        for i in range(np.uint64(n)):
            g = vu + i
            x_i = np.float32(cur[cu + i])
            cur[cu + i] = 0
            f, v[g] = _neuron(v[g], x_i, alpha[g], off[g], th[g], vr[g], subtract, fma,
                              offset_first)
            fired[fu + i] = f

    @njit(cache=True, nogil=True, inline="always")
    def _update(v, vo, cur, co, fired, fo, n, alpha, th, off, vr, subtract, fma, offset_first):
        """The neuron update of neurons vo..vo+n-1 (accumulators from co, flags from fo):
        `step.neuron`, branch-free (selects, no jumps) so it vectorizes; fired = 0/1; the
        accumulator is zeroed as it is read (ready for the next step, no second pass).
        Read-outs have threshold +inf. Indexes by offset (unsigned), not views: a view costs
        atomic reference counts."""
        if fma:
            _update_loop(v, vo, cur, co, fired, fo, n, alpha, th, off, vr, subtract, True,
                         offset_first)
        else:
            _update_loop(v, vo, cur, co, fired, fo, n, alpha, th, off, vr, subtract, False,
                         offset_first)

    @njit(cache=True, nogil=True, inline="always")
    def _update_uniform(v, vo, cur, co, fired, fo, n, alpha, th):
        """`_update` for a population with one alpha and one threshold, no offsets, reset
        by subtraction, no fma: `step.integrate` (no offset term), fire and reset, the same
        floats, but only v and the accumulators are streamed (the update is bound by cache
        bandwidth: measured 2x faster)."""
        vu, cu, fu = np.uint64(vo), np.uint64(co), np.uint64(fo)
        for i in range(np.uint64(n)):
            x = _integrate(v[vu + i], np.float32(cur[cu + i]), alpha, False)
            cur[cu + i] = 0
            f = _fire(x, th)
            v[vu + i] = _reset(x, f, th, th, True)
            fired[fu + i] = f

    @njit(cache=True, nogil=True, inline="always")
    def _collect(fired, fw, n, out, base):
        """Indices of the neurons that fired (fired[0:n] as 0/1 bytes, fw the same memory as
        64-bit words) into out[base:], ascending; how many fired. out needs one slot past
        base + n (an index may be stored there, never counted). 64 neurons at a time: their
        flags packed into one 64-bit mask without branches (a multiply gathers a word's 8
        flags into a byte), then one store per set bit (trailing-zero count), 8 of them
        unconditionally. Branches on the data (is a word busy? is the mask empty?) mispredict
        at a few % firing: they were most of the collection's time (measured)."""
        nb = n >> 6
        ns = np.uint64(0)
        bu = np.uint64(base)
        for blk in range(nb):
            m = np.uint64(0)
            for k in range(8):
                m |= ((fw[blk * 8 + k] * _GATHER) >> np.uint64(56)) << np.uint64(8 * k)
            i0 = blk * 64
            for _ in range(8):  # up to 8 spikes without a branch: the lowest set bit's index
                # is stored whether or not there is one (64 for none: overwritten next, or
                # past the count) and the count advances by 0 or 1
                out[bu + ns] = i0 + trailing_zeros(m)
                ns += np.uint64(m != 0)
                m &= m - np.uint64(1)
            while m != 0:  # more than 8 of 64 fired: the same way for a population, predicted
                out[bu + ns] = i0 + trailing_zeros(m)
                ns += np.uint64(1)
                m &= m - np.uint64(1)
        for i in range(nb * 64, n):  # the last, partial block
            if fired[i] != 0:
                out[bu + ns] = i
                ns += np.uint64(1)
        return np.int64(ns)

    @njit(cache=True, nogil=True, inline="always")
    def _input_spikes(x, fired, fw, out, base, perm_back):
        """One step of dense 0/1 input (uint8, NIR order) -> engine-order indices in
        out[base:]; -1 if a value is not 0 or 1 (NaN included). A branch-free pass flags the
        nonzero values, `_collect` lists them, and only those are checked to be 1."""
        n = x.shape[0]
        for i in range(n):
            fired[i] = x[i] != 0
        ns = _collect(fired, fw, n, out, base)
        bu = np.uint64(base)
        bad = 0
        for a in range(np.uint64(ns)):
            j = out[bu + a]
            bad += x[j] != 1
            out[bu + a] = perm_back[j]
        return -1 if bad else ns

    @njit(cache=True, nogil=True, inline="always")
    def _input_sorted(x, fwd, c, fired, fw, out, base):
        """One step of dense 0/1 input (NIR order, c channels first) -> its spikes'
        engine-order indices (channels last), ascending, in out[base:] (`fwd`: engine -> NIR
        index); -1 if a value is not 0 or 1. The order a float convolution adds its events
        in (`graph.fused`). Flags are set plane by plane, reading x in order."""
        n = x.shape[0]
        hw = n // c
        if c == 2:  # two planes (DVS polarities): interleaved stores, vectorised
            for pix in range(hw):
                fired[2 * pix] = x[pix] != 0
                fired[2 * pix + 1] = x[hw + pix] != 0
        else:
            for q in range(c):
                for pix in range(hw):
                    fired[pix * c + q] = x[q * hw + pix] != 0
        ns = _collect(fired, fw, n, out, base)
        bu = np.uint64(base)
        bad = 0
        for a in range(np.uint64(ns)):
            bad += x[fwd[out[bu + a]]] != 1
        return -1 if bad else ns

    @njit(cache=True, nogil=True)
    def _decode(xin, fwd, c, ptr, idx):
        """Every step of xin (B, T, inputs) as `_input_sorted` lists it, one after another
        (sample b's step t from ptr[b * T + t]) into idx, or a larger copy when it fills
        (one step's inputs and `_collect`'s slot always fit); (False, idx) at once on a
        value that is not 0 or 1. One pass over the input, no count before it."""
        B, T, n = xin.shape
        fw = np.zeros((n + 15) // 8, np.uint64)
        fired = fw.view(np.uint8)
        e = 0
        for b in range(B):
            for t in range(T):
                if e + n + 1 > idx.shape[0]:
                    grown = np.empty(max(2 * idx.shape[0], e + n + 1), np.int32)
                    grown[:e] = idx[:e]
                    idx = grown
                ptr[b * T + t] = e
                m = _input_sorted(xin[b, t], fwd, c, fired, fw, idx, e)
                if m < 0:
                    return False, idx
                e += m
        ptr[B * T] = e
        return True, idx

    # No numba parallel layer on purpose: OpenMP/TBB share or fight torch's thread pool
    # (measured: torch ops 20x slower after a parallel numba call on a 2-core box). Instead
    # the kernel releases the GIL and `run_events` runs slices of the batch in plain threads.
    @njit(cache=True, nogil=True)
    def _kernel(xin, ev_ptr, ev_idx, perm_back, T, steps, pop_off, pop_n, pop_cur, NC, alpha,
                th, off, vreset,
                uniform, a_pop, th_pop, may_sat,
                subtract, fma, offset_first, pr_pre, pr_delay, pr_macs, pr_kind, pr_wide,
                pr_tab, tabs8, tabs16, nzs, geo, by_post_ptr, by_post, R, rec_off, rec_s,
                rec_v, cnt, sat, acc_limit, done):
        """Run samples xin[b] (T, inputs) of 0/1 bytes (uint8); False (at once) on another value.
        With `ev_ptr` not empty the input comes decoded instead (`decode_input`: sample b's
        step t is ev_idx[ev_ptr[b * T + t]:ev_ptr[b * T + t + 1]]) and xin is not read.
        Called with `uniform` a constant (`_kernel_uniform`, `_kernel_general`), so that LLVM
        compiles one update loop into each: with both loops in one kernel, a run-time choice
        made the whole kernel ~15 % slower (measured), not just the update."""
        B = cnt.shape[0]
        P = pop_n.shape[0]
        N = alpha.shape[0]
        lim = np.int32(acc_limit)
        nmax = 8
        for k in range(P):
            nmax = max(nmax, pop_n[k] + 8)
        v = np.zeros(N, np.float32)
        cur = np.zeros(NC, np.int32)  # accumulators; padded around regular conv targets
        fw = np.zeros((nmax + 7) // 8, np.uint64)
        n_in = pop_n[0]
        chunk = max(1, min(IN_CHUNK, IN_BUF // (n_in + 1)))
        ibuf = np.zeros(chunk * (n_in + 1), np.int32)  # the input spikes of `chunk` steps
        icnt = np.zeros(chunk, np.int64)
        fired = fw.view(np.uint8)
        shared = ev_ptr.shape[0] > 0
        # the spikes of step t at (t % R) * N + pop offset; one slot more for `_collect`
        ring = np.zeros(R * N + 1, np.int32)
        ring_n = np.zeros((R, P), np.int64)
        for b in range(B):
            v[:] = 0
            ring_n[:] = 0
            for t in range(steps):
                slot = t % R
                base = slot * N
                o0 = pop_off[0]
                m = 0
                if t < T and shared:  # decoded once for every program run on it
                    e0 = ev_ptr[b * T + t]
                    m = ev_ptr[b * T + t + 1] - e0
                    for a in range(m):
                        ring[base + o0 + a] = ev_idx[e0 + a]
                elif t < T:
                    r = t % chunk
                    # The next steps' input in one streaming pass over the frames (measured:
                    # -0.2 ms per sample against a step at a time, whose reads miss in memory).
                    if r == 0:
                        for u in range(min(chunk, T - t)):
                            icnt[u] = _input_spikes(xin[b, t + u], fired, fw, ibuf,
                                                    u * (n_in + 1), perm_back)
                            if icnt[u] < 0:
                                return False
                    m = icnt[r]
                    i0 = r * (n_in + 1)
                    for a in range(m):
                        ring[base + o0 + a] = ibuf[i0 + a]
                ring_n[slot, 0] = m
                cnt[b, t, 0, SPK] = m
                if rec_off[0] >= 0:
                    for a in range(m):
                        rec_s[b, t, rec_off[0] + ring[base + o0 + a]] = 1
                for k in range(1, P):
                    o = pop_off[k]
                    n = pop_n[k]
                    oc = pop_cur[k, 0]
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
                        s0 = s2 * N + pop_off[pre]
                        kind = pr_kind[q]
                        if kind == DENSE:
                            if pr_wide[q]:
                                ev = _dense(cur, oc, ring, s0, nsp, tabs16[pr_tab[q]], nzs[q])
                            else:
                                ev = _dense(cur, oc, ring, s0, nsp, tabs8[pr_tab[q]], nzs[q])
                        elif kind == REG:
                            if pr_wide[q]:
                                ev = _conv_reg(cur, oc, ring, s0, nsp, tabs16[pr_tab[q]], nzs[q],
                                               geo[q])
                            else:
                                ev = _conv_reg(cur, oc, ring, s0, nsp, tabs8[pr_tab[q]], nzs[q],
                                               geo[q])
                        elif pr_wide[q]:
                            ev = _conv(cur, oc, ring, s0, nsp, tabs16[pr_tab[q]], nzs[q], geo[q])
                        else:
                            ev = _conv(cur, oc, ring, s0, nsp, tabs8[pr_tab[q]], nzs[q], geo[q])
                        cnt[b, t, k, SYN] += ev
                        cnt[b, t, k, PKT] += nsp
                        cnt[b, t, k, MAC] += pr_macs[q]
                    rows, rl, rsd, cf = pop_cur[k, 1], pop_cur[k, 2], pop_cur[k, 3], pop_cur[k, 4]
                    for y in range(rows):  # a padded target row by row, else one row
                        if may_sat[k]:  # saturate, never wrap (skipped when sums cannot reach)
                            for i in range(cf + y * rsd, cf + y * rsd + rl):
                                x = cur[i]
                                if x > lim or x < -lim:
                                    cur[i] = lim if x > 0 else -lim
                                    sat[b] += 1
                        if uniform:
                            _update_uniform(v, o + y * rl, cur, cf + y * rsd, fired, y * rl, rl,
                                            a_pop[k], th_pop[k])
                        else:
                            _update(v, o + y * rl, cur, cf + y * rsd, fired, y * rl, rl, alpha,
                                    th, off, vreset, subtract, fma, offset_first)
                    ns = _collect(fired, fw, n, ring, base + o)
                    ring_n[slot, k] = ns
                    cnt[b, t, k, SPK] = ns
                    ro = rec_off[k]
                    if ro >= 0:
                        rec_v[b, t, ro:ro + n] = v[o:o + n]
                        for a in range(ns):
                            rec_s[b, t, ro + ring[base + o + a]] = 1
                done[0] += 1  # sample-steps finished: a progress bar reads it while we run
        return True


if njit is not None:

    @njit(cache=True, nogil=True)
    def _kernel_uniform(xin, ev_ptr, ev_idx, perm_back, T, steps, pop_off, pop_n, pop_cur, NC,
                        alpha, th, off,
                        vreset, a_pop, th_pop, may_sat, subtract, fma, offset_first, pr_pre,
                        pr_delay, pr_macs, pr_kind, pr_wide, pr_tab, tabs8, tabs16, nzs, geo,
                        by_post_ptr, by_post, R, rec_off, rec_s, rec_v, cnt, sat, acc_limit, done):
        """The kernel with the lean update compiled in (every population `uniform`)."""
        return _kernel(xin, ev_ptr, ev_idx, perm_back, T, steps, pop_off, pop_n, pop_cur, NC,
                       alpha, th, off,
                       vreset, True, a_pop, th_pop, may_sat, subtract, fma, offset_first, pr_pre,
                       pr_delay, pr_macs, pr_kind, pr_wide, pr_tab, tabs8, tabs16, nzs, geo,
                       by_post_ptr, by_post, R, rec_off, rec_s, rec_v, cnt, sat, acc_limit, done)

    @njit(cache=True, nogil=True)
    def _kernel_general(xin, ev_ptr, ev_idx, perm_back, T, steps, pop_off, pop_n, pop_cur, NC,
                        alpha, th, off,
                        vreset, a_pop, th_pop, may_sat, subtract, fma, offset_first, pr_pre,
                        pr_delay, pr_macs, pr_kind, pr_wide, pr_tab, tabs8, tabs16, nzs, geo,
                        by_post_ptr, by_post, R, rec_off, rec_s, rec_v, cnt, sat, acc_limit, done):
        """The kernel with the general update only."""
        return _kernel(xin, ev_ptr, ev_idx, perm_back, T, steps, pop_off, pop_n, pop_cur, NC,
                       alpha, th, off,
                       vreset, False, a_pop, th_pop, may_sat, subtract, fma, offset_first, pr_pre,
                       pr_delay, pr_macs, pr_kind, pr_wide, pr_tab, tabs8, tabs16, nzs, geo,
                       by_post_ptr, by_post, R, rec_off, rec_s, rec_v, cnt, sat, acc_limit, done)


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
        self._neurons(program)
        projs = program.projections
        # Accumulator layout: a (C, H, W) population that only conv projections feed is padded
        # (`halo`) so that the regular ones add fixed-shape runs; anything else is one row.
        fed_dense = {index[p.post] for p in projs if p.kind == "dense"}
        reg = [p.kind != "dense" and index[p.post] not in fed_dense and regular(p)
               for p in projs]
        self._accumulators(program, reg)
        self._tables(program, reg)
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
        self.in_perm_back = np.argsort(self.perms[0]).astype(np.int32)

    def _neurons(self, program: Program) -> None:
        """Neuron parameters in engine order, and whether the lean update can run them."""
        pops, sizes, index = self.pops, self.sizes, self.index

        def cat(key: str, default: float) -> np.ndarray:
            return np.concatenate([np.asarray(p.params.get(key, np.full(p.size, default)),
                                              dtype=np.float32).reshape(p.size)[pm]
                                   for p, pm in zip(pops, self.perms, strict=True)])

        self.alpha, self.th = cat("alpha", 1.0), cat("threshold", np.inf)
        self.off, self.vr = cat("i_offset", 0.0), cat("v_reset", 0.0)
        self.th[np.repeat([p.record_only for p in pops], sizes)] = np.inf  # never fire
        # One alpha and one threshold per population and no offsets (the common case): the
        # kernel compiled with the lean update (`_update_uniform`) runs it.
        spans = [slice(o, o + n) for o, n in zip(self.pop_off, sizes, strict=True)]
        self.a_pop = np.array([self.alpha[f][0] if f.stop > f.start else 1.0 for f in spans],
                              dtype=np.float32)
        self.th_pop = np.array([self.th[f][0] if f.stop > f.start else np.inf for f in spans],
                               dtype=np.float32)
        self.uniform = not np.any(self.off) and all(
            np.all(self.alpha[f] == a) and np.all(self.th[f] == t)
            for f, a, t in zip(spans[1:], self.a_pop[1:], self.th_pop[1:], strict=True))
        bounds = np.zeros(len(pops))
        for p in program.projections:
            bounds[index[p.post]] += sum_bound(p)
        self.may_sat = bounds > chip.ACC_LIMIT

    def _accumulators(self, program: Program, reg: list[bool]) -> None:
        """Where each population's input sums live (`pop_cur`, `pad`, `n_cur`)."""
        pops, index = self.pops, self.index
        pads = [[0, 0, 0, 0] for _ in pops]
        for p, r in zip(program.projections, reg, strict=True):
            if r:
                h = halo(p, program.populations[p.pre].shape)
                pads[index[p.post]] = [max(a, b) for a, b in zip(pads[index[p.post]], h,
                                                                 strict=True)]
        self.pop_cur = np.zeros((len(pops), 5), dtype=np.int64)  # base, rows, row, stride, first
        self.pad = []
        base = 0
        for k, p in enumerate(pops):
            hT, hB, hL, hR = pads[k]
            if any(pads[k]):
                C, H, W = p.shape
                Wq = W + hL + hR
                self.pop_cur[k] = base, H, W * C, Wq * C, base + (hT * Wq + hL) * C
                self.pad.append((hT, hL, Wq, H + hT + hB))
                base += (H + hT + hB) * Wq * C
            else:
                self.pop_cur[k] = base, 1, p.size, p.size, base
                self.pad.append(None)
                base += p.size
        self.n_cur = base

    def _tables(self, program: Program, reg: list[bool]) -> None:
        """Each projection's kind, geometry and weight table (int8, or int16 where wide)."""
        projs, index = program.projections, self.index
        Q = len(projs)
        self.pr_kind = np.array([DENSE if p.kind == "dense" else REG if r else CONV
                                 for p, r in zip(projs, reg, strict=True)] or [0],
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
            elif reg[q]:
                t, nz, self.geo[q] = regular_tables(p, pre, self.pad[index[p.post]])
            else:
                t, nz, self.geo[q] = conv_tables(p, pre, self.pad[index[p.post]])
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


_NO_PTR, _NO_IDX = np.zeros(0, np.int64), np.zeros(1, np.int32)  # no decoded input
_POOL: dict[int, ThreadPoolExecutor] = {}  # size -> the pool kept for the process
# A forked child inherits the pool but not its threads: it would queue work nobody runs.
os.register_at_fork(after_in_child=_POOL.clear)


def _pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool kept for the process: new threads per call cost a warm-up (their first
    allocations, cold caches) that measured 10-40 % of a short batch's run."""
    if workers not in _POOL:
        _POOL[workers] = ThreadPoolExecutor(workers, thread_name_prefix="spinnq-events")
    return _POOL[workers]


def decode_input(xb: np.ndarray, shape: tuple[int, ...]) -> SpikeInput:
    """xb (`spike_batch`'s (B, T, *shape)) with its spikes listed per step in engine order
    ((H, W, C) for a (C, H, W) input), ascending: what the kernel lists from a dense input
    at every run (in another order, which integer sums do not see), decoded once here; any
    number of programs whose input population has `shape` read the lists (`run_events(...,
    decoded)`), and the float reference's chains (`graph.fused`). An input value other than
    0 or 1 is an InputError, as in a run."""
    B, T = int(xb.shape[0]), int(xb.shape[1])
    xin = _steps_flat(xb)
    ptr = np.empty(B * T + 1, dtype=np.int64)
    # room for 1/16 of the values (a DVS input is mostly zeros); it doubles as it fills
    idx = np.empty(max(1, xin.size // 16) + xin.shape[-1] + 1, dtype=np.int32)
    c = int(shape[0]) if len(shape) == 3 else 1  # (C, H, W): engine order is (H, W, C)
    ok, idx = _decode(xin, perm(tuple(shape)).astype(np.int32), c, ptr, idx)
    if not ok:
        check_spikes(xb)  # raises the InputError naming the value
    return SpikeInput(xb, tuple(shape), ptr, idx)


def _kernel_input(xb: np.ndarray, decoded: SpikeInput | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dense input, spike list pointers, lists) as the kernel reads them: xb's frames
    and no lists, or `decoded`'s lists and an empty stand-in for the frames."""
    if decoded is not None and decoded.ptr is not None:
        return np.zeros((int(xb.shape[0]), 0, 0), dtype=np.uint8), decoded.ptr, decoded.idx
    return _steps_flat(xb), _NO_PTR, _NO_IDX


def _steps_flat(xb: np.ndarray) -> np.ndarray:
    """xb (B, T, *shape) as the kernels read it: (B, T, inputs), contiguous and writeable
    (numba compiles read-only arrays as another kernel)."""
    xin = np.ascontiguousarray(xb.reshape(int(xb.shape[0]), int(xb.shape[1]), -1))
    return xin if xin.flags.writeable else xin.copy()


def run_events(program: Program, xb: np.ndarray, steps: int, rec: list[str],
               on_step: Callable[[int, int], None] | None = None,
               decoded: SpikeInput | None = None) -> Run:
    """Emulate with the event-driven kernel; same Run as `emulate.emulate`. `on_step(done,
    total)` is called about 10 times a second with the sample-steps finished (the kernel
    counts them as it runs; the caller's thread polls). `decoded` (`decode_input` of xb):
    the input's spike lists, read instead of decoding xb again."""
    cfg = program.arithmetic
    P = prepared(program)
    names, index, sizes, perms = P.names, P.index, P.sizes, P.perms
    rec_off = np.full(len(names), -1, dtype=np.int64)
    o = 0
    for r in rec:
        rec_off[index[r]] = o
        o += program.populations[r].size
    B, T = int(xb.shape[0]), int(xb.shape[1])
    xin, ev_ptr, ev_idx = _kernel_input(xb, decoded)
    rec_s = np.zeros((B, steps, o), dtype=np.uint8)
    rec_v = np.zeros((B, steps, o), dtype=np.float32)
    cnt = np.zeros((B, steps, len(names), 4), dtype=np.float64)
    sat = np.zeros(B, dtype=np.int64)
    workers = max(1, min(torch.get_num_threads(), B))
    done = np.zeros((workers, 8), dtype=np.int64)  # a cache line per worker

    uniform = bool(P.uniform and cfg.reset == "subtract" and not cfg.fma)

    def run_slice(w: int, b0: int, b1: int) -> bool:
        """Samples b0..b1-1 (views of the shared input and outputs)."""
        kernel = _kernel_uniform if uniform else _kernel_general
        ptr = ev_ptr[b0 * T:b1 * T + 1] if len(ev_ptr) else ev_ptr
        return kernel(xin[b0:b1], ptr, ev_idx, P.in_perm_back, T, steps, P.pop_off, sizes,
                       P.pop_cur, P.n_cur, P.alpha,
                       P.th, P.off, P.vr, P.a_pop, P.th_pop, P.may_sat,
                       cfg.reset == "subtract", cfg.fma,
                       cfg.add_order == "offset_first", P.pr_pre, P.pr_delay, P.pr_macs,
                       P.pr_kind, P.pr_wide, P.pr_tab, P.tabs8, P.tabs16, P.nzs, P.geo,
                       P.by_post_ptr, P.by_post, P.R, rec_off, rec_s[b0:b1], rec_v[b0:b1],
                       cnt[b0:b1], sat[b0:b1], chip.ACC_LIMIT, done[w])

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
