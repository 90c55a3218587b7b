"""PTQ of the P-SNN as in the seed: per population, a scale factor from a percentile of |w|
maps the float weights onto [-127, 127]; the population's threshold is multiplied by the
same factor, so the integer network computes what the float one did up to rounding and
clipping. The percentile is chosen on validation data *on the emulated chip*.

    w_scale = 127 / percentile(|w entering the population|, p)
    w_int   = clip(round|trunc(w * w_scale), -127, 127)
    threshold_chip = v_threshold * w_scale          (LIF with r = tau/dt, see nn.export)

The arithmetic lives in one place for the whole project (`quant.formats` and the compiler's
per-population scaling, `S2Config.weight_scale`); `population_scales` reads back what a
given percentile produced, so the run's report states every population's factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinnq.graph.model import Graph
from spinnq.quant.formats import ScaleMode
from spinnq.s2 import S2Config, compile
from spinnq.tasks.gesture.data import Frames
from spinnq.tasks.gesture.evaluate import chip_eval

PERCENTILES = ("p99", "p99.9", "p99.99", "max")  # 'max' is the 100th percentile


@dataclass
class PTQResult:
    mode: str  # the chosen ScaleMode text
    table: list[dict]  # per percentile: val accuracy, scales, saturated weights


def population_scales(graph: Graph, mode: str, cfg: S2Config = S2Config()) -> dict[str, dict]:
    """Per population: the weight scale, the chip threshold and the float threshold it came
    from, and how many weights were clipped -- read from the compiled program."""
    prog = compile(graph, cfg.with_(weight_scale=str(ScaleMode.parse(mode)),
                                    graph_scales=False))
    out = {}
    for name, pop in prog.populations.items():
        ins = [p for p in prog.projections if p.post == name]
        if not ins:
            continue
        node = graph.nodes[name]
        v_th = float(np.asarray(node.v_threshold).ravel()[0])
        out[name] = {"w_scale": float(ins[0].w_scale),
                     "threshold_chip": float(np.asarray(pop.params["threshold"]).ravel()[0]),
                     "threshold_float": v_th,
                     "saturated": int(sum(p.saturated for p in ins))}
    return out


def sweep(graph: Graph, val: Frames, cfg: S2Config, percentiles=PERCENTILES,
          batch: int = 64, quiet: bool = True) -> PTQResult:
    """Validation accuracy on the emulated chip for each percentile; the best wins (ties go
    to the higher percentile: fewer clipped weights)."""
    table = []
    for p in percentiles:
        mode = str(ScaleMode.parse(p))
        ev = chip_eval(graph, val, cfg.with_(weight_scale=mode, graph_scales=False), batch,
                       quiet, label=f"PTQ {mode} (val)")
        scales = population_scales(graph, mode, cfg)
        table.append({"percentile": mode, "val_accuracy": ev.accuracy,
                      "saturated": sum(s["saturated"] for s in scales.values()),
                      "scales": {k: s["w_scale"] for k, s in scales.items()}})
    order = {str(ScaleMode.parse(p)): i for i, p in enumerate(percentiles)}
    best = max(table, key=lambda r: (r["val_accuracy"], order[r["percentile"]]))
    return PTQResult(best["percentile"], table)
