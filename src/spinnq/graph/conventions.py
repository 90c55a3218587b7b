"""Neuron conventions: how NIR producers discretise the *same* NIR node in their own simulator.

A NIR file stores ODE parameters, not an update rule. snnTorch and Norse each export their
neurons as NIR LIF/CubaLIF/IF nodes, but their own simulators step them differently from
NIR's forward-Euler reading (spinnq's default, `convention="nir"`). To reproduce a
framework's spikes step for step, pick its convention (`SimConfig(convention=...)`,
`spinnq simulate|deploy|energy|export --convention ...`, or `spinnq.convention` in the
graph's metadata). Only the neuron nodes change (LIF, CubaLIF, IF, LI, CubaLI, I); weights,
convolutions, pooling and delays are the same in every convention. On the chip
(`S2Config(convention=...)`) the convention sets how the parameters are translated into chip
units; the chip keeps its own arithmetic (see `spinnq.s2.compile.NEURON_RULES` for what it
reproduces exactly).

nir (default) - the NIR ODEs, forward Euler, `a = dt/tau` (see `simulate.py`):
    I <- (1 - a_syn) I + a_syn w_in x          (CubaLIF: the current is updated first)
    v <- (1 - a) v + a (v_leak + r I);   z = v > v_th;   reset at once:
         v <- v_reset (--reset zero)  or  v <- v - v_th (--reset subtract)
    The recorded v is after the reset.

snntorch - snnTorch 1.0 `Leaky` / `Synaptic` / `RLeaky` / `RSynaptic` (reset_delay=True):
    * the reset is computed from the *previous* step's membrane: reset = v[t-1] > v_th, and
      applied at step t: subtract `v_th` from the new membrane (--reset subtract, snnTorch's
      default), or zero the old membrane before the decay (--reset zero);
    * the subtracted threshold is therefore *not* decayed by beta (NIR's immediate reset
      subtracts v_th before the next decay, i.e. effectively beta * v_th);
    * the recorded v is snnTorch's `mem`: not reset, it stays above v_th on spike steps;
    * beta = 1 - dt/tau, alpha = 1 - dt/tau_syn and the gains a*r, a_syn*w_in are formed
      in float64 and rounded once, so an exported graph (tau = dt/(1-beta), r = tau/dt,
      w_in = tau_syn/dt) gives gains of exactly 1.0, as in snnTorch's
      `mem = beta*mem + input`, `syn = alpha*syn + input`;
    * dt: snnTorch's exporter writes tau with dt = 1e-4 s: simulate with --dt 1e-4 (the
      default). The order "synaptic current first, then the membrane with the new current"
      is the same as NIR's.
    Not reproduced: `RLeaky`/`RSynaptic` with reset_mechanism="zero" zero the *whole* new
    membrane (input included) on the step after a spike; the NIR file does not say which
    class wrote it, so the `Leaky` rule above is used.

norse - Norse 1.1 `LIFBoxCell` (-> LIF), `LIFCell` (-> CubaLIF), `IAFCell` (-> IF),
`LIBoxCell` (-> LI):
    * CubaLIF: the input is a *current jump* `I <- I + w_in x` (no a_syn factor); the
      membrane integrates the jumped current, `v <- v + a ((v_leak - v) + r I)`; the
      current then decays, `I <- I - a_syn I`; so Norse's state holds the current *after*
      the decay (NIR's holds it before), and the same weights drive a Norse CubaLIF
      1/a_syn times harder than NIR's reading would;
    * LIF/LI: `v <- v + a ((r x + v_leak) - v)`, in Norse's float32 operation order;
    * IF: `v <- v + r x`, reset to v_reset;
    * dt: Norse's exporter and cells use dt = 1e-3 s by default: simulate with --dt 1e-3.
    Resets as in NIR (immediate; --reset zero is Norse's `reset_value`, subtract its
    `reset_subtract`); the recorded v is after the reset.

spikingjelly - SpikingJelly 2.0 `LIFNode` (-> LIF), `IFNode` (-> IF), `CUBALIFNode`
(-> CubaLIF), exported by `nir_exchange.export_to_nir(net, x, dt=1e-4)`:
    * IF/I: the exporter writes `r = 1/dt` (an ODE, dv/dt = r x): v <- v + dt r x;
    * spikes fire at v >= v_th (SpikingJelly's heaviside), not v > v_th;
    * LIF/CubaLIF otherwise as NIR's reading; hard reset to v_reset (its exporter refuses
      soft reset), so --reset zero (the default).

rockpool - Rockpool 3.1 `LIFTorch` (-> CubaLIF), `LIFNeuronTorch` (-> LIF), `ExpSynTorch`
(-> LI), exported by `rockpool.nn.modules.torch.nir.to_nir`:
    * decays exp(-dt/tau) formed in float32; input gain 1: r and w_in are ignored, as
      Rockpool's own importer ignores them (its exporter writes r = tau exp(-dt/tau) / dt);
    * LIFTorch: `I <- (I + x) beta`, then `v <- v alpha + I + v_leak`; LIFNeuronTorch:
      `v <- v alpha + x + v_leak`; ExpSynTorch: `v <- (v + x) alpha`;
    * spikes at v >= v_th, reset by subtraction (the convention's default), dt = 1 ms
      (Rockpool's default; the file does not record it);
    * LIFTorch emits up to 2^16 spikes per step unless `max_spikes_per_dt=1`: NIR edges and
      the chip carry one spike, so only max_spikes_per_dt=1 networks can agree.

Defaults a convention implies (`spinnq.graph.meta.CONVENTION_DEFAULTS`, below flags and the
file): snntorch reset subtract; norse dt 1e-3; rockpool reset subtract and dt 1e-3.

Export for others: graphs spinnq writes load in snnTorch's `import_from_nir` as they are
(read them with --reset zero: that importer always resets to zero) and in Norse's `from_nir`
after `fold_r` (Norse's importer ignores r; pass `dt=` your dt to it).

Conventions other than `nir` are defined for forward Euler only (that is what the
frameworks do); asking for `--integrator exponential` with them is an `InputError`.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import nir
import numpy as np
import torch

from spinnq.errors import GraphError, InputError
from spinnq.graph.kernels import (
    LIFP,
    Kernel,
    LIFState,
    SimConfig,
    Tensor,
    as_tensor,
    fire,
    lif_init,
    lif_prepare,
    lif_step,
)
from spinnq.graph.model import Graph
from spinnq.graph.nodes import CHIP_WEIGHTS, INPUT_GAIN, LEAKLESS, NEURONS


def _forward_only(cfg: SimConfig) -> None:
    if cfg.integrator != "forward":
        raise InputError(f"convention '{cfg.convention}' is forward Euler only; "
                         f"--integrator {cfg.integrator} applies to convention 'nir'")


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _prepare(node, cfg: SimConfig) -> LIFP:
    """LIFP with every product formed in float64 and rounded once (see the docstring).

    For the norse convention `gain`/`syn_gain` hold `a` and `w_in` (Norse multiplies r and
    a separately, in its own order); for snntorch they hold `a r` and `a_syn w_in`.
    """
    _forward_only(cfg)
    norse = cfg.convention == "norse"
    r = _f64(node.r)
    if isinstance(node, LEAKLESS):
        a = np.ones_like(r)
        alpha = np.ones_like(r)
        leak = np.zeros_like(r)
    else:
        a = cfg.dt / _f64(node.tau_mem if hasattr(node, "tau_mem") else node.tau)
        alpha = 1.0 - a
        leak = _f64(node.v_leak) if norse else a * _f64(node.v_leak)
    gain = a if norse else a * r
    v_th = as_tensor(node.v_threshold, cfg) if hasattr(node, "v_threshold") else None
    v_reset = getattr(node, "v_reset", None)
    syn_alpha = syn_gain = None
    if hasattr(node, "tau_syn"):
        a_syn = cfg.dt / _f64(node.tau_syn)
        syn_alpha = as_tensor(a_syn if norse else 1.0 - a_syn, cfg)
        syn_gain = as_tensor(_f64(node.w_in) if norse else a_syn * _f64(node.w_in), cfg)
    return LIFP(as_tensor(alpha, cfg), as_tensor(gain, cfg), as_tensor(leak, cfg), v_th,
                as_tensor(v_reset if v_reset is not None else 0.0, cfg), cfg.reset == "subtract",
                syn_alpha, syn_gain)


def _norse_prepare(node, cfg: SimConfig) -> tuple[LIFP, Tensor]:
    return _prepare(node, cfg), as_tensor(node.r, cfg)


def _norse_init(p: tuple[LIFP, Tensor], batch: int, shape: tuple) -> LIFState:
    return lif_init(p[0], batch, shape)


# ------------------------------------------------------------------------------ snnTorch
def snntorch_step(x: Tensor, s: LIFState, p: LIFP) -> tuple[Tensor, LIFState]:
    """snnTorch's update: reset from the previous (unreset) membrane, applied this step."""
    i = s.i
    if p.syn_alpha is not None:
        i = p.syn_alpha * i + p.syn_gain * x
        x = i
    if p.v_th is None:
        v = p.alpha * s.v + p.gain * x + p.leak
        return v, LIFState(v, i)
    reset = s.v > p.v_th
    if p.subtract:
        v = p.alpha * s.v + p.gain * x + p.leak - reset.to(x.dtype) * p.v_th
    else:
        v = p.alpha * torch.where(reset, p.v_reset, s.v) + p.gain * x + p.leak
    return (v > p.v_th).to(v.dtype), LIFState(v, i)


