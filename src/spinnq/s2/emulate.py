"""Bit-exact emulator of a compiled SpiNNaker2 program (section 3 of docs/spinnaker2-target.md).

One chip step of a population, float32 state and integer synaptic sums:

    I = sum over incoming projections of W_int @ S_pre[t - delay]      (delay >= 1)
    v = float32(alpha) * v + I + i_offset      (two roundings; FMA and add order: options)
    s = v > threshold                          (strict)
    v = v - threshold (subtract) | v_reset (zero), where s;  v recorded after the reset

`lif_curr_exp`: excitatory (positive weights) and inhibitory (negative) currents decay with
`syn_alpha`; by default they are updated first and v integrates their sum this step.

Speed: a projection is linear and needs only *earlier* spikes, so a block of `chunk` steps is
evaluated population by population: every projection is one batched op over (steps x batch)
frames, and the neuron update is a short scan over time. This is exact. Projections that go
back (recurrence) limit the block to their delay (1 step: plain stepping).
The neuron update itself is `spinnq.s2.step` (written once, for every engine and fine-tuning);
`lif_step` / `cuba_step` are it on a population's `ChipParams`, the scans run it over a block.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.compile import S2Config, recurrent
from spinnq.s2.inputs import SpikeInput, check_spikes, spike_batch
from spinnq.s2.program import (
    COUNTERS,
    ChipArithmetic,
    Population,
    Program,
    Projection,
    Run,
    fingerprint,
    sum_bound,
)
from spinnq.s2.step import TORCH as STEP

Tensor = torch.Tensor


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


def membrane(v: Tensor, i: Tensor, p: ChipParams) -> Tensor:
    """v' = alpha*v + I + i_offset with the configured roundings (pure; `step.membrane`)."""
    return STEP.membrane(v, i, p.alpha, p.i_offset, p.fma, p.offset_first)


def lif_step(i: Tensor, state: tuple[Tensor], p: ChipParams) -> tuple[Tensor, tuple[Tensor]]:
    """One chip step of lif_no_delay / lif_conv2d / lif: (spikes, (v,))."""
    s, v = STEP.neuron(state[0], i, p.alpha, p.i_offset, p.threshold, p.v_reset, p.subtract,
                       p.fma, p.offset_first)
    return s, (v,)


def cuba_step(i: tuple[Tensor, Tensor], state: tuple[Tensor, Tensor, Tensor],
              p: ChipParams) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """One chip step of lif_curr_exp: i = (excitatory, inhibitory) input; state (v, ie, ii)."""
    v, ie, ii = state
    cur, new_e, new_i = STEP.currents(ie, ii, i[0], i[1], p.syn_alpha, p.bias_exc, p.bias_inh,
                                      p.current_first)
    s, v = STEP.neuron(v, cur, p.alpha, p.i_offset, p.threshold, p.v_reset, p.subtract, p.fma,
                       p.offset_first)
    return s, (v, new_e, new_i)


# ---------------------------------------------------------------------- fast in-place scans
class ScanPlan(NamedTuple):
    """What a scan reads off a population's parameters once (per run, not per block)."""

    alpha: Tensor | None  # None: all 1 (IF), no multiply
    i_offset: Tensor | None  # None: all 0, the membrane is `step.integrate`
    float_spikes: bool  # fire into the float history and reset on 0/1 floats
    v_reset: Tensor | float  # what the float reset gets (the number 0 for all zeros)


def scan_plan(p: ChipParams, spiking: bool) -> ScanPlan:
    """The float select (`spinnq.s2.step`) gives the bool one's floats where its operands
    are finite: the threshold and v_reset are, or the scan uses bool spikes. A v_reset of
    zeros goes as the number 0 (the select then has one term fewer)."""
    alpha = None if bool(torch.all(p.alpha == 1)) else p.alpha
    off = p.i_offset if bool(torch.any(p.i_offset != 0)) else None
    finite = spiking and bool(torch.isfinite(p.threshold).all())
    if p.subtract:
        return ScanPlan(alpha, off, finite, p.v_reset)
    zero = not bool(torch.any(p.v_reset != 0))
    return ScanPlan(alpha, off, finite and bool(torch.isfinite(p.v_reset).all()),
                    0.0 if zero else p.v_reset)


