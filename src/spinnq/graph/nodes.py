"""NIR node families and which stage takes which node: declared once, imported everywhere.

Every module that asks "is this node a neuron / a weight layer / a pool?" imports the answer
from here, so a new node type is added to its families in one place. Each stage's dispatch
table (`graph.model.SHAPE_RULES`, `graph.kernels.KERNELS`, `s2.compile.CHAIN_RULES` +
`NEURON_RULES`) must cover exactly the types this module says the stage supports
(`tests/graph/test_nodes.py`).
"""

from __future__ import annotations

import nir

# ------------------------------------------------------------------------------ families
# Neurons: a membrane per element; each becomes a population on the chip.
NEURONS: tuple[type, ...] = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI, nir.CubaLI, nir.I)
SPIKING_NEURONS: tuple[type, ...] = (nir.LIF, nir.IF, nir.CubaLIF)  # neurons that fire
READOUTS: tuple[type, ...] = (nir.LI, nir.CubaLI, nir.I)  # neurons that never fire (voltage)
SPIKING: tuple[type, ...] = (*SPIKING_NEURONS, nir.Threshold)  # nodes whose output is 0/1
# Output at step t depends on state from t - 1: a cycle through one of them is a recurrence,
# a cycle through none an algebraic loop.
STATEFUL: tuple[type, ...] = (*NEURONS, nir.Delay)
CURRENT_BASED: tuple[type, ...] = (nir.CubaLIF, nir.CubaLI)  # a synaptic current (tau_syn)
LEAKLESS: tuple[type, ...] = (nir.IF, nir.I)  # integrators: no tau, a per-step gain r
# The parameter that scales a neuron's whole input (what a factor in front of it folds into).
INPUT_GAIN: dict[type, str] = {nir.LIF: "r", nir.LI: "r", nir.IF: "r", nir.I: "r",
                               nir.CubaLIF: "w_in", nir.CubaLI: "w_in"}

# Weight layers: a weight array (and maybe a bias) applied to the input.
DENSE: tuple[type, ...] = (nir.Affine, nir.Linear)
CONVS: tuple[type, ...] = (nir.Conv1d, nir.Conv2d)
WEIGHTS: tuple[type, ...] = (*DENSE, *CONVS)
CHIP_WEIGHTS: tuple[type, ...] = (*DENSE, nir.Conv2d)  # those SpiNNaker2 has a projection for
POOLS: tuple[type, ...] = (nir.SumPool2d, nir.AvgPool2d)

# ---------------------------------------------------------------- what each stage takes
PORTS: tuple[type, ...] = (nir.Input, nir.Output)
# `graph.read_graph` / `from_nir` (a shape rule each) and the float reference simulator.
SIMULATED: tuple[type, ...] = (*PORTS, *WEIGHTS, nir.Scale, nir.Flatten, *POOLS, nir.Delay,
                               nir.Threshold, *NEURONS)
# `s2.compile` (AvgPool2d through `graph.rewrite.avgpool_to_sumpool`): no Conv1d, no
# Threshold (the chip's neurons fire; a bare threshold has no population).
COMPILED: tuple[type, ...] = (*PORTS, *CHIP_WEIGHTS, nir.Scale, nir.Flatten, *POOLS,
                              nir.Delay, *NEURONS)


def names(types: tuple[type, ...]) -> str:
    """'Affine, Linear, ...' for error messages."""
    return ", ".join(t.__name__ for t in types)
