"""Bit-exact emulator of a compiled SpiNNaker2 program (section 3 of the target doc).

One chip step of a population, float32 state and integer synaptic sums:

    I = sum over incoming projections of W_int @ S_pre[t - delay]      (delay >= 1)
    v = float32(alpha) * v + I + i_offset      (two roundings; FMA and add order: options)
    s = v > threshold                          (strict)
    v = v - threshold (subtract) | v_reset (zero), where s;  v recorded after the reset

`lif_curr_exp`: excitatory (positive weights) and inhibitory (negative) currents decay with
`syn_alpha`; by default they are updated first and v integrates their sum this step.

Speed: a projection is linear and needs only *earlier* spikes, so a block of `chunk` steps is
evaluated population by population: every projection is one batched op over (steps x batch)
frames, and the neuron update is a short in-place scan over time. This is exact. Projections
that go back (recurrence) limit the block to their delay (1 step: plain stepping).
`lif_step` / `cuba_step` are the pure one-step functions the scan is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from spinnq.errors import InputError
from spinnq.graph.simulate import as_batch
from spinnq.s2 import chip
from spinnq.s2.compile import S2Config, recurrent
from spinnq.s2.program import COUNTERS, Population, Program, Projection, Run

Tensor = torch.Tensor
ACC_LIMIT = float(2 ** (chip.ACCUMULATOR_BITS - 1) - 1)  # synaptic sums saturate here
CUBA_MODELS = ("lif_curr_exp_no_delay", "lif_curr_exp")


# ------------------------------------------------------------------- pure step functions
class ChipParams(NamedTuple):
    """float32 tensors (N,) of one population; None where a term is absent."""

    alpha: Tensor
    threshold: Tensor
    i_offset: Tensor
    v_reset: Tensor
    subtract: bool
    fma: bool = False
    offset_first: bool = False
    syn_alpha: Tensor | None = None
    bias_exc: Tensor | None = None
    bias_inh: Tensor | None = None
    current_first: bool = True


def _membrane(v: Tensor, i: Tensor, p: ChipParams) -> Tensor:
    """v' = alpha*v + I + i_offset with the configured roundings (pure)."""
    a, b = (p.i_offset, i) if p.offset_first else (i, p.i_offset)
    if p.fma:  # one rounding for alpha*v + a: the product is exact in float64
        v = (p.alpha.double() * v.double() + a.double()).float()
    else:
        v = p.alpha * v + a
    return v + b


def _fire(v: Tensor, p: ChipParams) -> tuple[Tensor, Tensor]:
    s = v > p.threshold
    v = torch.where(s, v - p.threshold, v) if p.subtract else torch.where(s, p.v_reset, v)
    return s, v


def lif_step(i: Tensor, state: tuple[Tensor], p: ChipParams) -> tuple[Tensor, tuple[Tensor]]:
    """One chip step of lif_no_delay / lif_conv2d / lif: (spikes, (v,))."""
    s, v = _fire(_membrane(state[0], i, p), p)
    return s, (v,)


def cuba_step(i: tuple[Tensor, Tensor], state: tuple[Tensor, Tensor, Tensor],
              p: ChipParams) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """One chip step of lif_curr_exp: i = (excitatory, inhibitory) input; state (v, ie, ii)."""
    v, ie, ii = state
    new_e = p.syn_alpha * ie + i[0] + p.bias_exc
    new_i = p.syn_alpha * ii + i[1] + p.bias_inh
    cur = new_e + new_i if p.current_first else ie + ii
    s, v = _fire(_membrane(v, cur, p), p)
    return s, (v, new_e, new_i)


# ---------------------------------------------------------------------- fast in-place scans
def _scan_lif(I: tuple[Tensor, ...], st: list[Tensor], p: ChipParams, s_out: Tensor,
              v_out: Tensor | None, spiking: bool) -> None:
    """The hot loop: same arithmetic as `lif_step`, minimal ops, in place."""
    (inp,) = I
    v = st[0]
    alpha = None if bool(torch.all(p.alpha == 1)) else p.alpha
    off = None if not bool(torch.any(p.i_offset != 0)) else p.i_offset
    th = p.threshold
    vr_zero = not bool(torch.any(p.v_reset != 0))
    for t in range(inp.shape[0]):
        it = inp[t]
        if p.fma:
            v.copy_(_membrane(v, it, p))
        else:
            if alpha is not None:
                v.mul_(alpha)
            if off is None:
                v.add_(it)
            elif p.offset_first:
                v.add_(off).add_(it)
            else:
                v.add_(it).add_(off)
        if spiking:
            s = s_out[t]
            torch.gt(v, th, out=s)
            if p.subtract:
                v.sub_(th * s)
            elif vr_zero:
                v.masked_fill_(s, 0.0)
            else:
                v.copy_(torch.where(s, p.v_reset, v))
        if v_out is not None:
            v_out[t].copy_(v)


