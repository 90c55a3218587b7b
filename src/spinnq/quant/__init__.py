"""The quant stage for any NIR graph: calibration (PTQ chosen on the emulated chip),
hardware-aware fine-tuning, and evaluation on labelled spikes. (The integer formats are the
chip's: `spinnq.s2.formats`.)

    x, y = load_data("D.npz", graph)                       # the data contract, checked
    res = evaluate(graph, (x, y), target="both")           # float reference and chip
    cal = calibrate(graph, (x, y), bits=8)                 # cal.graph: scales in metadata
    ft = finetune(cal.graph, (x, y), val=(vx, vy))         # ft.graph: never worse than PTQ
    q = quantize(graph, "calib.npz", bits=4, train="train.npz", val="val.npz")  # q.stages
"""

from spinnq.quant.calibration import Calibration, calibrate
from spinnq.quant.data import load_data
from spinnq.quant.evaluation import EvalResult, TargetResult, evaluate
from spinnq.quant.finetuning import ChipNet, FinetuneResult, finetune
from spinnq.quant.stages import Quantized, quantize

__all__ = ["Calibration", "ChipNet", "EvalResult", "FinetuneResult", "Quantized",
           "TargetResult", "calibrate", "evaluate", "finetune", "load_data", "quantize"]
