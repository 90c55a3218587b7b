"""The data that flows through the SpiNNaker2 stage: compile -> place -> emulate -> energy.

Plain dataclasses, no behaviour beyond small derived properties, so every step of `s2/` (and
the energy model and the report) agrees on one shape of data:

    compile(Graph, S2Config)   -> Program    populations and projections in chip units
    place(Program, ...)        -> Placement  which PE of which chip holds which neurons
    emulate(Program, x, ...)   -> Run        spikes, voltages (NIR units) and activity counters
    energy(Placement, Run, ..) -> Cost       (s2/energy.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

# Activity counters the emulator keeps per population and step (summed over the neurons of
# the population, averaged over the batch: "per inference"). The energy model turns them
# into busy cycles; keep the names in one place.
COUNTERS = (
    "neuron_updates",  # neurons updated (every neuron, every step)
    "spikes",  # spikes emitted by the population
    "syn_events",  # synaptic events delivered *into* the population (spikes x fan-out)
    "packets_in",  # spike packets received by the population's PEs (one per source spike)
    "macs",  # accelerator multiply-accumulates (conv projections on the MAC array)
)


@dataclass
class Population:
    """A group of neurons of one chip model, in chip units (weights are integers)."""

    name: str  # the NIR node it comes from
    model: str  # spike_list | lif_no_delay | lif_conv2d | lif_curr_exp_no_delay | lif
    shape: tuple[int, ...]
    params: dict[str, np.ndarray] = field(default_factory=dict)  # alpha, threshold, i_offset...
    v_scale: np.ndarray | float = 1.0  # chip voltage / NIR voltage
    record_only: bool = False  # non-spiking read-out (LI, CubaLI, I): never fires
    neurons_per_pe: int = 0  # 0: the model's default

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Projection:
    """Synapses from one population to another, integer weights in the target's scale."""

    pre: str
    post: str
    kind: str  # dense | conv | pool (sparse) ; recurrent edges are dense with pre == post
    # int8 chip integers: (post, pre) for dense (compile stores it column-major, so a pre
    # neuron's fan-out is contiguous); (C_out, C_in, kh, kw) for conv and pool. Sum or
    # multiply them in a wider type (numpy keeps int8 arithmetic in int8).
    weight: np.ndarray
    w_scale: float  # integer weight = round(w_nir * w_scale)
    delay: int = 1  # steps between a spike and its effect (>= 1 on the chip)
    conv: dict = field(default_factory=dict)  # stride, padding, pool (fused SumPool kernel)
    saturated: int = 0  # weights clipped to the integer range
    bits: int = 8
    sign: str = "both"  # lif_curr_exp splits into excitatory/inhibitory

    @property
    def n_synapses(self) -> int:
        return int(np.count_nonzero(self.weight))


@dataclass
class Program:
    """A compiled network: what would be loaded onto the chip."""

    populations: dict[str, Population]
    projections: list[Projection]
    input: str
    outputs: list[str]  # populations whose spikes/voltages are the network's output
    depth: int  # projections on the longest input -> output path (steps of latency)
    config: object = None  # the S2Config it was compiled with
    notes: list[str] = field(default_factory=list)  # what the user should know (read-outs...)


@dataclass
class PESlot:
    """One PE's share of a population."""

    chip: int
    pe: int
    population: str
    start: int  # first neuron (flat index) on this PE
    stop: int  # one past the last
    memory: dict[str, int] = field(default_factory=dict)  # bytes: weights, state, buffers...

    @property
    def bytes(self) -> int:
        return sum(self.memory.values())


@dataclass
class Placement:
    slots: list[PESlot]
    chips: int
    pes_per_chip: int
    memory_budget: int  # bytes per PE
    routing_entries: int = 0

    @property
    def pes(self) -> int:
        return len(self.slots)


@dataclass
class Run:
    """What the emulator recorded. Arrays (B, steps, *shape), voltages in NIR units."""

    spikes: dict[str, torch.Tensor]
    v: dict[str, torch.Tensor]
    counters: dict[str, dict[str, np.ndarray]]  # population -> counter name -> (steps,)
    steps: int
    saturations: int = 0  # integer overflows clipped during the run (synaptic sums)