# --------------------------------------------------------------------------------- Norse
# Each function is one Norse cell's arithmetic, in Norse's float32 operation order.
def _norse_cuba(x: Tensor, s: LIFState, p: LIFP, r: Tensor) -> tuple[Tensor, Tensor]:
    """LIFCell: jump, integrate the jumped current, then decay it."""
    i = s.i + p.syn_gain * x
    v = s.v + p.gain * ((p.leak - s.v) + r * i)
    return v, i + (-p.syn_alpha) * i


def _norse_box(x: Tensor, s: LIFState, p: LIFP, r: Tensor) -> tuple[Tensor, None]:
    """LIFBoxCell: v + dt/tau ((input + v_leak) - v)."""
    return s.v + p.gain * ((r * x + p.leak) - s.v), None


def _norse_li(x: Tensor, s: LIFState, p: LIFP, r: Tensor) -> tuple[Tensor, None]:
    """LIBoxCell: v + dt/tau ((v_leak - v) + input)."""
    return s.v + p.gain * ((p.leak - s.v) + r * x), None


def _norse_iaf(x: Tensor, s: LIFState, p: LIFP, r: Tensor) -> tuple[Tensor, None]:
    """IAFCell: v + input."""
    return s.v + r * x, None


def _norse_kernel(update) -> Kernel:
    def step(x: Tensor, s: LIFState, pr: tuple[LIFP, Tensor]) -> tuple[Tensor, LIFState]:
        p, r = pr
        v, i = update(x, s, p, r)
        if p.v_th is None:
            return v, LIFState(v, i)
        z = (v > p.v_th).to(v.dtype)
        v = (1 - z) * v + z * (v - p.v_th if p.subtract else p.v_reset)
        return z, LIFState(v, i)
    return Kernel(_norse_prepare, _norse_init, step)


