"""The seed DVS-gesture SNN (mission.md, seed paper B) as a NIR graph with random seeded
weights, for the emulator benchmarks. Depends on nir and numpy only, so that a benchmark can
build it against any spinnq revision (engine_before_after.py runs old checkouts)."""

from __future__ import annotations

import math

import nir
import numpy as np

DT = 1e-4
BETA = 0.93
GAINS = {"c1": 2.0, "c2": 1.2, "c3": 1.0, "fc1": 2.0, "fc2": 2.0}  # keep every layer active


def seed_network(seed: int = 0) -> nir.NIRGraph:
    """The seed DVS-gesture SNN as a NIR graph with random (seeded) weights."""
    rng = np.random.default_rng(seed)

    def w(shape, gain):
        fan_in = int(np.prod(shape[1:]))
        return (rng.normal(size=shape) * gain / math.sqrt(fan_in)).astype(np.float32)

    def conv(weight, stride, pad):
        return nir.Conv2d(None, weight, stride, pad, 1, 1, np.zeros(weight.shape[0]))

    def lif(shape):
        tau = DT / (1 - BETA)
        return nir.LIF(np.full(shape, tau), np.full(shape, tau / DT), np.zeros(shape),
                       np.ones(shape), np.zeros(shape))

    pool = lambda: nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))  # noqa: E731
    nodes = {
        "input": nir.Input(np.array([2, 32, 32])),
        "c1": conv(w((16, 2, 5, 5), GAINS["c1"]), 2, 1), "l1": lif((16, 15, 15)),
        "c2": conv(w((16, 16, 3, 3), GAINS["c2"]), 1, 1), "l2": lif((16, 15, 15)),
        "p2": pool(),
        "c3": conv(w((8, 16, 3, 3), GAINS["c3"]), 1, 1), "l3": lif((8, 7, 7)),
        "p3": pool(), "flat": nir.Flatten(np.array([8, 3, 3]), 0, -1),
        "fc1": nir.Linear(w((256, 72), GAINS["fc1"])), "l4": lif((256,)),
        "fc2": nir.Linear(w((11, 256), GAINS["fc2"])), "l5": lif((11,)),
        "output": nir.Output(np.array([11])),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True)))