def _scan(step_block: Callable[[bool], None], st: list[Tensor], fast: bool) -> None:
    """Run a block with float spikes (`fast`), and again with bool spikes from the state it
    started with if v ends with a NaN: an infinite v met the float select (`spinnq.s2.step`;
    a NaN stays in v to the end of the block, so its sum is NaN). Exact either way."""
    start = [x.clone() for x in st] if fast else None
    step_block(fast)
    if fast and math.isnan(float(st[0].sum())):
        for x, x0 in zip(st, start, strict=True):
            x.copy_(x0)
        step_block(False)


def scan_lif(I: tuple[Tensor, ...], st: list[Tensor], p: ChipParams, s_out: Tensor,
             v_out: Tensor | None, spiking: bool, plan: ScanPlan | None = None) -> None:
    """The hot loop: `lif_step` over the block, the state updated in place and the spikes
    written as float (0/1) straight into the population's history: the step's functions
    with `out=` (no tensor allocated per step). Without offsets the membrane is
    `step.integrate` (no i_offset term to add), without a decay (alpha 1) no multiply."""
    (inp,) = I
    v = st[0]
    alpha, off, fast, v_reset = plan or scan_plan(p, spiking)
    integrate, membrane, fire, reset = STEP.integrate, STEP.membrane, STEP.fire, STEP.reset
    th, fma, subtract = p.threshold, p.fma, p.subtract

    def block(fast: bool) -> None:
        vr = v_reset if fast else p.v_reset
        for t in range(inp.shape[0]):
            if off is None:
                integrate(v, inp[t], alpha, fma, v)
            else:
                membrane(v, inp[t], alpha, off, fma, p.offset_first, v)
            if spiking:
                if fast:
                    reset(v, fire(v, th, s_out[t]), th, vr, subtract, v)
                else:
                    s = fire(v, th)
                    reset(v, s, th, vr, subtract, v)
                    s_out[t].copy_(s)
            if v_out is not None:
                v_out[t].copy_(v)

    _scan(block, st, fast)


def scan_cuba(I: tuple[Tensor, ...], st: list[Tensor], p: ChipParams, s_out: Tensor,
              v_out: Tensor | None, spiking: bool, plan: ScanPlan | None = None) -> None:
    """`cuba_step` over the block, in place like `scan_lif` (a read-out never fires: its
    membrane only); the currents' sum goes into one buffer reused every step."""
    v, ie, ii = st
    _, _, fast, v_reset = plan or scan_plan(p, spiking)
    cur = torch.empty_like(v)

    def block(fast: bool) -> None:
        for t in range(I[0].shape[0]):
            STEP.currents(ie, ii, I[0][t], I[1][t], p.syn_alpha, p.bias_exc, p.bias_inh,
                          p.current_first, out=(cur, ie, ii))
            if spiking:
                s = STEP.neuron(v, cur, p.alpha, p.i_offset, p.threshold,
                                v_reset if fast else p.v_reset, p.subtract, p.fma,
                                p.offset_first, out=v, s_out=s_out[t] if fast else None)[0]
                if not fast:
                    s_out[t].copy_(s)
            else:
                STEP.membrane(v, cur, p.alpha, p.i_offset, p.fma, p.offset_first, out=v)
            if v_out is not None:
                v_out[t].copy_(v)

    _scan(block, st, fast)


def scan_for(model: str):
    """The torch engine's scan for a chip model (`chip.MODELS`)."""
    return scan_cuba if chip.MODELS[model].current_based else scan_lif


