"""Event-driven emulator engine (numba): the same chip arithmetic as `emulate.py`, spike by
spike, the way the chip itself works.

A population's input at step t is built only from the spikes that arrive: each pre spike
adds its fan-out of integer weights, stored as *runs* of consecutive target neurons (conv and
fused pools unrolled into them). Neurons of a (C, H, W) population are kept in H, W, C order
inside the engine, so one conv tap of one spike is one contiguous run over the output
channels and a dense row is one run: the adds vectorize. The cost follows the activity, not
the layer sizes. The neuron update is the same float32 sequence as
`emulate.lif_step` (no fast-math, so no fused multiply-add unless `fma` asks for one), which
the tests check against the torch engine bit for bit. Slices of the batch run in as many
plain threads as torch may use (the kernel releases the GIL; no OpenMP/TBB pool).

Covers every program without `lif_curr_exp` populations (those use the torch engine).
Optional: needs numba (`pip install numba`, the `fast` extra); `emulate` falls back to the
torch engine without it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from spinnq.s2.emulate import ACC_LIMIT, CUBA_MODELS, _check_spikes, fingerprint
from spinnq.s2.program import COUNTERS, Program, Projection, Run

try:  # optional accelerator
    from numba import njit
except ImportError:  # pragma: no cover - exercised where numba is absent
    njit = None

SPK, SYN, PKT, MAC = 0, 1, 2, 3  # counter columns in the kernel


def available() -> bool:
    return njit is not None


def supported(program: Program) -> bool:
    return not any(p.model in CUBA_MODELS for p in program.populations.values())


# ------------------------------------------------------------------------ fan-out tables
def fanout_table(proj: Projection, pre_shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """CSR by pre neuron: (indptr (pre+1,), post index (nnz,), integer weight (nnz,))."""
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


def _perm(shape: tuple[int, ...]) -> np.ndarray:
    """Engine order -> NIR flat index: (C, H, W) populations are held as H, W, C."""
    n = int(np.prod(shape))
    if len(shape) == 3:
        C, H, W = shape
        return np.arange(n).reshape(C, H, W).transpose(1, 2, 0).ravel()
    return np.arange(n)


def fanout_runs(proj: Projection, pre_shape, post_shape) -> tuple[np.ndarray, ...]:
    """Runs by pre neuron, engine order: (run_ptr (pre+1,), run_post, run_w, run_len,
    weights (float32, run after run), nonzero synapses per pre neuron)."""
    w = np.asarray(proj.weight)
    perm_pre = _perm(pre_shape)
    n_pre = perm_pre.size
    if proj.kind == "dense":  # one run per pre neuron: its whole column
        cols = w.T[perm_pre]  # (pre, post), post is 1-D
        n_post = cols.shape[1]
        run_ptr = np.arange(n_pre + 1, dtype=np.int64)
        return (run_ptr, np.zeros(n_pre, np.int32), np.arange(n_pre, dtype=np.int64) * n_post,
                np.full(n_pre, n_post, np.int32), cols.astype(np.float32).ravel(),
                np.count_nonzero(cols, axis=1).astype(np.int64))
    Co, Cig, kh, kw = w.shape
    G = int(proj.conv.get("groups", 1))
    cout = Co // G
    Wo = proj.conv["out_shape"][2]
    table = w.reshape(G, cout, Cig, kh, kw).transpose(0, 2, 3, 4, 1)  # (G, Cig, kh, kw, cout)
    js, starts, offs = [], [], []
    for dy, dx, sel, oy, ox, g, cin in _conv_taps(w, proj.conv, pre_shape):
        js.append(sel)
        starts.append((oy * Wo + ox) * Co + g * cout)
        offs.append((((g * Cig + cin) * kh + dy) * kw + dx) * cout)
    inv_pre = np.argsort(perm_pre)
    j = inv_pre[np.concatenate(js)]
    order = np.argsort(j, kind="stable")
    j, start, off = j[order], np.concatenate(starts)[order], np.concatenate(offs)[order]
    flat = np.ascontiguousarray(table, dtype=np.float32).ravel()  # shared by every run
    run_ptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.bincount(j, minlength=n_pre), out=run_ptr[1:])
    nz_block = np.count_nonzero(flat.reshape(-1, cout), axis=1)
    nz = np.bincount(j, weights=nz_block[off // cout], minlength=n_pre)
    return (run_ptr, start.astype(np.int32), off.astype(np.int64), np.full(len(j), cout, np.int32),
            flat, nz.astype(np.int64))


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
        (NaN included) as `bad`, with `ok` False, so the caller can refuse the input."""
        rows, cols = flat.shape
        ptr = np.zeros(rows + 1, np.int64)
        for r in range(rows):
            c = 0
            for j in range(cols):
                x = flat[r, j]
                if x != 0:
                    if x != 1:
                        return ptr, np.zeros(0, np.int32), False, x
                    c += 1
            ptr[r + 1] = ptr[r] + c
        idx = np.empty(ptr[rows], np.int32)
        for r in range(rows):
            e = ptr[r]
            for j in range(cols):
                if flat[r, j] != 0:
                    idx[e] = j
                    e += 1
        return ptr, idx, True, flat[0, 0]

    # No numba parallel layer on purpose: OpenMP/TBB share or fight torch's thread pool
    # (measured: torch ops 20x slower after a parallel numba call on a 2-core box). Instead
    # the kernel releases the GIL and `run_events` runs slices of the batch in plain threads.
    @njit(cache=True, nogil=True)
    def _kernel(in_ptr, in_idx, T, steps, pop_off, pop_n, alpha, th, off, vreset, may_sat,
                alpha_one, subtract, fma, offset_first, pr_pre, pr_delay, pr_macs, pr_ptr0,
                pr_run0, pr_w0, pr_nz0, run_ptr, run_post, run_w, run_len, w_cat, nz_cat,
                by_post_ptr, by_post, R, rec_off, rec_s, rec_v, cnt, sat, acc_limit):
        B = cnt.shape[0]
        P = pop_n.shape[0]
        N = alpha.shape[0]
        lim = np.float32(acc_limit)
        for b in range(B):
            v = np.zeros(N, np.float32)
            cur = np.zeros(N, np.float32)
            fired = np.zeros(N, np.bool_)
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
                    cur[o:o + n] = 0.0
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
                        p0, r0, w0, z0 = pr_ptr0[q], pr_run0[q], pr_w0[q], pr_nz0[q]
                        ev = 0
                        for a in range(nsp):
                            j = ring[s2, po + a]
                            for r in range(run_ptr[p0 + j], run_ptr[p0 + j + 1]):
                                ps = o + run_post[r0 + r]
                                ws = w0 + run_w[r0 + r]
                                L = run_len[r0 + r]
                                c0 = 0
                                while c0 + 8 <= L:  # fixed-width blocks: SIMD adds
                                    dst = cur[ps + c0:ps + c0 + 8]
                                    src = w_cat[ws + c0:ws + c0 + 8]
                                    for c in range(8):
                                        dst[c] += src[c]
                                    c0 += 8
                                for c in range(c0, L):
                                    cur[ps + c] += w_cat[ws + c]
                            ev += nz_cat[z0 + j]
                        cnt[b, t, k, SYN] += ev
                        cnt[b, t, k, PKT] += nsp
                        cnt[b, t, k, MAC] += pr_macs[q]
                    if may_sat[k]:  # saturate, never wrap (skipped when sums cannot reach)
                        for i in range(o, o + n):
                            x = cur[i]
                            if x > lim or x < -lim:
                                cur[i] = lim if x > 0 else -lim
                                sat[b] += 1
                    # The neuron update: one fused loop per case, so it vectorizes; the same
                    # float32 operations in the same order as emulate.lif_step (alpha = 1
                    # multiplies exactly). Read-outs have threshold +inf: they never fire.
                    p1, p2 = (off, cur) if offset_first else (cur, off)
                    if fma:
                        for i in range(o, o + n):
                            x = np.float32(np.float64(alpha[i]) * np.float64(v[i])
                                           + np.float64(p1[i])) + p2[i]
                            f = x > th[i]
                            fired[i] = f
                            if f:
                                x = x - th[i] if subtract else vreset[i]
                            v[i] = x
                    elif subtract:
                        for i in range(o, o + n):
                            x = alpha[i] * v[i] + p1[i] + p2[i]
                            f = x > th[i]
                            fired[i] = f
                            v[i] = x - th[i] if f else x
                    else:
                        for i in range(o, o + n):
                            x = alpha[i] * v[i] + p1[i] + p2[i]
                            f = x > th[i]
                            fired[i] = f
                            v[i] = vreset[i] if f else x
                    ns = 0
                    for i in range(n):
                        if fired[o + i]:
                            ring[slot, o + ns] = i
                            ns += 1
                    ring_n[slot, k] = ns
                    cnt[b, t, k, SPK] = ns
                    ro = rec_off[k]
                    if ro >= 0:
                        for i in range(n):
                            rec_v[b, t, ro + i] = v[o + i]
                            if fired[o + i]:
                                rec_s[b, t, ro + i] = 1


