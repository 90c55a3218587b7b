"""How a graph is run by the quant stage: flags > the graph's metadata > the convention's
defaults > spinnq's defaults (`spinnq.graph.meta.run_settings`).

The single place that turns run settings into an `S2Config` (the chip) and a `SimConfig` (the
float reference), so `evaluate`, `calibrate`, `finetune` and the commands agree, and a graph
written by `spinnq quantize` runs as calibrated with no flag at all.
"""

from __future__ import annotations

from spinnq.graph import meta
from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig
from spinnq.s2.compile import W_SCALE_KEY, S2Config

DEFAULT_BITS = 8
WEIGHT_NODES = ("Affine", "Linear", "Conv2d", "Conv1d")


def has_scales(graph: Graph) -> bool:
    """Whether the graph's weight nodes carry integer scales (QAT, calibrate, finetune)."""
    return any(W_SCALE_KEY in (getattr(n, "metadata", None) or {})
               for n in graph.nodes.values() if type(n).__name__ in WEIGHT_NODES)


def settings(graph: Graph, *, reset: str | None = None, convention: str | None = None,
             dt: float | None = None, bits: int | None = None) -> dict:
    """The resolved {reset, convention, dt, bits}."""
    st = meta.run_settings(graph.metadata, graph.source, reset=reset, convention=convention,
                           dt=dt, bits=bits)
    return {"bits": DEFAULT_BITS, **st}


def configs(graph: Graph, *, reset: str | None = None, convention: str | None = None,
            dt: float | None = None, bits: int | None = None, weight_scale: str | None = None,
            integrator: str = "forward", **s2) -> tuple[S2Config, SimConfig]:
    """(S2Config, SimConfig) for `graph`. Without `weight_scale`, a graph whose weight nodes
    carry `w_scale` runs with those scales (graph_scales), any other with 'max'."""
    st = settings(graph, reset=reset, convention=convention, dt=dt, bits=bits)
    use_graph = weight_scale is None and has_scales(graph)
    cfg = S2Config(dt=st["dt"], reset=st["reset"], integrator=integrator,
                   weight_scale=weight_scale or "max", bits=st["bits"],
                   graph_scales=use_graph, convention=st["convention"], **s2)
    sim = SimConfig(dt=st["dt"], reset=st["reset"], integrator=integrator,
                    convention=st["convention"])
    return cfg, sim
