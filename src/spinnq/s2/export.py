"""Write the integer-valued NIR graph a real SpiNNaker2 takes as it is.

py-spinnaker2's `s2_nir.from_nir(graph, ConversionConfig(scale_weights=False, ...))` uses the
graph's weights as the chip's integers and derives thresholds with a weight scale of 1. So the
exported graph carries, for every target population with scale `w_scale`:

  weights            -> the integers (rounded as the compiler rounds: dense to nearest, conv
                        truncated; clipped to the model's range, never wrapped)
  biases             -> bias * w_scale
  v_threshold, v_leak, v_reset of the neuron  -> times w_scale

and the scale in each weight node's metadata (`s2_w_scale`; not `w_scale`, which would tell
the compiler to scale again). Compiling the export with `weight_scale='none'` gives the same
program as compiling the original with the chosen scale.
"""

from __future__ import annotations

import copy

import nir
import numpy as np

from spinnq.errors import CompileError
from spinnq.graph.conventions import REGISTRY
from spinnq.graph.model import Graph
from spinnq.graph.nodes import DENSE, NEURONS
from spinnq.graph.rewrite import avgpool_to_sumpool, delayed_reset_projection
from spinnq.s2.compile import (
    EXPORTED_KEY,
    W_SCALE_KEY,
    S2Config,
    chains_into,
    compile,
)
from spinnq.s2.formats import to_int
from spinnq.settings import bits_value

NEURON_SCALED = ("v_threshold", "v_leak", "v_reset")
ROUNDING = {nir.Conv2d: "conv_rounding"} | {t: "dense_rounding" for t in DENSE}


def export_graph(graph: Graph, cfg: S2Config = S2Config()) -> nir.NIRGraph:
    """The integer NIR graph of `graph` under `cfg` (see the module docstring)."""
    scales = [n for n, v in graph.nodes.items() if isinstance(v, nir.Scale)]
    if scales:  # compile folds them into the weights; the exported graph would disagree
        raise CompileError("export does not handle Scale nodes yet: fold the scale into the "
                           "weight layer before exporting", node=scales[0])
    graph = avgpool_to_sumpool(graph)
    if cfg.delayed_reset:  # the self-projections become weight nodes of the exported graph
        graph, _ = delayed_reset_projection(graph)
    program = compile(graph, cfg)
    conv = REGISTRY[cfg.convention]
    nodes = {k: copy.deepcopy(v) for k, v in graph.nodes.items()}
    for name, node in graph.nodes.items():
        if not isinstance(node, NEURONS):
            continue
        ins = [p for p in program.projections if p.post == name]
        w_scale, bits = ins[0].w_scale, ins[0].bits
        for chain in chains_into(graph, name, cfg):
            for wn in chain.weight_nodes:
                src = nodes[wn]
                w_int, _ = to_int(src.weight, w_scale, bits, getattr(cfg, ROUNDING[type(src)]))
                src.weight = w_int.astype(np.float32)
                if getattr(src, "bias", None) is not None:
                    src.bias = (np.asarray(src.bias, dtype=np.float64) * w_scale
                                ).astype(np.float32)
                meta = dict(getattr(src, "metadata", None) or {})
                meta.pop(W_SCALE_KEY, None)
                meta[EXPORTED_KEY] = float(w_scale)
                meta["bits"] = int(bits)  # the width the chip stores this layer in
                src.metadata = meta
        # e.g. Norse's current jump (gain w_in) in NIR's reading (gain dt/tau_syn * w_in)
        nodes[name] = conv.exported_node(nodes[name], cfg.dt)
        for attr in NEURON_SCALED:
            if getattr(nodes[name], attr, None) is not None:
                setattr(nodes[name], attr,
                        np.asarray(getattr(node, attr), dtype=np.float64) * w_scale)
    meta = dict(graph.metadata) | {"spinnq.target": "spinnaker2",
                                   "spinnq.weight_scale": str(cfg.weight_scale),
                                   "spinnq.bits": bits_value(cfg.bits,
                                                             cfg.bits_by_population),
                                   "spinnq.scale_weights": False,
                                   "spinnq.convention": "nir" if conv.exports_as_nir
                                   else cfg.convention,  # translated above, or kept
                                   "spinnq.reset": cfg.reset, "spinnq.dt": float(cfg.dt),
                                   "spinnq.integrator": cfg.integrator,
                                   # the late reset is a weight node of this graph now
                                   "spinnq.delayed_reset": False}
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=meta, type_check=False)