def _prepare(program: Program) -> dict:
    """Everything the kernel needs that depends on the program only (built once per program:
    a closed-loop task emulates the same program thousands of times)."""
    names = list(program.populations)
    pops = [program.populations[n] for n in names]
    perms = [_perm(p.shape) for p in pops]
    index = {n: k for k, n in enumerate(names)}
    sizes = np.array([p.size for p in pops], dtype=np.int64)
    pop_off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def cat(key: str, default: float) -> np.ndarray:
        return np.concatenate([np.asarray(p.params.get(key, np.full(p.size, default)),
                                          dtype=np.float32).reshape(p.size)[pm]
                               for p, pm in zip(pops, perms, strict=True)])

    alpha, th, off, vr = cat("alpha", 1.0), cat("threshold", np.inf), cat("i_offset", 0.0), \
        cat("v_reset", 0.0)
    th[np.repeat([p.record_only for p in pops], sizes)] = np.inf  # read-outs never fire
    may_sat = np.zeros(len(pops), dtype=np.bool_)
    bounds = np.zeros(len(pops))
    for p in program.projections:
        a = np.abs(np.asarray(p.weight, dtype=np.float64))
        per_post = a.sum(1).max() if p.kind == "dense" else \
            a.reshape(a.shape[0], -1).sum(1).max() * (p.conv.get("pool") or 1) ** 2
        bounds[index[p.post]] += per_post if a.size else 0.0
    may_sat[:] = bounds > ACC_LIMIT
    alpha_one = np.array([bool(np.all(np.asarray(p.params.get("alpha", 1.0)) == 1))
                          for p in pops])
    projs = program.projections
    tables = [fanout_runs(p, program.populations[p.pre].shape, program.populations[p.post].shape)
              for p in projs]

    def joined(i: int, dtype) -> tuple[np.ndarray, np.ndarray]:
        parts = [t[i] for t in tables]
        starts = np.cumsum([0] + [len(a) for a in parts])[:-1].astype(np.int64)
        return (np.concatenate(parts).astype(dtype) if parts else np.zeros(1, dtype)), starts

    run_ptr, pr_ptr0 = joined(0, np.int64)
    run_post, pr_run0 = joined(1, np.int32)
    run_w, _ = joined(2, np.int64)
    run_len, _ = joined(3, np.int32)
    w_cat, pr_w0 = joined(4, np.float32)
    nz_cat, pr_nz0 = joined(5, np.int64)
    pr_pre = np.array([index[p.pre] for p in projs], dtype=np.int64)
    pr_delay = np.array([p.delay for p in projs], dtype=np.int64)
    pr_macs = np.array([program.populations[p.post].size * int(np.prod(p.weight.shape[1:]))
                        if p.kind == "conv" else 0 for p in projs], dtype=np.float64)
    posts = np.array([index[p.post] for p in projs], dtype=np.int64)
    by_post = np.argsort(posts, kind="stable").astype(np.int64)
    by_post_ptr = np.zeros(len(pops) + 1, dtype=np.int64)
    np.cumsum(np.bincount(posts, minlength=len(pops)), out=by_post_ptr[1:])
    R = int(max([p.delay for p in projs], default=1)) + 1
    return dict(names=names, pops=pops, perms=perms, index=index, sizes=sizes,
                pop_off=pop_off, alpha=alpha, th=th, off=off, vr=vr, may_sat=may_sat,
                alpha_one=alpha_one, pr_pre=pr_pre, pr_delay=pr_delay, pr_macs=pr_macs,
                pr_ptr0=pr_ptr0, pr_run0=pr_run0, pr_w0=pr_w0, pr_nz0=pr_nz0, run_ptr=run_ptr,
                run_post=run_post, run_w=run_w, run_len=run_len, w_cat=w_cat, nz_cat=nz_cat,
                by_post_ptr=by_post_ptr, by_post=by_post, R=R,
                in_perm_back=np.argsort(perms[0]))


