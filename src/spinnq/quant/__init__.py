"""The quant stage for any NIR graph: integer formats, calibration (PTQ chosen on the emulated
chip), hardware-aware fine-tuning, and evaluation on labelled spikes.

    x, y = load_data("D.npz", graph)                       # the data contract, checked
    res = evaluate(graph, (x, y), target="both")           # float reference and chip
    cal = calibrate(graph, (x, y), bits=8)                 # cal.graph: scales in metadata
    ft = finetune(cal.graph, (x, y), val=(vx, vy))         # ft.graph: never worse than PTQ
    q = quantize(graph, "calib.npz", bits=4, train="train.npz", val="val.npz")  # q.stages

Names are loaded on first use: the compiler imports `spinnq.quant.formats`, and the stage
functions import the compiler, so an eager import here would be a cycle.
"""

from importlib import import_module

_NAMES = {"Calibration": "calibration", "calibrate": "calibration", "EvalResult": "evaluation",
          "TargetResult": "evaluation", "evaluate": "evaluation", "load_data": "data",
          "ChipNet": "finetuning", "FinetuneResult": "finetuning", "finetune": "finetuning",
          "Quantized": "stages", "quantize": "stages"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(import_module(f"spinnq.quant.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'spinnq.quant' has no attribute {name!r}")
