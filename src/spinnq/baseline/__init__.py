"""CPU/GPU baselines: the float network measured on this machine (latency, throughput,
energy when a meter is readable), plus published reference rows.

    from spinnq.baseline import measure, MeasureConfig, graph_fn, published_rows
    m = measure(model_or_fn, x[:1], device="cpu")        # Measured; m.row() -> report dict
    m = measure(graph_fn(graph), x[:1], device="cuda")   # the reference simulator on a GPU
"""

from spinnq.baseline.measure import MeasureConfig, Measured, graph_fn, measure
from spinnq.baseline.power import NvmlMeter, PowerSampler, RaplMeter
from spinnq.published import published_rows

__all__ = ["MeasureConfig", "Measured", "NvmlMeter", "PowerSampler", "RaplMeter", "graph_fn",
           "measure", "published_rows"]
