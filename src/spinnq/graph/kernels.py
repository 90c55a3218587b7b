"""The reference simulator's building blocks: one `Kernel` per NIR node type.

`prepare(node, cfg)` turns a NIR node into tensors once, `init(params, batch, shape)` makes
its state and `step(x, state, params) -> (out, state)` is a pure function (Norse style).
`KERNELS` dispatches on the node type (NIR's own reading of each ODE, `SimConfig`'s
discretisation); `spinnq.graph.conventions` holds the neuron kernels of other frameworks'
update rules, and `spinnq.graph.simulate` steps a whole graph with them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import nir
import numpy as np
import torch
import torch.nn.functional as F

from spinnq.config import DEFAULT_DT, DEVICES
from spinnq.errors import InputError
from spinnq.graph import events
from spinnq.graph.meta import CONVENTIONS, INTEGRATORS, RESETS, decay_factors
from spinnq.graph.model import conv_padding, pair
from spinnq.graph.nodes import LEAKLESS, NEURONS

Tensor = torch.Tensor


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
    device: str = "cpu"  # or cuda where torch sees a GPU (`spinnq.config.resolve_device`)

    def __post_init__(self):
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise InputError(f"dt must be a positive number of seconds, got {self.dt}")
        if self.reset not in RESETS:
            raise InputError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.integrator not in INTEGRATORS:
            raise InputError(f"integrator must be one of {INTEGRATORS}, "
                             f"got {self.integrator!r}")
        if self.device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.convention not in CONVENTIONS:
            raise InputError(f"convention must be one of {CONVENTIONS}, "
                             f"got {self.convention!r}")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64 if self.float64 else torch.float32


class Kernel(NamedTuple):
    prepare: Callable[[Any, SimConfig], Any]  # (node, cfg) -> params
    init: Callable[[Any, int, tuple], Any]  # (params, batch, shape) -> state
    step: Callable[[Tensor, Any, Any], tuple[Tensor, Any]]  # (x, state, params)


def as_tensor(a, cfg: SimConfig) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=cfg.dtype)


def no_state(params, batch, shape):
    return ()


def decay(tau, cfg: SimConfig) -> tuple[Tensor, Tensor]:
    """(alpha, a) as tensors of the simulation's dtype (`meta.decay_factors`)."""
    alpha, a = decay_factors(tau, cfg.dt, cfg.integrator)
    return as_tensor(alpha, cfg), as_tensor(a, cfg)


# --------------------------------------------------------------------------- weight nodes
class AffineP(NamedTuple):
    weight: Tensor
    bias: Tensor | None


def _affine_prepare(node, cfg):
    bias = getattr(node, "bias", None)
    return AffineP(as_tensor(node.weight, cfg), None if bias is None else as_tensor(bias, cfg))


def _affine_step(x, state, p: AffineP):
    return F.linear(x, p.weight, p.bias), state


class ConvP(NamedTuple):
    weight: Tensor
    bias: Tensor | None
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    hwio: Tensor | None = None  # a 2-D convolution's weight as `events.conv2d` reads it


def _conv_prepare(node, cfg):
    nd = node.weight.ndim - 2
    as_tuple = lambda v: tuple(int(x) for x in np.broadcast_to(np.asarray(v).astype(int), (nd,)))  # noqa: E731
    bias = as_tensor(node.bias, cfg) if node.bias is not None else None
    w = as_tensor(node.weight, cfg)
    return ConvP(w, bias, as_tuple(node.stride), conv_padding(node, ()),
                 as_tuple(node.dilation), int(node.groups),
                 w.permute(2, 3, 1, 0).contiguous() if nd == 2 else None)


def _conv_step(x, state, p: ConvP):
    """2-D convolutions on the CPU input event by input event (`spinnq.graph.events`: a fixed
    order of float operations, the same bits at any batch); others by torch."""
    if frame_by_frame(_conv_step, x, p):
        return events.conv2d(x, p.hwio, p.bias, p.stride, p.padding, p.dilation), state
    conv = F.conv1d if p.weight.ndim == 3 else F.conv2d
    return conv(x, p.weight, p.bias, p.stride, p.padding, p.dilation, p.groups), state


