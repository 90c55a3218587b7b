"""Hypothesis strategies: random *valid* NIR graphs, and random ways to break them.

`valid_graphs(chip=True)` draws chains and small DAGs that SpiNNaker2 can run (conv blocks
with LIF/IF, SumPool fused before a weight layer, dense blocks with any neuron, Scale after a
dense layer, delays on dense chains, recurrent weights, skip connections, several outputs);
`chip=False` adds what only the float simulator runs (AvgPool2d, Threshold, CubaLIF after a
conv, pooling with padding, delays after neurons). Each draw returns the graph and its input
shape. `MUTATIONS` break a valid graph in one named way each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import nir
import numpy as np
from hypothesis import strategies as st

DT = 1e-4


@dataclass
class Builder:
    """Accumulates nodes and edges; `pops` are the nodes a projection may start from."""

    rng: np.random.Generator
    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    shapes: dict = field(default_factory=dict)
    pops: list = field(default_factory=list)

    def add(self, name: str, node, shape: tuple, *after: str) -> str:
        self.nodes[name] = node
        self.shapes[name] = tuple(int(s) for s in shape)
        self.edges += [(a, name) for a in after]
        return name

    def weights(self, *shape: int, fan_in: int) -> np.ndarray:
        w = self.rng.normal(0.0, 2.0 / math.sqrt(max(fan_in, 1)), size=shape)
        return w.astype(np.float32)


def _neuron(b: Builder, kind: str, shape: tuple) -> nir.NIRNode:
    rng, n = b.rng, shape
    tau = lambda: np.full(n, rng.uniform(2 * DT, 5e-2), np.float32)  # noqa: E731
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    thr = np.full(n, rng.uniform(0.1, 2.0), np.float32)
    r = ones * np.float32(rng.choice([1.0, rng.uniform(0.5, 20.0)]))
    leak = zeros if rng.random() < 0.7 else np.full(n, rng.uniform(-0.2, 0.2), np.float32)
    reset = None if rng.random() < 0.3 else zeros
    make: dict[str, Callable[[], nir.NIRNode]] = {
        "LIF": lambda: nir.LIF(tau=tau(), r=r, v_leak=leak, v_threshold=thr, v_reset=reset),
        "IF": lambda: nir.IF(r=r, v_threshold=thr, v_reset=reset),
        "CubaLIF": lambda: nir.CubaLIF(tau_syn=tau(), tau_mem=tau(), r=r, v_leak=leak,
                                       v_threshold=thr, v_reset=reset,
                                       w_in=ones * np.float32(rng.uniform(0.5, 5.0))),
        "LI": lambda: nir.LI(tau=tau(), r=r, v_leak=leak),
        "I": lambda: nir.I(r=r),
        "CubaLI": lambda: nir.CubaLI(tau_syn=tau(), tau_mem=tau(), r=r, v_leak=leak,
                                     w_in=ones * np.float32(rng.uniform(0.5, 5.0))),
        "Threshold": lambda: nir.Threshold(threshold=thr),
    }
    return make[kind]()


SPIKING = ["LIF", "IF", "CubaLIF"]
READOUTS = ["LI", "I", "CubaLI"]


def _conv_out(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


@st.composite
def valid_graphs(draw, chip: bool = True) -> tuple[nir.NIRGraph, tuple]:
    """A random valid graph (see the module docstring) and its input shape."""
    b = Builder(np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    image = draw(st.booleans())
    if image:
        shape = (draw(st.integers(1, 3)), draw(st.integers(4, 9)), draw(st.integers(4, 9)))
    else:
        shape = (draw(st.integers(1, 8)),)
    prev = b.add("input", nir.Input(input_type={"input": np.array(shape)}), shape)
    b.pops.append(prev)
    k = 0
    if image:
        for _ in range(draw(st.integers(0, 2))):
            c, h, w = b.shapes[prev]
            src = prev
            if min(h, w) >= 4 and draw(st.booleans()):
                pk = 2
                if not chip and draw(st.booleans()):  # pooling the chip cannot fuse
                    node = (nir.AvgPool2d if draw(st.booleans()) else nir.SumPool2d)(
                        kernel_size=np.array([2, 2]), stride=np.array([1, 1]),
                        padding=np.array([1, 1]))
                    oh, ow = h + 1, w + 1
                else:
                    node = nir.SumPool2d(kernel_size=np.array([pk, pk]),
                                         stride=np.array([pk, pk]), padding=np.array([0, 0]))
                    oh, ow = h // pk, w // pk
                src = b.add(f"pool{k}", node, (c, oh, ow), src)
                c, h, w = b.shapes[src]
            ks, st_, pad = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2])), \
                draw(st.sampled_from([0, 1]))
            if _conv_out(h, ks, st_, pad) < 1 or _conv_out(w, ks, st_, pad) < 1:
                ks, st_, pad = 1, 1, 0
            co = draw(st.integers(1, 4))
            out = (co, _conv_out(h, ks, st_, pad), _conv_out(w, ks, st_, pad))
            bias = (b.weights(co, fan_in=1) * 0.2 if draw(st.booleans())
                    else np.zeros(co, np.float32))
            conv = nir.Conv2d(input_shape=(h, w), weight=b.weights(co, c, ks, ks,
                                                                     fan_in=c * ks * ks),
                              stride=st_, padding=pad, dilation=1, groups=1, bias=bias)
            cv = b.add(f"conv{k}", conv, out, src)
            kinds = ["LIF", "IF"] + ([] if chip else ["CubaLIF", "Threshold", "LI"])
            prev = b.add(f"n{k}", _neuron(b, draw(st.sampled_from(kinds)), out), out, cv)
            b.pops.append(prev)
            k += 1
        if len(b.shapes[prev]) == 3:  # flatten for the dense part (maybe via a fused pool)
            src = prev
            c, h, w = b.shapes[prev]
            if min(h, w) >= 2 and draw(st.booleans()):
                src = b.add("poolf", nir.SumPool2d(kernel_size=np.array([2, 2]),
                                                   stride=np.array([2, 2]),
                                                   padding=np.array([0, 0])),
                            (c, h // 2, w // 2), src)
            sh = b.shapes[src]
            prev = b.add("flat", nir.Flatten(input_type={"input": np.array(sh)}, start_dim=0,
                                             end_dim=-1), (math.prod(sh),), src)
    n_dense = draw(st.integers(1, 3))
    outputs = []
    for j in range(n_dense):
        last = j == n_dense - 1
        n_in = b.shapes[prev][0]
        n_out = draw(st.integers(1, 8))
        if draw(st.booleans()):
            node = nir.Affine(b.weights(n_out, n_in, fan_in=n_in),
                              b.weights(n_out, fan_in=1) * 0.2)
        else:
            node = nir.Linear(b.weights(n_out, n_in, fan_in=n_in))
        d = b.add(f"fc{j}", node, (n_out,), prev)
        if draw(st.integers(0, 4)) == 0:
            d = b.add(f"scale{j}", nir.Scale(np.full(n_out, draw(st.floats(0.5, 2.0)),
                                                      np.float32)), (n_out,), d)
        if draw(st.integers(0, 4)) == 0:
            steps = np.array([draw(st.integers(0, 3)) for _ in range(n_out)], np.float32)
            d = b.add(f"delay{j}", nir.Delay(steps * DT), (n_out,), d)
        kinds = SPIKING + (READOUTS if last else []) + ([] if chip else ["Threshold"])
        kind = draw(st.sampled_from(kinds))
        nn_ = b.add(f"d{j}", _neuron(b, kind, (n_out,)), (n_out,), d)
        if kind in SPIKING and draw(st.integers(0, 3)) == 0:  # recurrent weights
            b.add(f"rec{j}", nir.Linear(b.weights(n_out, n_out, fan_in=n_out)), (n_out,), nn_)
            b.edges.append((f"rec{j}", nn_))
        flat_pops = [p for p in b.pops if len(b.shapes[p]) == 1 and p != prev]
        if flat_pops and draw(st.integers(0, 3)) == 0:  # skip connection: a small DAG
            src = draw(st.sampled_from(flat_pops))
            m = b.shapes[src][0]
            b.add(f"skip{j}", nir.Linear(b.weights(n_out, m, fan_in=m)), (n_out,), src)
            b.edges.append((f"skip{j}", nn_))
        if kind != "Threshold" and not last and draw(st.integers(0, 4)) == 0:
            outputs.append(nn_)  # a second Output from a hidden population
        b.pops.append(nn_)
        prev = nn_
    outputs.append(prev)
    for i, o in enumerate(dict.fromkeys(outputs)):
        b.add(f"output{i}" if i else "output",
              nir.Output(output_type={"output": np.array(b.shapes[o])}), b.shapes[o], o)
    g = nir.NIRGraph(nodes=b.nodes, edges=b.edges, type_check=False)
    return g, shape


# ------------------------------------------------------------------------------ mutations
# Each: (graph, draw) -> the culprit node name or None; mutates the graph in place. The
# result must be refused with a SpinnqError (never another exception, never a hang).
def _pick(draw, g: nir.NIRGraph, types=None, attr: str | None = None) -> str | None:
    names = [n for n, v in g.nodes.items()
             if (types is None or isinstance(v, types)) and (attr is None or hasattr(v, attr))]
    return draw(st.sampled_from(sorted(names))) if names else None


def m_weight_shape(g, draw):
    n = _pick(draw, g, (nir.Affine, nir.Linear, nir.Conv2d))
    if n is None:
        return None
    w = np.asarray(g.nodes[n].weight)
    axis = draw(st.integers(0, 1))  # channels/features: a kernel axis may still fit
    g.nodes[n].weight = np.concatenate([w, np.take(w, [0], axis=axis)], axis=axis)
    return n


def m_weight_ndim(g, draw):
    n = _pick(draw, g, (nir.Affine, nir.Linear, nir.Conv2d))
    if n is None:
        return None
    g.nodes[n].weight = np.asarray(g.nodes[n].weight).reshape(-1)[:, None, None]
    return n


def m_bias_shape(g, draw):
    n = _pick(draw, g, (nir.Affine,))
    if n is None:
        return None
    g.nodes[n].bias = np.zeros(np.size(g.nodes[n].bias) + draw(st.integers(1, 3)), np.float32)
    return n


def m_param_shape(g, draw):
    n = _pick(draw, g, attr="r")
    if n is None:
        return None
    v = g.nodes[n]
    attr = draw(st.sampled_from([a for a in ("r", "tau", "tau_mem", "v_threshold")
                                 if hasattr(v, a)]))
    setattr(v, attr, np.ones(np.size(getattr(v, attr)) + 1, np.float32))
    return n


def m_input_shape(g, draw):
    new = np.array(draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))
    g.nodes["input"].input_type = {"input": new}
    g.nodes["input"].output_type = {"output": new}
    return "input"


def m_bad_input_shape(g, draw):
    bad = draw(st.sampled_from([np.array([0]), np.array([-3, 2]), np.array([]),
                                np.array([2**40])]))
    g.nodes["input"].input_type = {"input": bad}
    g.nodes["input"].output_type = {"output": bad}
    return "input"


def m_remove_edge(g, draw):
    into_real = [e for e in g.edges if not isinstance(g.nodes[e[1]], nir.Output)
                 and sum(d == e[1] for _, d in g.edges) == 1]
    if not into_real:
        return None
    e = draw(st.sampled_from(into_real))
    g.edges.remove(e)
    return e[1]


def m_dangling_edge(g, draw):
    src = _pick(draw, g)
    g.edges.append((src, "ghost"))
    return "ghost"


def m_unknown_type(g, draw):
    class Mystery(nir.NIRNode):  # a node type nir has but spinnq does not know
        def __init__(self):
            self.input_type = {"input": np.array([1])}
            self.output_type = {"output": np.array([1])}
            self.metadata = {}

    n = _pick(draw, g, (nir.LIF, nir.IF, nir.CubaLIF, nir.Affine, nir.Linear, nir.Conv2d))
    if n is None:
        return None
    g.nodes[n] = Mystery()
    return n


def m_nonfinite(g, draw):
    n = _pick(draw, g, (nir.Affine, nir.Linear, nir.Conv2d, nir.LIF, nir.IF, nir.CubaLIF,
                        nir.LI, nir.CubaLI, nir.I, nir.Scale, nir.Delay, nir.Threshold))
    if n is None:
        return None
    v = g.nodes[n]
    attrs = [a for a in ("weight", "bias", "tau", "tau_mem", "tau_syn", "r", "v_threshold",
                         "v_leak", "w_in", "scale", "delay", "threshold")
             if getattr(v, a, None) is not None]
    attr = draw(st.sampled_from(attrs))
    arr = np.array(getattr(v, attr), dtype=np.float32, copy=True)
    arr.reshape(-1)[draw(st.integers(0, max(arr.size - 1, 0)))] = draw(
        st.sampled_from([np.nan, np.inf, -np.inf]))
    setattr(v, attr, arr)
    return n


def m_bad_tau(g, draw):
    n = _pick(draw, g, (nir.LIF, nir.CubaLIF, nir.LI, nir.CubaLI))
    if n is None:
        return None
    v = g.nodes[n]
    attr = draw(st.sampled_from([a for a in ("tau", "tau_mem", "tau_syn") if hasattr(v, a)]))
    arr = np.array(getattr(v, attr), dtype=np.float32, copy=True)
    arr.reshape(-1)[0] = draw(st.sampled_from([0.0, -1e-3, -0.0]))
    setattr(v, attr, arr)
    return n


def m_negative_delay(g, draw):
    n = _pick(draw, g, (nir.Delay,))
    if n is None:
        return None
    g.nodes[n].delay = -np.abs(np.asarray(g.nodes[n].delay)) - DT
    return n


def m_algebraic_loop(g, draw):
    weights = [n for n, v in g.nodes.items() if isinstance(v, nir.Affine | nir.Linear)
               and v.weight.shape[0] == v.weight.shape[1]]
    if not weights:
        return None
    n = draw(st.sampled_from(sorted(weights)))
    g.edges.append((n, n))  # a weight layer feeding itself with no neuron between
    return n


def m_empty(g, draw):
    g.nodes.clear()
    g.edges.clear()
    return None


def m_only_io(g, draw):
    for n in [n for n, v in g.nodes.items() if not isinstance(v, nir.Input | nir.Output)]:
        del g.nodes[n]
    g.edges[:] = [e for e in g.edges if e[0] in g.nodes and e[1] in g.nodes]
    return None


def m_no_output(g, draw):
    for n in [n for n, v in g.nodes.items() if isinstance(v, nir.Output)]:
        del g.nodes[n]
    g.edges[:] = [e for e in g.edges if e[0] in g.nodes and e[1] in g.nodes]
    return None


def m_two_inputs(g, draw):
    g.nodes["input2"] = nir.Input(input_type={"input": np.array([3])})
    return "input2"


def m_huge(g, draw):
    """A graph asking for far more memory than any machine has: refused before allocating."""
    big = draw(st.sampled_from([2**14, 2**20, 2**31]))
    g.nodes["input"].input_type = {"input": np.array([4, big, big])}
    g.nodes["input"].output_type = {"output": np.array([4, big, big])}
    first = [d for s, d in g.edges if s == "input"]
    for f in first:
        g.nodes[f] = nir.Conv2d(input_shape=(big, big), weight=np.ones((64, 4, 1, 1),
                                                                       np.float32),
                                stride=1, padding=0, dilation=1, groups=1,
                                bias=np.zeros(64, np.float32))
    return first[0] if first else "input"


def m_conv_params(g, draw):
    n = _pick(draw, g, (nir.Conv2d,))
    if n is None:
        return None
    v = g.nodes[n]
    attr, val = draw(st.sampled_from([("stride", 0), ("stride", -1), ("dilation", 0),
                                      ("padding", -5), ("groups", 0), ("groups", 7),
                                      ("padding", "bogus"), ("stride", np.array([1, 2, 3]))]))
    setattr(v, attr, val)
    return n


def m_pool_params(g, draw):
    n = _pick(draw, g, (nir.SumPool2d, nir.AvgPool2d))
    if n is None:
        return None
    attr, val = draw(st.sampled_from([("kernel_size", np.array([0, 0])),
                                      ("stride", np.array([0, 0])),
                                      ("kernel_size", np.array([50, 50])),
                                      ("padding", np.array([-1, -1]))]))
    setattr(g.nodes[n], attr, val)
    return n


def m_flatten_dims(g, draw):
    n = _pick(draw, g, (nir.Flatten,))
    if n is None:
        return None
    g.nodes[n].start_dim = draw(st.sampled_from([7, -9, 3]))
    return n


def m_string_param(g, draw):
    n = _pick(draw, g, (nir.LIF, nir.IF, nir.CubaLIF, nir.Affine, nir.Linear, nir.Conv2d))
    if n is None:
        return None
    v = g.nodes[n]
    attr = "weight" if hasattr(v, "weight") else "v_threshold"
    setattr(v, attr, draw(st.sampled_from(["abc", None, np.array(["x", "y"]),
                                           np.array([[1 + 2j]])])))
    return n


MUTATIONS: dict[str, Callable] = {f.__name__[2:]: f for f in (
    m_weight_shape, m_weight_ndim, m_bias_shape, m_param_shape, m_input_shape,
    m_bad_input_shape, m_remove_edge, m_dangling_edge, m_unknown_type, m_nonfinite, m_bad_tau,
    m_negative_delay, m_algebraic_loop, m_empty, m_only_io, m_no_output, m_two_inputs, m_huge,
    m_conv_params, m_pool_params, m_flatten_dims, m_string_param)}
# Mutations that may leave a graph that is still valid (the result may then run).
MAY_STAY_VALID = {"input_shape", "remove_edge", "flatten_dims"}