def chip_params(pop: Population, cfg: ChipArithmetic | S2Config) -> ChipParams:
    """A population's float32 parameters and the arithmetic options (`ChipArithmetic`, or
    an `S2Config`, which carries the same fields)."""
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


def make_op(proj: Projection, program: Program) -> _Op:
    pre = program.populations[proj.pre]
    post = program.populations[proj.post]
    w = torch.as_tensor(proj.weight, dtype=torch.float32)
    ws = [w.clamp(min=0), w.clamp(max=0)] if post.model in chip.CUBA_MODELS else [w]
    op = _Op(proj, tuple(pre.shape), ws)
    mask = (w != 0).float()
    x = torch.zeros((1, pre.size), requires_grad=True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(op.apply(x, mask).sum(), x)
    op.fanout = g.reshape(-1).round()
    op.bound = sum_bound(proj)
    if proj.kind == "conv":
        op.macs_per_frame = post.size * int(np.prod(proj.weight.shape[1:]))
    return op


# Runnable ops of recent programs, owned by this engine (the Program stays plain data),
# keyed by content so in-place edits are noticed.
_OPS: OrderedDict[tuple, dict[str, list[_Op]]] = OrderedDict()
OPS_CACHE_SIZE = 4


def _cached_ops(program: Program) -> dict[str, list[_Op]]:
    """The projections as runnable ops, built once per (unchanged) program."""
    key = fingerprint(program)
    ops = _OPS.get(key)
    if ops is None:
        ops = {n: [] for n in program.populations}
        for pr in program.projections:
            ops[pr.post].append(make_op(pr, program))
        _OPS[key] = ops
        while len(_OPS) > OPS_CACHE_SIZE:
            _OPS.popitem(last=False)
    _OPS.move_to_end(key)
    return ops


# ---------------------------------------------------------------------------- running
def _shifted(a: Tensor, d: int) -> Tensor:
    """a delayed by d steps along dim 0 (zeros first)."""
    out = torch.zeros_like(a)
    if d < a.shape[0]:
        out[d:] = a[:a.shape[0] - d]
    return out


@torch.no_grad()
def emulate(program: Program, x, steps: int | None = None,
            record: list[str] | tuple[str, ...] | None = None,
            on_step: Callable[[int, int], None] | None = None) -> Run:
    """Run `program` on spikes x ((T, *in) or (B, T, *in), or `prepare_input`'s); see the
    module docstring.

    Runs `T + depth` steps by default: step t of x leaves the source at step t and reaches
    the first layer at t + 1. Records spikes and voltages (NIR units) of `record`
    (default: the output populations). `on_step(done, total)`, if given, hears how many of
    the B x steps sample-steps are done while it runs (for a progress bar).
    """
    run_cfg = program.engine
    pops = program.populations
    shape = tuple(pops[program.input].shape)
    if isinstance(x, SpikeInput):  # checked and decoded once (`prepare_input`)
        if x.shape != shape:
            raise InputError(f"the prepared input is for an input of shape {x.shape}, the "
                             f"program's input population has shape {shape}")
        decoded, xb = x, x.x
    else:
        decoded, xb = None, spike_batch(x, shape)  # uint8, the caller's memory where it can
    steps = int(xb.shape[1]) + program.depth if steps is None else int(steps)
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    rec = list(dict.fromkeys(record)) if record else list(program.outputs)
    for r in rec:
        if r not in pops:
            raise InputError(f"cannot record '{r}': not a population (populations: "
                             f"{', '.join(pops)})")
    if run_cfg.engine != "torch":
        from spinnq.s2 import events

        if events.available() and events.supported(program):
            return events.run_events(program, xb, steps, rec, on_step, decoded)
        if run_cfg.engine == "events":
            raise InputError("engine 'events' needs numba (pip install numba) and a program "
                             "without lif_curr_exp populations; use engine 'torch'")
    return _TorchRun(program, xb, steps, rec).run(on_step)


def prepare_input(x, shape: tuple[int, ...]) -> SpikeInput:
    """x ((T, *shape) or (B, T, *shape) 0/1 spikes) checked once and, where the event
    engine runs, its spikes listed per step once: `emulate(program, prepared)` of any number
    of programs whose input population has `shape` then skips that per-run work (calibration
    runs every candidate on the same samples). The runs are those of `emulate(program, x)`."""
    from spinnq.s2 import events

    shape = tuple(int(n) for n in shape)
    xb = spike_batch(x, shape)
    if not events.available():
        return SpikeInput(xb, shape)
    return events.decode_input(xb, shape)


class _TorchRun:
    """The torch engine's state for one call: spike history per population (its last D
    steps, D = its longest outgoing delay, and the current block, as float32 0/1 ready for
    the projections' batched ops), neuron state, recordings and counts."""

    def __init__(self, program: Program, xb: np.ndarray, steps: int, rec: list):
        pops = program.populations
        self.program, self.xb, self.steps, self.rec = program, xb, steps, rec
        self.B, self.T = int(xb.shape[0]), int(xb.shape[1])
        B = self.B
        self.flat = flat = {n: p.size for n, p in pops.items()}
        self.ops = _cached_ops(program)
        self.params = {n: chip_params(p, program.arithmetic) for n, p in pops.items()
                       if n != program.input}
        self.plans = {n: scan_plan(p, not pops[n].record_only) for n, p in self.params.items()}
        self.state = {n: [torch.zeros(B, flat[n])
                          for _ in range(3 if p.model in chip.CUBA_MODELS else 1)]
                      for n, p in pops.items() if n != program.input}
        self.block = min([program.engine.chunk, steps] + [p.delay for p in recurrent(program)])
        self.D = {n: max([p.delay for p in program.projections if p.pre == n], default=1)
                  for n in pops}
        self.hist = {n: torch.zeros((self.D[n] + self.block, B, flat[n])) for n in pops}
        self.counts = {n: torch.zeros((steps, B)) for n in pops}  # spikes per step and sample
        self.syn = {n: torch.zeros(steps, dtype=torch.float64) for n in pops}
        self.rec_s = {r: torch.zeros((steps, B, flat[r]), dtype=torch.bool) for r in rec}
        self.v_rec = {r: torch.zeros((steps, B, flat[r])) for r in rec if r != program.input}
        self.saturations = 0

    def run(self, on_step: Callable[[int, int], None] | None = None) -> Run:
        block = self.block
        for t0 in range(0, self.steps, block):
            t1 = min(t0 + block, self.steps)
            if on_step is not None:
                on_step(t0 * self.B, self.steps * self.B)
            for name, pop in self.program.populations.items():
                h, d_own = self.hist[name], self.D[name]
                if t0 > 0:  # keep the last D steps of the previous (full) block
                    h[:d_own] = h[block:block + d_own].clone()
                s_out = h[d_own:d_own + t1 - t0]
                if name == self.program.input:
                    self.source(s_out, t0, t1)
                else:
                    I = self.synaptic_input(name, pop, t0, t1)
                    v_out = self.v_rec[name][t0:t1] if name in self.v_rec else None
                    scan_for(pop.model)(tuple(I), self.state[name], self.params[name], s_out,
                                        v_out, not pop.record_only, self.plans[name])
                self.counts[name][t0:t1] = s_out.sum(2)
                if name in self.rec_s:
                    self.rec_s[name][t0:t1] = s_out > 0
        if on_step is not None:
            on_step(self.steps * self.B, self.steps * self.B)
        return Run(*self.recorded(), self.counters(), self.steps, self.saturations)

    def source(self, s_out: Tensor, t0: int, t1: int) -> None:
        """The input population's spikes of steps [t0, t1): the user's, then silence."""
        s_out.zero_()
        k = max(0, min(t1, self.T) - t0)
        if k:
            blk = np.array(self.xb[:, t0:t0 + k].reshape(self.B, k, -1).transpose(1, 0, 2))
            s_out[:k] = torch.from_numpy(blk)
            check_spikes(blk)

    def synaptic_input(self, name: str, pop: Population, t0: int, t1: int) -> list[Tensor]:
        """The integer synaptic sums into `name` for steps [t0, t1) (one per current for
        lif_curr_exp), saturated at the accumulator's range (counted, never wrapped)."""
        n, B = t1 - t0, self.B
        I: list[Tensor | None] = [None, None] if pop.model in chip.CUBA_MODELS else [None]
        bound = 0.0
        for op in self.ops[name]:
            d, dp = op.proj.delay, self.D[op.proj.pre]
            src = self.hist[op.proj.pre][dp - d:dp - d + n].reshape(n * B, -1)
            for i, w in enumerate(op.weights):
                y = op.apply(src, w).view(n, B, -1)
                I[i] = y if I[i] is None else I[i].add_(y)
            bound += op.bound
            self.syn[name][t0:t1] += (src @ op.fanout).view(n, B).sum(1).double()
        out = [torch.zeros((n, B, self.flat[name])) if a is None else a for a in I]
        if bound > chip.ACC_LIMIT:
            for acc in out:
                self.saturations += int((acc.abs() > chip.ACC_LIMIT).sum())
                acc.clamp_(-chip.ACC_LIMIT, chip.ACC_LIMIT)
        return out

    def counters(self) -> dict[str, dict[str, np.ndarray]]:
        """Activity per population and step, averaged over the batch (`COUNTERS`)."""
        B, steps, pops = self.B, self.steps, self.program.populations
        counters = {n: {c: torch.zeros(steps, dtype=torch.float64) for c in COUNTERS}
                    for n in pops}
        for name in pops:
            c = counters[name]
            c["spikes"] += self.counts[name].sum(1).double() / B
            c["syn_events"] += self.syn[name] / B
            if name != self.program.input:
                c["neuron_updates"] += self.flat[name]
            for op in self.ops[name]:
                pre = self.counts[op.proj.pre]
                c["packets_in"] += _shifted(pre.sum(1).double(), op.proj.delay) / B
                if op.macs_per_frame:
                    active = (pre > 0).sum(1).double()
                    c["macs"] += _shifted(active, op.proj.delay) * op.macs_per_frame / B
        return {n: {c: a.numpy() for c, a in d.items()} for n, d in counters.items()}

    def recorded(self) -> tuple[dict, dict]:
        """(spikes, voltages in NIR units) of the recorded populations, (B, steps, *shape)."""
        out_s, out_v = {}, {}
        B, steps = self.B, self.steps
        for r in self.rec:
            shape = self.program.populations[r].shape
            out_s[r] = self.rec_s[r].transpose(0, 1).reshape(B, steps, *shape).float()
            if r in self.v_rec:
                vs = torch.as_tensor(np.asarray(self.program.populations[r].v_scale,
                                                dtype=np.float32))
                out_v[r] = (self.v_rec[r] / vs).transpose(0, 1).reshape(
                    B, steps, *shape).contiguous()
        return out_s, out_v

def silent_outputs(program: Program, run: Run) -> list[str]:
    """The spiking output populations that never fired in `run` (read-outs, which never
    fire by design, are left out). A network run with another producer's parameter reading,
    timestep or weight scale often falls silent with no error: callers warn with these names.
    Uses the recorded spikes where present, else the activity counters."""
    silent = []
    for name in program.outputs:
        if program.populations[name].record_only:
            continue
        if name in run.spikes:
            fired = bool(run.spikes[name].any())
        elif name in run.counters:
            fired = bool(np.any(run.counters[name]["spikes"]))
        else:
            continue  # nothing recorded about it: no claim either way
        if not fired:
            silent.append(name)
    return silent