def frame_by_frame(step: Callable, x: Tensor, p: Any) -> bool:
    """Whether `step` (a weight or pooling node's) computes each frame of x (B, ...) alone,
    with the same bits whatever frames come with it, so that many steps' frames may go in
    one call (`spinnq.graph.events`)."""
    if step is _pool_step:
        return events.usable(x)
    return step is _conv_step and p.hwio is not None and events.usable(x, p.weight, p.groups)


class PoolP(NamedTuple):
    kernel: tuple
    stride: tuple
    padding: tuple
    divisor: int | None  # 1 for sum pooling, None for average


def _pool_prepare(divisor):
    def prepare(node, cfg):
        return PoolP(pair(node.kernel_size), pair(node.stride), pair(node.padding), divisor)
    return prepare


def _pool_step(x, state, p: PoolP):
    """On the CPU input event by input event (`spinnq.graph.events`), else by torch: each
    output the sum of its window in (row, column) order over the divisor, in both."""
    if frame_by_frame(_pool_step, x, p):
        div = p.divisor if p.divisor is not None else p.kernel[0] * p.kernel[1]
        return events.pool2d(x, p.kernel, p.stride, p.padding, div), state
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


def lif_prepare(node, cfg):
    if isinstance(node, LEAKLESS):  # per-step integrator, see the module docstring
        alpha, a = as_tensor(np.ones_like(node.r, dtype=np.float64), cfg), as_tensor(1.0, cfg)
        leak = torch.zeros(())
    else:
        alpha, a = decay(node.tau_mem if hasattr(node, "tau_mem") else node.tau, cfg)
        leak = a * as_tensor(node.v_leak, cfg)
    gain = a * as_tensor(node.r, cfg)
    v_th = as_tensor(node.v_threshold, cfg) if hasattr(node, "v_threshold") else None
    v_reset = as_tensor(getattr(node, "v_reset", None) if getattr(node, "v_reset", None) is not None
                 else 0.0, cfg)
    syn_alpha = syn_gain = None
    if hasattr(node, "tau_syn"):
        syn_alpha, a_syn = decay(node.tau_syn, cfg)
        syn_gain = a_syn * as_tensor(node.w_in, cfg)
    return LIFP(alpha, gain, leak.to(cfg.dtype), v_th, v_reset, cfg.reset == "subtract",
                syn_alpha, syn_gain)


def lif_init(p: LIFP, batch, shape):
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


# ------------------------------------------------------------------ a neuron over many steps
def lif_scan(xs: Tensor, s: LIFState, p: LIFP, keep_v: bool = False,
             consts: dict | None = None) -> tuple[Tensor, Tensor | None, LIFState] | None:
    """`lif_step` over a time-major sequence xs (T, B, *shape) in one compiled pass:
    (outputs, voltages after each step or None, final state), the same float operations in
    the same order as `lif_step` (the tests compare them bit for bit). None where numba is
    missing or the tensors are not on the CPU (the caller then steps). `consts`: a dict the
    caller keeps per `p`, where the parameters laid out for the kernel are kept between
    calls."""
    cuba, spiking = p.syn_alpha is not None, p.v_th is not None
    scan = _lif_scan_kernel(cuba, spiking, p.subtract, p.inclusive, keep_v)
    if scan is None or xs.device.type != "cpu" or xs.dtype != p.alpha.dtype:
        return None
    t, b = xs.shape[0], xs.shape[1]
    # the elements in the order xs has them in memory (a convolution's channels-last output
    # stays so, without a copy): x, state and parameters alike, and the outputs back
    order = memory_order(xs)
    shape = tuple(xs.shape[2 + d] for d in order)
    n = int(np.prod(shape, dtype=np.int64))

    def lay(a: Tensor, lead: int) -> Tensor:
        return a.permute(*range(lead), *(lead + d for d in order))

    def back(a: np.ndarray, lead: tuple) -> Tensor:
        return torch.from_numpy(a).reshape(*lead, *shape).permute(
            *range(len(lead)), *(len(lead) + order.index(d) for d in range(len(order))))

    def flat(a: Tensor | None) -> np.ndarray:
        a = torch.zeros((), dtype=xs.dtype) if a is None else a.to(xs.dtype)
        full = torch.broadcast_to(a, xs.shape[2:])
        return np.ascontiguousarray(lay(full, 0).reshape(n).numpy())

    x = lay(xs.detach(), 2).reshape(t, b, n).contiguous().numpy()
    v = lay(s.v.detach(), 1).reshape(b, n).contiguous().numpy().copy()
    i = lay(s.i.detach(), 1).reshape(b, n).contiguous().numpy().copy() if cuba else v[:0]
    out = np.empty_like(x)
    vs = np.empty_like(x) if keep_v else x[:0]
    key = (tuple(order), tuple(xs.shape[2:]), xs.dtype)
    laid = consts.get(key) if consts is not None else None
    if laid is None:
        laid = tuple(flat(a) for a in (p.alpha, p.gain, p.leak, p.v_th, p.v_reset,
                                       p.syn_alpha, p.syn_gain))
        if consts is not None:
            consts[key] = laid
    scan(x, v, i, *laid, out, vs)
    state = LIFState(back(v, (b,)), back(i, (b,)) if cuba else None)
    return back(out, (t, b)), (back(vs, (t, b)) if keep_v else None), state


