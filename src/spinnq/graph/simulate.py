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

import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from spinnq.config import resolve_device
from spinnq.errors import InputError
from spinnq.graph import events
from spinnq.graph.conventions import CONVENTION_KERNELS
from spinnq.graph.kernels import (
    KERNELS,
    LIFState,
    SimConfig,
    Tensor,
    frame_by_frame,
    lif_scan,
    lif_step,
    no_state,
)
from spinnq.graph.model import Graph
from spinnq.graph.nodes import NEURONS, POOLS, PORTS, SPIKING_NEURONS, WEIGHTS

__all__ = ["SimConfig", "Simulator", "Traces", "as_batch", "chip_depth", "default_record",
           "simulate"]

# ------------------------------------------------------------------------------- running
CHUNK_FRAMES = 256  # frames (samples x steps) a stateless node takes in one call
# Weight nodes torch computes (Linear, Affine, convolutions off the CPU or with groups)
# `Simulator.steps` still calls a step at a time, on each step's slice laid out as `step` gets
# it: a matrix product over T*B rows, over a strided slice or at another alignment rounds
# differently from one over B fresh rows (BLAS picks another kernel); oneDNN convolutions
# round odd batches differently from even ones; the last bit can flip a spike (the weight
# nodes, `nodes.WEIGHTS`). 2-D convolutions and pooling on the CPU go event by event in a
# fixed order (`spinnq.graph.events`, `kernels.frame_by_frame`): every frame in one call.
# Scaling and thresholds give the same bits at any batch.


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


def as_batch(x, input_shape: tuple, what: str = "input", finite: bool = True) -> Tensor:
    """Accept (T, *shape) or (B, T, *shape); return (B, T, *shape) in its own dtype (the
    simulator casts a step at a time), or `InputError`. The caller's memory is used as it is:
    no float copy. The check of a network's input: numbers, the graph's input shape, at least
    one sample and step, no complex values, and, with `finite`, no NaN or infinity in float
    arrays (one pass; integer and bool arrays need none)."""
    if not isinstance(x, Tensor):
        try:
            a = np.asarray(x)
        except Exception as e:  # ragged nested lists and other non-arrays
            raise InputError(f"{what} is not an array ({type(e).__name__}: {e})") from None
        if a.dtype.kind not in "biufc":
            raise InputError(f"{what} must be numbers, got an array of dtype {a.dtype}")
        if a.dtype.kind == "u" and a.dtype != np.uint8:  # torch lacks uint16-uint64 math
            a = a.astype(np.int64)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        with warnings.catch_warnings():  # read-only memory (a mapped file) is only read here
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(a)
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
    if arr.dtype.is_complex:
        raise InputError(f"{what} contains " + ("NaN, infinite or complex values" if finite
                                                else "complex values"))
    if finite and arr.dtype.is_floating_point and not _finite(arr):
        raise InputError(f"{what} contains NaN, infinite or complex values")
    return arr