# -------------------------------------------------------------------------- SpikingJelly
def _sj_prepare(node, cfg: SimConfig) -> LIFP:
    """NIR's reading, but IF/I integrate `dt r x` (SpikingJelly writes IFNode as r = 1/dt)
    and spikes fire at v >= v_th."""
    _forward_only(cfg)
    p = lif_prepare(node, cfg)
    if isinstance(node, LEAKLESS):
        p = p._replace(gain=as_tensor(cfg.dt * _f64(node.r), cfg))
    return p._replace(inclusive=True)


# ------------------------------------------------------------------------------ Rockpool
def rockpool_decay(tau, dt: float) -> Tensor:
    """exp(-dt/tau) formed in float32 by torch, as Rockpool's modules form it (the reference
    simulator and the chip compiler both take Rockpool's decays from here)."""
    return torch.exp(-dt / torch.from_numpy(np.array(tau, dtype=np.float32)))


def _rp_prepare(node, cfg: SimConfig) -> LIFP:
    """Rockpool's reading: decays exp(-dt/tau) formed in float32 as Rockpool forms them,
    input gain 1 (r and w_in are ignored, as Rockpool's own importer does), v_leak is
    Rockpool's bias, spikes at v >= v_th. IF/I keep NIR's reading."""
    _forward_only(cfg)
    if isinstance(node, LEAKLESS):
        return lif_prepare(node, cfg)._replace(inclusive=True)

    def decay(tau) -> Tensor:
        return rockpool_decay(tau, cfg.dt).to(cfg.dtype)

    alpha = decay(node.tau_mem if hasattr(node, "tau_mem") else node.tau)
    v_reset = getattr(node, "v_reset", None)
    return LIFP(alpha, as_tensor(1.0, cfg), as_tensor(node.v_leak, cfg),
                as_tensor(node.v_threshold, cfg) if hasattr(node, "v_threshold") else None,
                as_tensor(v_reset if v_reset is not None else 0.0, cfg), cfg.reset == "subtract",
                decay(node.tau_syn) if hasattr(node, "tau_syn") else None, None, True)


