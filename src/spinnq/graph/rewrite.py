"""Graph rewrites that keep a graph's meaning and bring it into a form SpiNNaker2 can map.

`avgpool_to_sumpool`: snnTorch's only pooling export is `AvgPool2d`; the chip has sum pooling
only (a pooling projection of weight 1, or a pool fused into the next weight layer). An
average is a sum times 1/k^2, and that factor can be moved into whatever consumes the pool
linearly: the next weight layer (through Flatten), or a neuron's input gain (`r`, or `w_in`
for CubaLIF). Exact in real arithmetic (and bit for bit in float32 when k^2 is a power of
two). `spinnq.s2.compile` applies it, so the emulator, the exported graph and anything built
on the compiled program see the same weights.

`delayed_reset_projection`: snnTorch's one-step-late subtract reset as a self-projection, for
`S2Config(convention="snntorch", reset="subtract", delayed_reset=True)`.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import nir
import numpy as np

from spinnq.errors import GraphError
from spinnq.graph.model import Graph, from_nir
from spinnq.graph.nodes import INPUT_GAIN, WEIGHTS

LINEAR = (*WEIGHTS, nir.Scale)  # a factor in front of them scales their weights


def _fold_targets(graph: Graph, pool: str) -> list[str]:
    """The nodes whose input gain must carry the pool's 1/k^2: every consumer reached through
    Flatten nodes, each fed by this path alone (scaling it must not scale another input)."""
    targets, todo = [], list(graph.successors(pool))
    while todo:
        d = todo.pop()
        node = graph.nodes[d]
        if len(graph.predecessors(d)) != 1:
            raise GraphError(f"cannot fold AvgPool2d '{pool}' into '{d}': '{d}' has other "
                             "inputs the 1/k^2 would scale too", file=graph.source, node=pool)
        if isinstance(node, nir.Flatten):
            todo += graph.successors(d)
        elif isinstance(node, LINEAR) or type(node) in INPUT_GAIN:
            targets.append(d)
        else:
            raise GraphError(f"cannot fold AvgPool2d '{pool}' into '{d}' "
                             f"({type(node).__name__}): the 1/k^2 of an average pool goes into "
                             "the next weight layer or neuron (SpiNNaker2 pools by summing)",
                             file=graph.source, node=pool)
    return targets


def _scaled(node: nir.NIRNode, factor: float) -> nir.NIRNode:
    out = copy.copy(node)
    attr = "scale" if isinstance(node, nir.Scale) else (
        "weight" if isinstance(node, LINEAR) else INPUT_GAIN[type(node)])
    val = np.asarray(getattr(node, attr))
    dtype = val.dtype if val.dtype.kind == "f" else np.float64
    setattr(out, attr, (val.astype(np.float64) * factor).astype(dtype))
    return out


def _pair(value: object) -> np.ndarray:
    """A pool's kernel/stride/padding as (h, w): an int (0-d once read from a file) is both."""
    return np.broadcast_to(np.ravel(np.asarray(value)).astype(np.int64), (2,)).copy()


def avgpool_to_sumpool(graph: Graph) -> Graph:
    """`graph` with every AvgPool2d a SumPool2d and its 1/k^2 folded into its consumers
    (see the module docstring); `GraphError` naming the pool where that is not possible.
    Returns `graph` itself when it has no AvgPool2d."""
    factors = avgpool_factors(graph)
    if not factors:
        return graph
    nodes = dict(graph.nodes)
    for t, f in factors.items():
        nodes[t] = _scaled(nodes[t], f)
    for name, node in graph.nodes.items():
        if isinstance(node, nir.AvgPool2d):
            nodes[name] = nir.SumPool2d(kernel_size=_pair(node.kernel_size),
                                        stride=_pair(node.stride), padding=_pair(node.padding))
    return replace(graph, nodes=nodes)


def avgpool_factors(graph: Graph) -> dict[str, float]:
    """The 1/k^2 `avgpool_to_sumpool` folds into each node (a weight layer, Scale or neuron
    fed by an AvgPool2d): what compile records as a projection's `Fold.pool_factor`."""
    out: dict[str, float] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.AvgPool2d):
            k2 = int(np.prod(np.broadcast_to(np.ravel(node.kernel_size).astype(int), (2,))))
            out |= dict.fromkeys(_fold_targets(graph, name), 1.0 / k2)
    return out


RESET_SUFFIX = ".delayed_reset"


def delayed_reset_projection(graph: Graph) -> tuple[Graph, list[str]]:
    """snnTorch's subtract reset on a chip that resets at once: `(graph, skipped)`.

    snnTorch subtracts v_th undecayed on the step *after* a spike; an immediate reset
    subtracts it before the decay, i.e. beta v_th. The difference, (1 - beta) v_th one step
    after each spike, is a self-inhibitory projection with one step of delay: every 1-D LIF
    node gets a recurrent `Linear(diag(-v_th / r))` (input gain a r, so the membrane loses
    exactly a v_th = (1 - beta) v_th). Exact in real arithmetic (tested: 0 mismatches against
    snnTorch). Skipped, and named in `skipped`: LIF nodes with a multi-dimensional shape (conv
    maps: a dense self-projection is not a conv population's input on SpiNNaker2) and
    CubaLIF nodes (a projection would pass through the synaptic current).
    """
    nodes, edges, skipped = dict(graph.nodes), list(graph.edges), []
    for name, node in graph.nodes.items():
        if isinstance(node, nir.CubaLIF) or (isinstance(node, nir.LIF)
                                             and len(graph.shapes[name]) != 1):
            skipped.append(name)
            continue
        if not isinstance(node, nir.LIF):
            continue
        n = graph.shapes[name][0]
        w = -np.broadcast_to(np.asarray(node.v_threshold, np.float64), (n,)) / np.broadcast_to(
            np.asarray(node.r, np.float64), (n,))
        self_name = name + RESET_SUFFIX
        nodes[self_name] = nir.Linear(np.diag(w))
        # a population with a recorded weight scale (QAT, calibrate) has one scale: its own
        scales = {(float(m["w_scale"]), m.get("bits")) for p in graph.predecessors(name)
                  for m in [getattr(graph.nodes[p], "metadata", None) or {}] if "w_scale" in m}
        if len(scales) == 1:
            s, b = scales.pop()
            nodes[self_name].metadata = {"w_scale": s, **({} if b is None else {"bits": b})}
        edges += [(name, self_name), (self_name, name)]
    if len(nodes) == len(graph.nodes):
        return graph, skipped
    g = from_nir(nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata),
                              type_check=False), source=graph.source)
    return g, skipped
