"""The quant stage for any NIR graph: integer formats, calibration (PTQ chosen on the emulated
chip), hardware-aware fine-tuning, and evaluation on labelled spikes.

    x, y = load_data("D.npz", graph)                       # the data contract, checked
    res = evaluate(graph, (x, y), target="both")           # float reference and chip
    cal = calibrate(graph, (x, y), bits=8)                 # cal.graph: scales in metadata
"""

from spinnq.quant.calibrate import Calibration, calibrate
from spinnq.quant.data import load_data
from spinnq.quant.evaluate import EvalResult, TargetResult, evaluate

__all__ = ["Calibration", "EvalResult", "TargetResult", "calibrate", "evaluate", "load_data"]