def _scan_cuba(I: tuple[Tensor, ...], st: list[Tensor], p: ChipParams, s_out: Tensor,
               v_out: Tensor | None, spiking: bool) -> None:
    state = tuple(st)
    p = p if spiking else p._replace(threshold=torch.full_like(p.threshold, math.inf))
    for t in range(I[0].shape[0]):
        s, state = cuba_step((I[0][t], I[1][t]), state, p)
        s_out[t].copy_(s)
        if v_out is not None:
            v_out[t].copy_(state[0])
    for dst, src in zip(st, state, strict=True):
        dst.copy_(src)


SCANS = {"lif_no_delay": _scan_lif, "lif_conv2d": _scan_lif, "lif": _scan_lif,
         "lif_curr_exp_no_delay": _scan_cuba, "lif_curr_exp": _scan_cuba}


def chip_params(pop: Population, cfg: S2Config) -> ChipParams:
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in pop.params.items()}
    extra = {}
    if "syn_alpha" in t:
        b = t["i_offset_syn"]
        extra = {"syn_alpha": t["syn_alpha"], "bias_exc": b.clamp(min=0),
                 "bias_inh": b.clamp(max=0), "current_first": cfg.cuba_order == "current_first"}
    return ChipParams(t["alpha"], t["threshold"], t["i_offset"], t["v_reset"],
                      cfg.reset == "subtract", cfg.fma, cfg.add_order == "offset_first", **extra)


# ------------------------------------------------------------------------ projections
@dataclass
class _Op:
    """A projection ready to run: integer weights as float32 (exact), and its counters."""

    proj: Projection
    pre_shape: tuple[int, ...]
    post_size: int
    weights: list[Tensor]  # [w] or [w_exc, w_inh] for lif_curr_exp
    fanout: Tensor = field(default=None)  # (pre,) synapses per pre neuron
    macs_per_frame: int = 0
    bound: float = 0.0  # largest |sum| a step can produce

    def apply(self, s: Tensor, w: Tensor) -> Tensor:
        """s (M, pre) float32 -> (M, post)."""
        p = self.proj
        if p.kind == "dense":
            return F.linear(s, w)
        c = p.conv
        x = s.reshape(s.shape[0], *self.pre_shape)
        if c.get("pool"):
            k = c["pool"]
            x = F.avg_pool2d(x, k, k, divisor_override=1)
        y = F.conv2d(x, w, None, c["stride"], c["padding"], c["dilation"], c["groups"])
        return y.reshape(s.shape[0], -1)


