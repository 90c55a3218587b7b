"""The float reference simulator of any validated NIR graph ("software" numbers).

Discrete time, batched, torch. Every node type is a `Kernel`: `prepare` turns the NIR node
into tensors once, `init` makes its state, and `step(x, state, params) -> (out, state)` is a
pure function (Norse style). `KERNELS` dispatches on the node type: a new node type is one
entry here plus its tests.

Semantics (the NIR ODEs, forward Euler by default, `a = dt/tau`):
  LIF      v <- v + a (v_leak - v + r I);  z = v > v_th;  reset: v <- v_reset | v - v_th
  CubaLIF  I_s <- I_s + a_syn (w_in S - I_s)  (updated first);  v as LIF with I = I_s
  LI, CubaLI  as LIF / CubaLIF without spikes; the output is v
  IF, I    v <- v + r I per step: every NIR producer (Sinabs, snnTorch, Norse) and
           py-spinnaker2 treat IF/I as a per-step integrator, not dv/dt = R I with dt
  exponential integrator: exp(-dt/tau) in place of 1 - a, and 1 - exp(-dt/tau) for a.
Within one step values flow along the edges instantly; an edge closing a cycle through a
stateful node (`Graph.recurrent`) carries its source's value of the previous step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nir
import numpy as np
import torch
import torch.nn.functional as F

from spinnq.config import DEFAULT_DT
from spinnq.errors import InputError
from spinnq.graph.model import Graph, _pair, conv_padding

Tensor = torch.Tensor
RESETS = ("zero", "subtract")
INTEGRATORS = ("forward", "exponential")


@dataclass(frozen=True)
class SimConfig:
    """How to discretise the graph. `reset=None` keeps NIR's reset to `v_reset`."""

    dt: float = DEFAULT_DT
    reset: str = "zero"
    integrator: str = "forward"
    float64: bool = False
    record: tuple[str, ...] = ()
    convention: str = "nir"  # neuron update rule of a NIR producer: see conventions.py
    chip_timing: bool = False  # SpiNNaker2's timing: see `Simulator` and `chip_depth`

    def __post_init__(self):
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise InputError(f"dt must be a positive number of seconds, got {self.dt}")
        if self.reset not in RESETS:
            raise InputError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.integrator not in INTEGRATORS:
            raise InputError(f"integrator must be one of {INTEGRATORS}, "
                             f"got {self.integrator!r}")
        if self.convention not in CONVENTION_KERNELS:
            raise InputError(f"convention must be one of {tuple(CONVENTION_KERNELS)}, "
                             f"got {self.convention!r}")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64 if self.float64 else torch.float32


class Kernel(NamedTuple):
    prepare: Callable[[Any, SimConfig], Any]  # (node, cfg) -> params
    init: Callable[[Any, int, tuple], Any]  # (params, batch, shape) -> state
    step: Callable[[Tensor, Any, Any], tuple[Tensor, Any]]  # (x, state, params)


def _t(a, cfg: SimConfig) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=cfg.dtype)


def _no_state(params, batch, shape):
    return ()


def decay(tau, cfg: SimConfig) -> tuple[Tensor, Tensor]:
    """(alpha, a): the per-step decay factor and the input gain of `tau dv/dt = -v + u`."""
    ratio = cfg.dt / np.asarray(tau, dtype=np.float64)
    if cfg.integrator == "exponential":
        alpha = np.exp(-ratio)
        return _t(alpha, cfg), _t(1.0 - alpha, cfg)
    return _t(1.0 - ratio, cfg), _t(ratio, cfg)


# --------------------------------------------------------------------------- weight nodes
class AffineP(NamedTuple):
    weight: Tensor
    bias: Tensor | None


def _affine_prepare(node, cfg):
    bias = getattr(node, "bias", None)
    return AffineP(_t(node.weight, cfg), None if bias is None else _t(bias, cfg))


def _affine_step(x, state, p: AffineP):
    return F.linear(x, p.weight, p.bias), state


class ConvP(NamedTuple):
    weight: Tensor
    bias: Tensor | None
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int


def _conv_prepare(node, cfg):
    nd = node.weight.ndim - 2
    as_tuple = lambda v: tuple(int(x) for x in np.broadcast_to(np.asarray(v).astype(int), (nd,)))  # noqa: E731
    return ConvP(_t(node.weight, cfg), _t(node.bias, cfg) if node.bias is not None else None,
                 as_tuple(node.stride), conv_padding(node, ()), as_tuple(node.dilation),
                 int(node.groups))