def _cached_prepare(program: Program) -> dict:
    """`_prepare`, reused while the program is unchanged (see `emulate.fingerprint`)."""
    key = fingerprint(program)
    cached = getattr(program, "_events_prep", None)
    if cached is None or cached[0] != key:
        cached = (key, _prepare(program))
        program._events_prep = cached
    return cached[1]


def run_events(program: Program, xb: torch.Tensor, steps: int, rec: list[str]) -> Run:
    """Emulate with the event-driven kernel; same Run as `emulate.emulate`."""
    cfg = program.config
    P = _cached_prepare(program)
    names, index, sizes, perms = P["names"], P["index"], P["sizes"], P["perms"]
    pops = P["pops"]
    rec_off = np.full(len(pops), -1, dtype=np.int64)
    o = 0
    for r in rec:
        rec_off[index[r]] = o
        o += program.populations[r].size
    B, T = int(xb.shape[0]), int(xb.shape[1])
    flat = np.ascontiguousarray(xb.reshape(B * T, -1).numpy())
    rec_s = np.zeros((B, steps, o), dtype=np.uint8)
    rec_v = np.zeros((B, steps, o), dtype=np.float32)
    cnt = np.zeros((B, steps, len(pops), 4), dtype=np.float64)
    sat = np.zeros(B, dtype=np.int64)

    def run_slice(b0: int, b1: int) -> bool:
        """Samples b0..b1-1: their own input CSR, and views of the shared outputs."""
        in_ptr, cols, ok, _ = _spike_csr(flat[b0 * T:b1 * T])
        if not ok:
            return False
        in_idx = P["in_perm_back"][cols].astype(np.int32)  # NIR index -> engine order
        _kernel(in_ptr, in_idx, T, steps, P["pop_off"], sizes, P["alpha"], P["th"], P["off"],
                P["vr"], P["may_sat"], P["alpha_one"], cfg.reset == "subtract", cfg.fma,
                cfg.add_order == "offset_first", P["pr_pre"], P["pr_delay"], P["pr_macs"],
                P["pr_ptr0"], P["pr_run0"], P["pr_w0"], P["pr_nz0"], P["run_ptr"],
                P["run_post"], P["run_w"], P["run_len"], P["w_cat"], P["nz_cat"],
                P["by_post_ptr"], P["by_post"], P["R"], rec_off, rec_s[b0:b1], rec_v[b0:b1],
                cnt[b0:b1], sat[b0:b1], ACC_LIMIT)
        return True

    # Samples are independent: split the batch over as many threads as torch may use (the
    # kernel holds no GIL), so the emulator and torch baselines get the same cores.
    workers = max(1, min(torch.get_num_threads(), B))
    bounds = np.linspace(0, B, workers + 1).astype(int)
    if workers == 1:
        oks = [run_slice(0, B)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            oks = list(pool.map(run_slice, bounds[:-1], bounds[1:]))
    if not all(oks):
        _check_spikes(xb)  # raises the InputError naming the value
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
        back = np.argsort(perms[k])  # NIR index -> engine order
        out_s[r] = torch.from_numpy(rec_s[:, :, a:a + n][:, :, back].astype(np.float32)
                                    ).reshape(B, steps, *shape)
        if r != program.input:
            vs = np.asarray(program.populations[r].v_scale, dtype=np.float32)
            out_v[r] = torch.from_numpy(rec_v[:, :, a:a + n][:, :, back] / vs
                                        ).reshape(B, steps, *shape)
    return Run(out_s, out_v, counters, steps, int(sat.sum()))
