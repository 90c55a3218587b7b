"""The quant stage for any NIR graph: calibration (PTQ chosen on the emulated chip),
hardware-aware fine-tuning, and evaluation on labelled spikes. (The integer formats are the
chip's: `spinnq.s2.formats`.)

    x, y = load_data("D.npz", graph)                       # the data contract, checked
    res = evaluate(graph, (x, y), target="both")           # float reference and chip
    cal = calibrate(graph, (x, y), bits=8)                 # cal.graph: scales in metadata
    ft = finetune(cal.graph, (x, y), epochs=5)             # ft.graph: never worse than PTQ
"""

from spinnq.quant.calibration import Calibration, calibrate
from spinnq.quant.data import load_data
from spinnq.quant.evaluation import EvalResult, TargetResult, evaluate
from spinnq.quant.finetuning import ChipNet, FinetuneResult, finetune

__all__ = ["Calibration", "ChipNet", "EvalResult", "FinetuneResult", "TargetResult",
           "calibrate", "evaluate", "finetune", "load_data"]