def _conv_step(x, state, p: ConvP):
    conv = F.conv1d if p.weight.ndim == 3 else F.conv2d
    return conv(x, p.weight, p.bias, p.stride, p.padding, p.dilation, p.groups), state


class PoolP(NamedTuple):
    kernel: tuple
    stride: tuple
    padding: tuple
    divisor: int | None  # 1 for sum pooling, None for average


def _pool_prepare(divisor):
    def prepare(node, cfg):
        return PoolP(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding), divisor)
    return prepare


def _pool_step(x, state, p: PoolP):
    return F.avg_pool2d(x, p.kernel, p.stride, p.padding, count_include_pad=True,
                        divisor_override=p.divisor), state


# ------------------------------------------------------------------------- neuron nodes
class LIFP(NamedTuple):
    alpha: Tensor  # decay per step
    gain: Tensor  # a * r: input gain
    leak: Tensor  # a * v_leak: constant drive
    v_th: Tensor | None  # None: never spikes (LI, CubaLI, I)
    v_reset: Tensor
    subtract: bool
    syn_alpha: Tensor | None = None  # CubaLIF/CubaLI synaptic decay
    syn_gain: Tensor | None = None  # a_syn * w_in
    inclusive: bool = False  # fire at v >= v_th (SpikingJelly, Rockpool), not v > v_th


class LIFState(NamedTuple):
    v: Tensor
    i: Tensor | None = None


def _lif_prepare(node, cfg):
    if isinstance(node, nir.IF | nir.I):  # per-step integrator, see the module docstring
        alpha, a = _t(np.ones_like(node.r, dtype=np.float64), cfg), _t(1.0, cfg)
        leak = torch.zeros(())
    else:
        alpha, a = decay(node.tau_mem if hasattr(node, "tau_mem") else node.tau, cfg)
        leak = a * _t(node.v_leak, cfg)
    gain = a * _t(node.r, cfg)
    v_th = _t(node.v_threshold, cfg) if hasattr(node, "v_threshold") else None
    v_reset = _t(getattr(node, "v_reset", None) if getattr(node, "v_reset", None) is not None
                 else 0.0, cfg)
    syn_alpha = syn_gain = None
    if hasattr(node, "tau_syn"):
        syn_alpha, a_syn = decay(node.tau_syn, cfg)
        syn_gain = a_syn * _t(node.w_in, cfg)
    return LIFP(alpha, gain, leak.to(cfg.dtype), v_th, v_reset, cfg.reset == "subtract",
                syn_alpha, syn_gain)


def _lif_init(p: LIFP, batch, shape):
    z = torch.zeros((batch, *shape), dtype=p.alpha.dtype)
    return LIFState(z, z.clone() if p.syn_alpha is not None else None)


def lif_step(x: Tensor, s: LIFState, p: LIFP) -> tuple[Tensor, LIFState]:
    """One step of any leaky/integrating neuron; returns (spikes or v, new state)."""
    i = s.i
    if p.syn_alpha is not None:
        i = p.syn_alpha * i + p.syn_gain * x
        x = i
    v = p.alpha * s.v + p.gain * x + p.leak
    if p.v_th is None:
        return v, LIFState(v, i)
    z = fire(v, p)
    v = v - z * p.v_th if p.subtract else torch.where(z.bool(), p.v_reset, v)
    return z, LIFState(v, i)


def fire(v: Tensor, p: LIFP) -> Tensor:
    """Spikes (0/1 in v's dtype): v > v_th, or v >= v_th for conventions that say so."""
    return (v >= p.v_th if p.inclusive else v > p.v_th).to(v.dtype)


# ---------------------------------------------------------------------------- the others
class DelayP(NamedTuple):
    steps: Tensor  # int64, per element
    depth: int


def _delay_prepare(node, cfg):
    steps = np.rint(np.asarray(node.delay, dtype=np.float64) / cfg.dt).astype(np.int64)
    return DelayP(torch.as_tensor(steps), int(steps.max(initial=0)))


def _delay_init(p: DelayP, batch, shape):
    return torch.zeros((batch, p.depth + 1, *shape))


def _delay_step(x, hist, p: DelayP):
    hist = torch.cat([x.unsqueeze(1), hist[:, :-1]], dim=1)
    idx = p.steps.expand(x.shape).unsqueeze(1)
    return hist.gather(1, idx).squeeze(1), hist