def memory_order(xs: Tensor) -> list[int]:
    """The dimensions after the first two of xs (T, B, ...) from the slowest to the fastest
    in memory: [0, 1, ..., k] for a contiguous tensor, [1, 2, 0] for channels-last frames."""
    dims = list(range(xs.ndim - 2))
    order = sorted(dims, key=lambda d: -xs.stride(2 + d))
    ok = xs.permute(0, 1, *(2 + d for d in order)).is_contiguous()
    return order if ok else dims


@functools.cache
def _lif_scan_kernel(cuba: bool, spiking: bool, subtract: bool, inclusive: bool,
                     keep_v: bool):
    """The compiled scan of `lif_scan` for one kind of neuron, or None without numba
    (imported on first use). The kind is fixed when compiling (numba takes the closure's
    values as constants), so the loop over neurons has no branches on it and vectorises."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a core dependency
        return None

    @njit(cache=True, nogil=True)
    def scan(x, v, i, alpha, gain, leak, v_th, v_reset, syn_alpha, syn_gain, out,
             vs):  # pragma: no cover - compiled
        T, B, N = x.shape
        zero = x.dtype.type(0)
        for t in range(T):
            for b in range(B):
                for k in range(N):
                    xin = x[t, b, k]
                    if cuba:  # i = syn_alpha * i + syn_gain * x; x = i
                        i[b, k] = syn_alpha[k] * i[b, k] + syn_gain[k] * xin
                        xin = i[b, k]
                    w = alpha[k] * v[b, k] + gain[k] * xin + leak[k]
                    if not spiking:
                        out[t, b, k] = w
                    else:
                        z = w >= v_th[k] if inclusive else w > v_th[k]
                        out[t, b, k] = 1 if z else 0
                        if z:
                            w = w - v_th[k] if subtract else v_reset[k]
                        elif subtract:
                            w = w - zero
                    v[b, k] = w
                    if keep_v:
                        vs[t, b, k] = w
    return scan


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
    nir.Input: Kernel(lambda n, c: None, no_state, lambda x, s, p: (x, s)),
    nir.Output: Kernel(lambda n, c: None, no_state, lambda x, s, p: (x, s)),
    nir.Affine: Kernel(_affine_prepare, no_state, _affine_step),
    nir.Linear: Kernel(_affine_prepare, no_state, _affine_step),
    nir.Scale: Kernel(lambda n, c: as_tensor(n.scale, c), no_state, lambda x, s, p: (x * p, s)),
    nir.Conv1d: Kernel(_conv_prepare, no_state, _conv_step),
    nir.Conv2d: Kernel(_conv_prepare, no_state, _conv_step),
    nir.Flatten: Kernel(lambda n, c: None, no_state, lambda x, s, p: (x, s)),  # reshaped below
    nir.SumPool2d: Kernel(_pool_prepare(1), no_state, _pool_step),
    nir.AvgPool2d: Kernel(_pool_prepare(None), no_state, _pool_step),
    nir.Delay: Kernel(_delay_prepare, _delay_init, _delay_step),
    nir.Threshold: Kernel(lambda n, c: as_tensor(n.threshold, c), no_state,
                          lambda x, s, p: ((x > p).to(x.dtype), s)),
    **{t: Kernel(lif_prepare, lif_init, lif_step) for t in NEURONS},
}