def _finite(x: Tensor) -> bool:
    """No NaN or inf in x: its min and max in one pass, no copy (NaN propagates)."""
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def _shares(a: Tensor, b: Tensor) -> bool:
    """a is a view into b's memory (the caller's input, which `step` also gets as a view);
    other values `step` gets freshly allocated, and BLAS rounds by alignment too."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def default_record(graph: Graph) -> tuple[str, ...]:
    """The nodes feeding the Output nodes."""
    return tuple(dict.fromkeys(p for o in graph.outputs for p in graph.predecessors(o)))


def _population(graph: Graph, name: str) -> bool:
    """A node that is a population on SpiNNaker2: the Input or a neuron node."""
    return name == graph.input or isinstance(graph.nodes[name], NEURONS)


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


def chain_kind(sim: Simulator, n: str) -> str | None:
    """What node n is in a chain (`find_chains`): 'conv' (a 2-D convolution the event
    kernels take), 'pool', 'neuron' (a neuron of (C, H, W) stepped by NIR's `lif_step`), or
    None (not one)."""
    node = sim.graph.nodes[n]
    step = sim.kernels[type(node)].step
    if type(node) is nir.Conv2d and step is KERNELS[nir.Conv2d].step:
        p = sim.params[n]
        return "conv" if p.hwio is not None and p.groups == 1 else None
    if isinstance(node, POOLS) and step is KERNELS[type(node)].step:
        return "pool"
    if isinstance(node, NEURONS) and step is lif_step and len(sim.graph.shapes[n]) == 3:
        return "neuron"
    return None


def find_chains(sim: Simulator) -> dict[str, list[str]]:
    """The chains `Simulator.steps` runs in one compiled pass (`spinnq.graph.fused`), by
    first node: a 2-D convolution or pooling node, then convolutions, pooling and neurons
    (`chain_kind`), each the only input of the next and read by nothing else, no edge
    between them delayed (`chip_timing` delays a population's); two nodes at least."""
    g = sim.graph
    succ: dict[str, list] = {n: [] for n in g.order}
    for n in g.order:
        for s, late in sim.preds[n]:
            succ[s].append((n, late))
    chains: dict[str, list[str]] = {}
    for n in g.order:
        if chain_kind(sim, n) not in ("conv", "pool") or any(n in c for c in chains.values()):
            continue
        names = [n]
        while len(succ[names[-1]]) == 1:
            m, late = succ[names[-1]][0]
            if late or len(sim.preds[m]) != 1 or chain_kind(sim, m) is None:
                break
            names.append(m)
        if len(names) > 1:
            chains[n] = names
    return chains


def chain_layers(sim: Simulator, names: list[str]) -> list:
    """The chain's nodes as `spinnq.graph.fused.Layer`s."""
    from spinnq.graph.fused import CONV, NEURON, POOL, Layer

    g, kinds = sim.graph, {"conv": CONV, "pool": POOL, "neuron": NEURON}
    ins = [g.predecessors(names[0])[0], *names[:-1]]
    return [Layer(kinds[chain_kind(sim, n)], sim.params[n], tuple(g.shapes[i]),
                  tuple(g.shapes[n])) for i, n in zip(ins, names, strict=True)]


def fused_usable(x: Tensor, dtype: torch.dtype) -> bool:
    """Whether a chain may run compiled on x: (T, B, C, H, W) frames of the simulation's
    dtype that the event kernels take (CPU, float, no autograd, numba present)."""
    return x.ndim == 5 and x.dtype == dtype and events.usable(x)


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
        self.device = resolve_device(cfg.device)
        with self.device:  # the kernels' tensors are made where the steps run
            self.params = {n: self.kernels[type(graph.nodes[n])].prepare(graph.nodes[n], cfg)
                           for n in graph.order}
        self.preds = {n: [(s, (s, n) in graph.recurrent or (
            cfg.chip_timing and _population(graph, s) and not isinstance(graph.nodes[n],
                                                                          nir.Output)))
            for s in graph.predecessors(n)] for n in graph.order}
        self.state: dict[str, Any] = {}
        self.last: dict[str, Tensor] = {}
        self._consts: dict[str, dict] = {}  # per neuron node: its parameters as scans take them
        # chains of convolutions, pooling and neurons `steps` runs in one compiled pass
        # (`spinnq.graph.fused`): first node -> the chain's nodes, and its tables once built
        self.chains: dict[str, list[str]] = (find_chains(self) if self.layerwise and
                                             self.device.type == "cpu" else {})
        self._chain_tables: dict[str, Any] = {}
        self.counts: dict[str, int] = {}  # spikes of the last `steps` call's unkept nodes

    def reset(self, batch: int) -> None:
        g = self.graph
        with self.device:
            self.state = {n: self.kernels[type(g.nodes[n])].init(self.params[n], batch,
                                                                 g.shapes[n]) for n in g.order}
            self.last = {n: torch.zeros((batch, *g.shapes[n]), dtype=self.cfg.dtype)
                         for n in g.order}

    def step(self, x: Tensor) -> dict[str, Tensor]:
        """Advance one step with input x (B, *input_shape); returns every node's output
        (on the simulator's device)."""
        g, now = self.graph, {}
        for n in g.order:
            if n == g.input:
                inp = x.to(self.device, self.cfg.dtype)
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

    @property
    def layerwise(self) -> bool:
        """Whether `steps` may evaluate a node over many steps at once: no recurrent edge
        (a node's input at step t never depends on a later node's output at t - 1)."""
        return not self.graph.recurrent

    def steps(self, x: Tensor, keep_v: tuple[str, ...] = (), need: Collection[str] | None = None,
              spikes: tuple[np.ndarray, ...] | None = None
              ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Advance x.shape[1] steps with input x (B, T, *input_shape), node by node in the
        graph's order: pooling, scaling, thresholds and CPU 2-D convolutions take all T*B
        frames in one call, other weight nodes a step at a time in `step`'s memory layout
        (see CHUNK_FRAMES), a stateful node (neurons, delays) steps its whole input sequence
        with its kernel's own `step` (NIR's `lif_step` by a compiled scan of the same
        operations), and a chain of convolutions, pooling and NIR neurons (`find_chains`)
        goes frame by frame through all its layers in one compiled pass of the same
        operations (`spinnq.graph.fused`); so every value equals `step`'s, bit for bit
        (tests/graph/test_layerwise.py, test_fused.py). Only for graphs without recurrent
        edges (`layerwise`). Returns the outputs of every node (with `need`: at least of
        those; a chain's inner nodes that are not needed are not written out, their spike
        counts are in `self.counts`) and the voltages (after each step) of `keep_v`,
        time-major: (T, B, *shape), so that each step's values are contiguous. `spikes`:
        x's 0/1 spikes already listed (`fused.Chain.run`), read by a chain fed by the input."""
        g, now, vs, inside = self.graph, {}, {}, set()
        t, b = x.shape[1], x.shape[0]
        x = x.to(self.device)  # as `step` (a no-op, and a view, where it is already)
        self.counts = {}
        for n in g.order:
            if n in inside:  # run with its chain
                continue
            if n == g.input:  # each step's slice laid out as `step` gets it: BLAS and
                # oneDNN round by layout, so a strided x[:, t] stays strided
                inp = (x.transpose(0, 1) if x.dtype == self.cfg.dtype else
                       x.transpose(0, 1).to(self.cfg.dtype).contiguous())
            else:
                parts = [self._delayed(s, now[s]) if rec else now[s] for s, rec in self.preds[n]]
                inp = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
            if n in self.chains and fused_usable(inp, self.cfg.dtype):
                listed = spikes if self.preds[n] == [(g.input, False)] else None
                self._run_chain(n, inp, now, vs, keep_v, need, listed)
                inside.update(self.chains[n])
                continue
            kernel, node = self.kernels[type(g.nodes[n])], g.nodes[n]
            if isinstance(node, nir.Flatten):
                inp = inp.reshape(t, b, *g.shapes[n])
            if isinstance(node, PORTS) or isinstance(node, nir.Flatten):  # as they are:
                # identity kernels (Flatten reshaped above); their layout is the next node's
                now[n] = inp
            elif kernel.init is no_state and frame_by_frame(kernel.step, inp[0],
                                                             self.params[n]):
                now[n] = kernel.step(inp, (), self.params[n])[0]  # every frame in one call
            elif kernel.init is no_state and not isinstance(node, WEIGHTS):
                out, _ = kernel.step(inp.reshape(t * b, *inp.shape[2:]), (), self.params[n])
                now[n] = out.reshape(t, b, *out.shape[1:])
            elif kernel.init is no_state:  # each step as `step` lays it out: the same bits
                now[n] = torch.stack([kernel.step(i if _shares(i, x) else i.clone(), (),
                                                  self.params[n])[0] for i in inp])
            else:
                now[n], v = self._scan(n, inp, n in keep_v)
                if v is not None:
                    vs[n] = v
        self.last = {n: o[-1] for n, o in now.items()}
        return now, vs

    def _run_chain(self, first: str, inp: Tensor, now: dict, vs: dict,
                   keep_v: tuple[str, ...], need: Collection[str] | None,
                   spikes: tuple[np.ndarray, ...] | None = None) -> None:
        """The chain starting at `first` over inp (T, B, C, H, W) (`spinnq.graph.fused`):
        its last node's output, and the others' where needed, into `now`; voltages of
        `keep_v` into `vs`; the neurons' states carried on; unkept spike counts."""
        from spinnq.graph.fused import Chain

        names = self.chains[first]
        chain = self._chain_tables.get(first)
        if chain is None:
            chain = self._chain_tables[first] = Chain(chain_layers(self, names), self.cfg.dtype)
        write = {i for i, m in enumerate(names) if need is None or m in need
                 or i == len(names) - 1}
        keep = {i for i, m in enumerate(names) if m in keep_v}
        states = [self.state[m] if isinstance(self.state[m], LIFState) else None
                  for m in names]
        outs, v, new, counts = chain.run(inp, states, write, keep, spikes)
        for i, m in enumerate(names):
            if states[i] is not None:
                self.state[m] = new[i]
            if i in outs:
                now[m] = outs[i]
            else:
                self.counts[m] = int(counts[i])
            if i in v:
                vs[m] = v[i]

    def _delayed(self, s: str, seq: Tensor) -> Tensor:
        """`seq` one step late: the previous call's last value first (a projection's step)."""
        return torch.cat([self.last[s].unsqueeze(0), seq[:-1]])

    def _scan(self, n: str, inp: Tensor, keep_v: bool) -> tuple[Tensor, Tensor | None]:
        """Node n's kernel stepped over its input sequence (T, B, ...), state carried on."""
        step, params, state = self.kernels[type(self.graph.nodes[n])].step, self.params[n], \
            self.state[n]
        if step is lif_step:  # NIR's (and SpikingJelly's) neurons: one compiled pass
            done = lif_scan(inp, state, params, keep_v, self._consts.setdefault(n, {}))
            if done is not None:
                self.state[n] = done[2]
                return done[0], done[1]
        outs, vs = [], []
        for x in inp:
            o, state = step(x, state, params)
            outs.append(o)
            if keep_v:
                vs.append(state.v)
        self.state[n] = state
        return torch.stack(outs), (torch.stack(vs) if keep_v else None)

    def chunk(self, batch: int, need: Collection[str] | None = None) -> int:
        """Steps per `steps` call (given `need`): about the memory of CHUNK_FRAMES frames
        of every node's output (the input is the caller's); more frames where chains keep
        their inner nodes' values to themselves."""
        g = self.graph
        size = {n: int(np.prod(g.shapes[n], dtype=np.int64)) for n in g.order if n != g.input}
        hidden = set() if need is None else {m for names in self.chains.values()
                                             for m in names[:-1] if m not in need}
        frames = CHUNK_FRAMES * max(1, sum(size.values()) // max(
            1, sum(v for n, v in size.items() if n not in hidden)))
        return max(1, frames // max(batch, 1))

    @torch.no_grad()
    def run(self, x, on_step: Callable[[int], None] | None = None) -> Traces:
        """All steps of x; `on_step(t)` after each (a progress bar on long inputs). The traces
        come back on the CPU, whichever device ran the steps."""
        xb = as_batch(x, self.graph.input_shape).to(self.device)  # as stored: bytes cross
        if self.cfg.chip_timing:
            extra = chip_depth(self.graph, self.cfg.dt)
            xb = torch.cat([xb, xb.new_zeros((xb.shape[0], extra, *xb.shape[2:]))], dim=1)
        rec = self.cfg.record or default_record(self.graph)
        self.reset(xb.shape[0])
        if self.layerwise:
            return self._run_layerwise(xb, rec, on_step)
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
            stacked = torch.stack(buf[r], dim=1).cpu()
            node = self.graph.nodes[r]
            if isinstance(node, SPIKING_NEURONS):
                tr.spikes[r] = stacked
            elif r not in vbuf:
                tr.out[r] = stacked
        for r, vs in vbuf.items():
            tr.v[r] = torch.stack(vs, dim=1).cpu()
        return tr

    def _run_layerwise(self, xb: Tensor, rec: tuple[str, ...],
                       on_step: Callable[[int], None] | None) -> Traces:
        """`run` by `steps`, a chunk of steps at a time (the same values as stepping)."""
        keep_v = tuple(r for r in rec if isinstance(self.state[r], LIFState))
        buf: dict[str, list] = {r: [] for r in rec}
        vbuf: dict[str, list] = {r: [] for r in keep_v}
        size = self.chunk(xb.shape[0], rec)
        for t0 in range(0, xb.shape[1], size):
            now, vs = self.steps(xb[:, t0:t0 + size], keep_v, rec)
            for r in rec:
                buf[r].append(now[r])
            for r in keep_v:
                vbuf[r].append(vs[r])
            if on_step is not None:
                for t in range(t0, min(t0 + size, xb.shape[1])):
                    on_step(t)
        tr = Traces()
        for r in rec:
            if isinstance(self.graph.nodes[r], SPIKING_NEURONS):
                tr.spikes[r] = torch.cat(buf[r]).transpose(0, 1).contiguous().cpu()
            elif r not in vbuf:
                tr.out[r] = torch.cat(buf[r]).transpose(0, 1).contiguous().cpu()
        for r, v in vbuf.items():
            tr.v[r] = torch.cat(v).transpose(0, 1).contiguous().cpu()
        return tr


def simulate(graph: Graph, x, cfg: SimConfig = SimConfig(),
             on_step: Callable[[int], None] | None = None) -> Traces:
    """Run `graph` on input x ((T, *in) or (B, T, *in)) and record `cfg.record` nodes;
    `on_step(t)` is called after each step."""
    return Simulator(graph, cfg).run(x, on_step)