KERNELS: dict[type, Kernel] = {
    nir.Input: Kernel(lambda n, c: None, _no_state, lambda x, s, p: (x, s)),
    nir.Output: Kernel(lambda n, c: None, _no_state, lambda x, s, p: (x, s)),
    nir.Affine: Kernel(_affine_prepare, _no_state, _affine_step),
    nir.Linear: Kernel(_affine_prepare, _no_state, _affine_step),
    nir.Scale: Kernel(lambda n, c: _t(n.scale, c), _no_state, lambda x, s, p: (x * p, s)),
    nir.Conv1d: Kernel(_conv_prepare, _no_state, _conv_step),
    nir.Conv2d: Kernel(_conv_prepare, _no_state, _conv_step),
    nir.Flatten: Kernel(lambda n, c: None, _no_state, lambda x, s, p: (x, s)),  # reshaped below
    nir.SumPool2d: Kernel(_pool_prepare(1), _no_state, _pool_step),
    nir.AvgPool2d: Kernel(_pool_prepare(None), _no_state, _pool_step),
    nir.Delay: Kernel(_delay_prepare, _delay_init, _delay_step),
    nir.Threshold: Kernel(lambda n, c: _t(n.threshold, c), _no_state,
                          lambda x, s, p: ((x > p).to(x.dtype), s)),
    **{t: Kernel(_lif_prepare, _lif_init, lif_step)
       for t in (nir.I, nir.IF, nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF)},
}
# Per-convention overrides of KERNELS (neuron nodes only); conventions.py fills the others.
CONVENTION_KERNELS: dict[str, dict[type, Kernel]] = {"nir": {}}


# ------------------------------------------------------------------------------- running
@dataclass
class Traces:
    """What a run recorded, each (B, T, *shape): spikes and voltages of neuron nodes, and the
    values of other recorded nodes (`out`)."""

    spikes: dict[str, Tensor] = field(default_factory=dict)
    v: dict[str, Tensor] = field(default_factory=dict)
    out: dict[str, Tensor] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        d = {f"spikes/{k}": t.numpy().astype(np.uint8) for k, t in self.spikes.items()}
        d |= {f"v/{k}": t.numpy().astype(np.float32) for k, t in self.v.items()}
        d |= {f"out/{k}": t.numpy().astype(np.float32) for k, t in self.out.items()}
        return d


def as_batch(x, input_shape: tuple, what: str = "input") -> Tensor:
    """Accept (T, *shape) or (B, T, *shape); return (B, T, *shape) float, or `InputError`."""
    if not isinstance(x, Tensor):
        try:
            a = np.asarray(x)
        except Exception as e:  # ragged nested lists and other non-arrays
            raise InputError(f"{what} is not an array ({type(e).__name__}: {e})") from None
        if a.dtype.kind not in "biufc":
            raise InputError(f"{what} must be numbers, got an array of dtype {a.dtype}")
        x = torch.as_tensor(a)
    arr = x
    given = tuple(arr.shape)  # the user's shape, for the message
    n = len(input_shape)
    if arr.ndim == n + 1:
        arr = arr.unsqueeze(0)
    if arr.ndim != n + 2 or tuple(arr.shape[2:]) != tuple(input_shape):
        raise InputError(f"{what} has shape {given}; expected (T, "
                         f"{', '.join(map(str, input_shape))}) or (B, T, "
                         f"{', '.join(map(str, input_shape))})")
    if arr.shape[1] < 1 or arr.shape[0] < 1:
        raise InputError(f"{what} has no timesteps or samples: shape {given}")
    if arr.dtype.is_complex or not torch.isfinite(arr.to(torch.float64)).all():
        raise InputError(f"{what} contains NaN, infinite or complex values")
    return arr


def default_record(graph: Graph) -> tuple[str, ...]:
    """The nodes feeding the Output nodes."""
    return tuple(dict.fromkeys(p for o in graph.outputs for p in graph.predecessors(o)))


NEURON_NODES = (nir.I, nir.IF, nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF)


def _population(graph: Graph, name: str) -> bool:
    """A node that is a population on SpiNNaker2: the Input or a neuron node."""
    return name == graph.input or isinstance(graph.nodes[name], NEURON_NODES)


def chip_depth(graph: Graph, dt: float) -> int:
    """Steps from the input to the latest output on SpiNNaker2: one per projection plus the
    Delay nodes' steps on the way (the emulator's `T + depth` run length)."""
    at: dict[str, int] = {}
    for n in graph.order:
        node = graph.nodes[n]
        ins = [at[p] + _population(graph, p) for p in graph.predecessors(n)
               if (p, n) not in graph.recurrent and p in at]
        at[n] = max(ins, default=0)
        if isinstance(node, nir.Delay):
            at[n] += int(np.rint(np.asarray(node.delay, dtype=np.float64) / dt).max(initial=0))
    return max((at[p] for o in graph.outputs for p in graph.predecessors(o)
                if _population(graph, p)), default=0)


