"""Accuracy of a NIR graph on the emulated SpiNNaker2, in batches over a whole split, with the
activity counters averaged per gesture for the energy model.

The chip runs `T + depth` steps (the input's last frame needs `depth` more ticks to reach the
output population); the class is the output population with the most spikes over the run,
exactly the read-out of the torch model, whose counts are the same spikes `depth` steps
earlier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from spinnq.graph.model import Graph
from spinnq.s2 import S2Config, compile, place
from spinnq.s2.emulate import emulate
from spinnq.s2.program import Placement, Program, Run
from spinnq.tasks.common import progress
from spinnq.tasks.gesture.data import Frames


@dataclass
class ChipEval:
    accuracy: float
    counts: np.ndarray  # (N, classes) output spikes per sample
    program: Program
    placement: Placement
    run: Run  # counters averaged over all samples; spikes of the first batch
    seconds: float  # wall time of the emulation (measured)
    samples: int

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def chip_eval(graph: Graph, f: Frames, cfg: S2Config, batch: int = 64, quiet: bool = True,
              label: str = "chip") -> ChipEval:
    """Compile, place and emulate `graph` on every sample of `f`."""
    program = compile(graph, cfg)
    placement = place(program, cfg)
    out = program.outputs[0]
    counts, first, counters, sat = [], None, None, 0
    t0 = time.perf_counter()
    with progress(disable=quiet) as bar:
        task = bar.add_task(label, total=len(f), info="")
        for i in range(0, len(f), batch):
            x = torch.from_numpy(np.ascontiguousarray(f.x[i:i + batch])).float()
            run = emulate(program, x)
            counts.append(run.spikes[out].sum(1).reshape(len(x), -1).numpy())
            w = len(x)
            c = {p: {k: np.asarray(v, dtype=np.float64) * w for k, v in d.items()}
                 for p, d in run.counters.items()}
            counters = c if counters is None else {
                p: {k: counters[p][k] + c[p][k] for k in d} for p, d in c.items()}
            sat += run.saturations
            if first is None:
                first = run
            bar.update(task, advance=w)
    seconds = time.perf_counter() - t0
    n = max(len(f), 1)
    avg = {p: {k: v / n for k, v in d.items()} for p, d in (counters or {}).items()}
    merged = Run(first.spikes, first.v, avg, first.steps, sat) if first else None
    cnt = np.concatenate(counts) if counts else np.zeros((0, 0))
    acc = float((cnt.argmax(1) == f.y).mean()) if len(f) else float("nan")
    return ChipEval(acc, cnt, program, placement, merged, seconds, len(f))