def rockpool_step(x: Tensor, s: LIFState, p: LIFP) -> tuple[Tensor, LIFState]:
    """LIFTorch: the current jumps then decays, `I <- (I + x) beta`, and the membrane takes
    the decayed current, `v <- v alpha + I + bias`. LIFNeuronTorch: `v <- v alpha + x + bias`.
    ExpSynTorch (LI): `v <- (v + x) alpha`."""
    i = s.i
    if p.syn_alpha is not None:
        i = (i + x) * p.syn_alpha
        x = i
    if p.v_th is None and p.syn_alpha is None:  # ExpSynTorch
        v = (s.v + x) * p.alpha
        return v, LIFState(v, i)
    v = (s.v * p.alpha + x) + p.leak
    if p.v_th is None:
        return v, LIFState(v, i)
    z = fire(v, p)
    v = v - z * p.v_th if p.subtract else torch.where(z.bool(), p.v_reset, v)
    return z, LIFState(v, i)


_NORSE_UPDATES = {nir.LIF: _norse_box, nir.LI: _norse_li, nir.CubaLIF: _norse_cuba,
                  nir.CubaLI: _norse_cuba, nir.IF: _norse_iaf, nir.I: _norse_iaf}

# Per-convention overrides of the NIR reading's neuron kernels (`kernels.KERNELS`).
CONVENTION_KERNELS: dict[str, dict[type, Kernel]] = {"nir": {}}
CONVENTION_KERNELS["snntorch"] = {t: Kernel(_prepare, lif_init, snntorch_step)
                                  for t in NEURONS}
CONVENTION_KERNELS["norse"] = {t: _norse_kernel(u) for t, u in _NORSE_UPDATES.items()}
CONVENTION_KERNELS["spikingjelly"] = {t: Kernel(_sj_prepare, lif_init, lif_step)
                                      for t in NEURONS}
CONVENTION_KERNELS["rockpool"] = {t: Kernel(_rp_prepare, lif_init, rockpool_step)
                                  for t in (nir.LIF, nir.LI, nir.CubaLIF, nir.CubaLI)}
CONVENTION_KERNELS["rockpool"] |= {t: Kernel(_rp_prepare, lif_init, lif_step)
                                   for t in (nir.IF, nir.I)}


# ---------------------------------------------------------------------- export for others
# r is the input gain of LIF/LI/IF/I; CubaLIF/CubaLI: Norse's importer keeps r (its gain is w_in)
FOLDABLE = tuple(t for t, gain in INPUT_GAIN.items() if gain == "r")


def fold_r(graph: Graph) -> Graph:
    """The same dynamics with r = 1: r is folded into the weights (and biases) feeding each
    LIF/LI/IF/I node, because Norse's `from_nir` ignores r (it only warns).

    Exact in real arithmetic (the neuron sees r (W x + b) = (r W) x + r b). Refused with a
    `GraphError` naming the node where it cannot be done: a neuron fed by something other
    than a weight node, a weight node that also feeds another node, or a conv whose r
    differs across the positions of one channel.
    """
    nodes = {k: copy.deepcopy(v) for k, v in graph.nodes.items()}
    for name, node in graph.nodes.items():
        if not isinstance(node, FOLDABLE):
            continue
        r = np.asarray(node.r, dtype=np.float64)
        if np.all(r == 1.0):
            continue
        for pred in graph.predecessors(name):
            w = nodes[pred]
            if not isinstance(w, CHIP_WEIGHTS) or graph.successors(pred) != [name]:
                raise GraphError(f"cannot fold r into '{pred}': it must be a weight node "
                                 f"(Linear, Affine, Conv2d) feeding only this neuron",
                                 file=graph.source, node=name)
            rw = np.broadcast_to(r, graph.shapes[name])
            if isinstance(w, nir.Conv2d):
                per_c = rw.reshape(rw.shape[0], -1)
                if not np.all(per_c == per_c[:, :1]):
                    raise GraphError("cannot fold r into a conv: r varies within a channel",
                                     file=graph.source, node=name)
                rw = per_c[:, 0]
            shape = (-1,) + (1,) * (np.ndim(w.weight) - 1)
            w.weight = (np.asarray(w.weight, np.float64) * rw.reshape(shape)).astype(np.float32)
            if getattr(w, "bias", None) is not None:
                w.bias = (np.asarray(w.bias, np.float64) * rw).astype(np.float32)
        nodes[name].r = np.ones_like(np.asarray(node.r, dtype=np.float32))
    return replace(graph, nodes=nodes)
