"""Export a `SpikingSequential` to NIR: a dictionary from layer type to a small function.

Neurons map so that NIR's forward-Euler ODE reproduces the torch step exactly:
    LIF(beta) -> nir.LIF(tau = dt / (1 - beta), r = tau / dt, v_leak = 0)   (beta < 1)
    LIF(1)    -> nir.IF(r = 1)          LI(beta) -> nir.LI(...)     LI(1) -> nir.I(r = 1)
because v + dt/tau (0 - v + r x) = beta v + x. Quantised layers export their chip weights
(integers / scale, as floats) with `metadata["w_scale"]`, so deployment recovers the exact
integers instead of choosing a new scale. The graph records its reset rule, dt and
convention (`spinnq.graph.meta`), so `spinnq simulate/deploy/energy` run it as trained.
"""

from __future__ import annotations

from collections.abc import Callable

import nir
import numpy as np
from torch import nn

from spinnq.config import DEFAULT_DT
from spinnq.errors import GraphError
from spinnq.graph.meta import stamp
from spinnq.graph.model import from_nir
from spinnq.nn.layers import QuantConv2d, QuantLinear, SpikingSequential, SumPool2d
from spinnq.nn.neurons import LI, LIF


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _weight(layer) -> tuple[np.ndarray, dict]:
    if isinstance(layer, QuantLinear | QuantConv2d):
        return _np(layer.quant_weight()), {"w_scale": float(layer.w_scale()),
                                           "bits": int(layer.bits)}
    return _np(layer.weight), {}


def _linear(layer: nn.Linear, shape, dt) -> nir.NIRNode:
    w, meta = _weight(layer)
    node = (nir.Affine(w, _np(layer.bias)) if layer.bias is not None else nir.Linear(w))
    node.metadata = meta
    return node


def _conv(layer: nn.Conv2d, shape, dt) -> nir.NIRNode:
    w, meta = _weight(layer)
    bias = _np(layer.bias) if layer.bias is not None else np.zeros(w.shape[0], np.float32)
    if isinstance(layer.padding, str):
        raise GraphError(f"Conv2d padding '{layer.padding}' not exported; use integers")
    node = nir.Conv2d(input_shape=tuple(shape[1:]), weight=w, stride=layer.stride,
                      padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                      bias=bias)
    node.metadata = meta
    return node


def _lif(layer: LIF, shape, dt) -> nir.NIRNode:
    ones = np.ones(shape, np.float32)
    thr = ones * layer.threshold
    if layer.beta == 1.0:
        return nir.IF(r=ones, v_threshold=thr, v_reset=0 * ones)
    tau = dt / (1.0 - layer.beta)
    return nir.LIF(tau=ones * tau, r=ones * (tau / dt), v_leak=0 * ones, v_threshold=thr,
                   v_reset=0 * ones)


def _li(layer: LI, shape, dt) -> nir.NIRNode:
    ones = np.ones(shape, np.float32)
    if layer.beta == 1.0:
        return nir.I(r=ones)
    tau = dt / (1.0 - layer.beta)
    return nir.LI(tau=ones * tau, r=ones * (tau / dt), v_leak=0 * ones)


def _pool(layer: SumPool2d, shape, dt) -> nir.NIRNode:
    k = np.array([layer.kernel_size] * 2)
    return nir.SumPool2d(kernel_size=k, stride=np.array([layer.stride] * 2),
                         padding=np.array([layer.padding] * 2))


def _flatten(layer: nn.Flatten, shape, dt) -> nir.NIRNode:
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


EXPORTERS: dict[type, Callable] = {
    nn.Linear: _linear, QuantLinear: _linear,
    nn.Conv2d: _conv, QuantConv2d: _conv,
    LIF: _lif, LI: _li, SumPool2d: _pool, nn.Flatten: _flatten,
}


def _reset(model: SpikingSequential) -> str | None:
    """The model's reset rule, recorded in the graph (NIR has no field for it, and every
    spinnq stage runs one rule per graph); None when it has no spiking layer."""
    resets = {m.reset for m in model if isinstance(m, LIF)}
    if len(resets) > 1:
        raise GraphError(f"the model mixes resets {sorted(resets)}: a graph runs with one reset "
                         "rule (SpiNNaker2 sets it per run); use one for every LIF layer")
    return resets.pop() if resets else None


def to_nir(model: SpikingSequential, input_shape: tuple[int, ...], dt: float = DEFAULT_DT,
           names: list[str] | None = None) -> nir.NIRGraph:
    """The NIR graph of a sequential spiking model (validated before it is returned)."""
    import torch

    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(input_shape))}
    edges, prev, shape = [], "input", tuple(input_shape)
    names = names or [str(i) for i in range(len(model))]
    with torch.no_grad():
        x = torch.zeros((1, 1, *input_shape))
        for name, layer in zip(names, model, strict=True):
            fn = EXPORTERS.get(type(layer))
            if fn is None:
                raise GraphError(f"layer {name} ({type(layer).__name__}) has no NIR export; "
                                 f"exportable: {', '.join(t.__name__ for t in EXPORTERS)}")
            nodes[name] = fn(layer, shape, dt)
            edges.append((prev, name))
            x = SpikingSequential(layer)(x)
            prev, shape = name, tuple(x.shape[2:])
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges.append((prev, "output"))
    g = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False,
                     metadata=stamp({}, reset=_reset(model), convention="nir", dt=float(dt)))
    from_nir(g)  # raises GraphError if anything is inconsistent
    return g
