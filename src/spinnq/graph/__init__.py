"""NIR in and out, and the float reference simulator of any NIR graph."""

from spinnq.graph.model import Graph, from_nir, read_graph, write_graph
from spinnq.graph.simulate import SimConfig, Simulator, Traces, simulate

__all__ = ["Graph", "SimConfig", "Simulator", "Traces", "from_nir", "read_graph", "simulate",
           "write_graph"]