class Simulator:
    """Steps a graph; thin stateful wrapper over the pure kernels (closed loops use `step`).

    `cfg.chip_timing`: every edge leaving a population (the Input or a neuron node) delivers
    the previous step's value, as a SpiNNaker2 projection takes one step, while biases and
    leaks act from step 0 (on the chip they are the neuron's `i_offset`); `run` then lasts
    T + `chip_depth` steps (zero input after T), like the emulator. With integer weights
    (`--weight-scale none`) the spikes equal the emulator's step for step.
    """

    def __init__(self, graph: Graph, cfg: SimConfig = SimConfig()):
        self.graph, self.cfg = graph, cfg
        for r in cfg.record:
            if r not in graph.nodes:
                raise InputError(f"cannot record '{r}': no such node (nodes: "
                                 f"{', '.join(graph.order)})")
        self.kernels = {**KERNELS, **CONVENTION_KERNELS[cfg.convention]}
        self.params = {n: self.kernels[type(graph.nodes[n])].prepare(graph.nodes[n], cfg)
                       for n in graph.order}
        self.preds = {n: [(s, (s, n) in graph.recurrent or (
            cfg.chip_timing and _population(graph, s) and not isinstance(graph.nodes[n],
                                                                          nir.Output)))
            for s in graph.predecessors(n)] for n in graph.order}
        self.state: dict[str, Any] = {}
        self.last: dict[str, Tensor] = {}

    def reset(self, batch: int) -> None:
        g = self.graph
        self.state = {n: self.kernels[type(g.nodes[n])].init(self.params[n], batch, g.shapes[n])
                      for n in g.order}
        self.last = {n: torch.zeros((batch, *g.shapes[n]), dtype=self.cfg.dtype)
                     for n in g.order}

    def step(self, x: Tensor) -> dict[str, Tensor]:
        """Advance one step with input x (B, *input_shape); returns every node's output."""
        g, now = self.graph, {}
        for n in g.order:
            if n == g.input:
                inp = x.to(self.cfg.dtype)
            else:
                parts = [self.last[s] if rec else now[s] for s, rec in self.preds[n]]
                inp = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
            node = g.nodes[n]
            if isinstance(node, nir.Flatten):
                inp = inp.reshape(inp.shape[0], *g.shapes[n])
            now[n], self.state[n] = self.kernels[type(node)].step(inp, self.state[n],
                                                                  self.params[n])
        self.last = now
        return now

    @torch.no_grad()
    def run(self, x, on_step: Callable[[int], None] | None = None) -> Traces:
        """All steps of x; `on_step(t)` after each (a progress bar on long inputs)."""
        xb = as_batch(x, self.graph.input_shape)
        if self.cfg.chip_timing:
            extra = chip_depth(self.graph, self.cfg.dt)
            xb = torch.cat([xb, xb.new_zeros((xb.shape[0], extra, *xb.shape[2:]))], dim=1)
        rec = self.cfg.record or default_record(self.graph)
        self.reset(xb.shape[0])
        buf: dict[str, list] = {r: [] for r in rec}
        vbuf: dict[str, list] = {r: [] for r in rec if isinstance(self.state[r], LIFState)}
        for t in range(xb.shape[1]):
            now = self.step(xb[:, t])
            for r in rec:
                buf[r].append(now[r])
            for r in vbuf:
                vbuf[r].append(self.state[r].v)
            if on_step is not None:
                on_step(t)
        tr = Traces()
        for r in rec:
            stacked = torch.stack(buf[r], dim=1)
            node = self.graph.nodes[r]
            if isinstance(node, nir.LIF | nir.IF | nir.CubaLIF):
                tr.spikes[r] = stacked
            elif r not in vbuf:
                tr.out[r] = stacked
        for r, vs in vbuf.items():
            tr.v[r] = torch.stack(vs, dim=1)
        return tr


def simulate(graph: Graph, x, cfg: SimConfig = SimConfig(),
             on_step: Callable[[int], None] | None = None) -> Traces:
    """Run `graph` on input x ((T, *in) or (B, T, *in)) and record `cfg.record` nodes;
    `on_step(t)` is called after each step."""
    return Simulator(graph, cfg).run(x, on_step)


from spinnq.graph import conventions  # noqa: E402,F401  (registers snntorch/norse kernels)