def _make_op(proj: Projection, program: Program) -> _Op:
    pre = program.populations[proj.pre]
    post = program.populations[proj.post]
    w = torch.as_tensor(proj.weight, dtype=torch.float32)
    ws = [w.clamp(min=0), w.clamp(max=0)] if post.model in CUBA_MODELS else [w]
    op = _Op(proj, tuple(pre.shape), post.size, ws)
    mask = (w != 0).float()
    x = torch.zeros((1, pre.size), requires_grad=True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(op.apply(x, mask).sum(), x)
    op.fanout = g.reshape(-1).round()
    absw = w.abs()
    k2 = proj.conv.get("pool", 0) ** 2 or 1
    if proj.kind == "dense":
        op.bound = float(absw.sum(1).max()) if absw.numel() else 0.0
    else:
        op.bound = float(absw.flatten(1).sum(1).max()) * k2 if absw.numel() else 0.0
    if proj.kind == "conv":
        op.macs_per_frame = post.size * int(np.prod(proj.weight.shape[1:]))
    return op


# ---------------------------------------------------------------------------- running
def _as_spikes(x, shape: tuple[int, ...]) -> Tensor:
    xb = as_batch(x, shape)
    bad = (xb != 0) & (xb != 1)
    if bool(bad.any()):
        v = xb[bad].flatten()[0].item()
        raise InputError(f"the chip's input population ('spike_list') emits spikes: input "
                         f"values must be 0 or 1, found {v:g}")
    return xb


@torch.no_grad()
def emulate(program: Program, x, steps: int | None = None,
            record: list[str] | tuple[str, ...] | None = None) -> Run:
    """Run `program` on spikes x ((T, *in) or (B, T, *in)); see the module docstring.

    Runs `T + depth` steps by default: step t of x leaves the source at step t and reaches
    the first layer at t + 1. Records spikes and voltages (NIR units) of `record`
    (default: the output populations).
    """
    cfg: S2Config = program.config or S2Config()
    pops = program.populations
    xb = _as_spikes(x, pops[program.input].shape)
    B, T = int(xb.shape[0]), int(xb.shape[1])
    steps = T + program.depth if steps is None else int(steps)
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    rec = list(dict.fromkeys(record)) if record else list(program.outputs)
    for r in rec:
        if r not in pops:
            raise InputError(f"cannot record '{r}': not a population (populations: "
                             f"{', '.join(pops)})")
    flat = {n: p.size for n, p in pops.items()}
    spikes = {n: torch.zeros((steps, B, flat[n]), dtype=torch.bool) for n in pops}
    n_in = min(T, steps)
    spikes[program.input][:n_in] = xb[:, :n_in].transpose(0, 1).reshape(n_in, B, -1) > 0
    v_rec = {n: torch.zeros((steps, B, flat[n])) for n in rec if n != program.input}
    counters = {n: {c: torch.zeros(steps, dtype=torch.float64) for c in COUNTERS} for n in pops}
    ops: dict[str, list[_Op]] = {n: [] for n in pops}
    for pr in program.projections:
        ops[pr.post].append(_make_op(pr, program))
    params = {n: chip_params(p, cfg) for n, p in pops.items() if n != program.input}
    state = {n: [torch.zeros(B, flat[n]) for _ in range(3 if p.model in CUBA_MODELS else 1)]
             for n, p in pops.items() if n != program.input}
    back = recurrent(program)
    block = min([cfg.chunk] + [p.delay for p in back])
    saturations = 0
    for t0 in range(0, steps, block):
        t1 = min(t0 + block, steps)
        n = t1 - t0
        for name, pop in pops.items():
            if name == program.input:
                continue
            cuba = pop.model in CUBA_MODELS
            I = [torch.zeros((n, B, flat[name])) for _ in range(2 if cuba else 1)]
            bound = 0.0
            cnt = counters[name]
            for op in ops[name]:
                d = op.proj.delay
                a0, a1 = max(t0 - d, 0), max(t1 - d, 0)
                m = a1 - a0
                if m == 0:
                    continue
                src = spikes[op.proj.pre][a0:a1].reshape(m * B, -1).float()
                for acc, w in zip(I, op.weights, strict=True):
                    acc[n - m:] += op.apply(src, w).view(m, B, -1)
                bound += op.bound
                per_step = src.view(m, B, -1)
                cnt["packets_in"][t1 - m:t1] += per_step.sum((1, 2)).double() / B
                cnt["syn_events"][t1 - m:t1] += (per_step @ op.fanout).sum(1).double() / B
                if op.macs_per_frame:
                    active = per_step.any(2).sum(1).double()
                    cnt["macs"][t1 - m:t1] += active * op.macs_per_frame / B
            if bound > ACC_LIMIT:
                for acc in I:
                    over = acc.abs() > ACC_LIMIT
                    saturations += int(over.sum())
                    acc.clamp_(-ACC_LIMIT, ACC_LIMIT)
            s_out = spikes[name][t0:t1]
            v_out = v_rec[name][t0:t1] if name in v_rec else None
            SCANS[pop.model](tuple(I), state[name], params[name], s_out, v_out,
                             not pop.record_only)
            cnt["neuron_updates"][t0:t1] += flat[name]
            cnt["spikes"][t0:t1] += s_out.sum((1, 2)).double() / B
    counters[program.input]["spikes"] += spikes[program.input].sum((1, 2)).double() / B
    out_s, out_v = {}, {}
    for r in rec:
        shape = pops[r].shape
        out_s[r] = spikes[r].transpose(0, 1).reshape(B, steps, *shape).float()
        if r in v_rec:
            vs = torch.as_tensor(np.asarray(pops[r].v_scale, dtype=np.float32))
            out_v[r] = (v_rec[r] / vs).transpose(0, 1).reshape(B, steps, *shape).contiguous()
    return Run(out_s, out_v, {n: {c: a.numpy() for c, a in d.items()}
                              for n, d in counters.items()}, steps, saturations)


def deploy(graph, x, cfg: S2Config = S2Config(), steps: int | None = None,
           record: list[str] | None = None):
    """Compile, place and emulate in one call: (Program, Placement, Run)."""
    from spinnq.s2.compile import compile as compile_graph
    from spinnq.s2.place import place

    program = compile_graph(graph, cfg)
    placement = place(program, cfg)
    return program, placement, emulate(program, x, steps, record)
