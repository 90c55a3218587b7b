"""The data that flows through the SpiNNaker2 stage: compile -> place -> emulate -> energy.

Plain dataclasses, no behaviour beyond small derived properties, so every step of `s2/` (and
the energy model and the report) agrees on one shape of data:

    compile(Graph, S2Config)   -> Program    populations and projections in chip units
    place(Program, ...)        -> Placement  which PE of which chip holds which neurons
    emulate(Program, x, ...)   -> Run        spikes, voltages (NIR units) and activity counters
    energy(Placement, Run, ..) -> Cost       (s2/energy.py)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.s2 import chip

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


# ----------------------------------------------------------------- stage configurations
# One small config per stage after compile (compile's own options are `S2Config`, which also
# carries these for the user's one-stop flags: `S2Config.arithmetic`, `.placement`,
# `.engine_config`).
ADD_ORDERS = ("input_first", "offset_first")  # (alpha v + I) + i_offset | (alpha v + i_off) + I
CUBA_ORDERS = ("current_first", "voltage_first")
ENGINES = ("auto", "events", "torch")  # emulator engine: events needs numba; auto picks it


def _one_of(name: str, val, allowed: tuple) -> None:
    if val not in allowed:
        raise InputError(f"{name} must be one of {allowed}, got {val!r}")


@dataclass(frozen=True)
class ChipArithmetic:
    """What the chip computes in one step of a population (section 3 of
    docs/spinnaker2-target.md): the reset rule, and its [assumed] points as options with the
    doc's defaults."""

    reset: str = "zero"  # zero (to v_reset) | subtract (v - threshold)
    fma: bool = False  # [assumed] alpha*v + I as one fused multiply-add
    add_order: str = "input_first"  # [assumed] add I, then i_offset
    cuba_order: str = "current_first"  # [assumed] lif_curr_exp: current, then v

    def __post_init__(self):
        _one_of("reset", self.reset, ("zero", "subtract"))
        _one_of("add_order", self.add_order, ADD_ORDERS)
        _one_of("cuba_order", self.cuba_order, CUBA_ORDERS)


@dataclass(frozen=True)
class PlaceConfig:
    """How `place` cuts populations onto PEs and chips (neurons per PE set at compile time
    live on each `Population`; these are the overrides and the limits)."""

    neurons_per_pe: dict[str, int] = field(default_factory=dict)  # per population override
    neurons_per_pe_default: int = 0  # global override; 0: the model's default (chip.py)
    memory_per_pe: int = chip.PE_DATA_BYTES  # bytes of data per PE
    pes_per_chip: int = chip.USABLE_PES_PER_CHIP
    max_chips: int = chip.CHIPS_PER_BOARD * 16  # placement refuses more than this


@dataclass(frozen=True)
class EngineConfig:
    """Which emulator engine runs a program, and the torch engine's block of steps (memory
    vs speed; exact either way)."""

    engine: str = "auto"  # events (numba, spike-driven) | torch | auto (events where it can)
    chunk: int = 128

    def __post_init__(self):
        _one_of("engine", self.engine, ENGINES)


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


@dataclass(frozen=True)
class Fold:
    """What compile folded into one projection, read by whoever maps the graph's weights to
    the chip's (calibration, fine-tuning) instead of re-deriving it: the graph's weight node
    and the factors compile applied to its weights before `round(w * w_scale)`
    (`folded_weights`), in compile's order and precision."""

    node: str | None  # the Affine/Linear/Conv2d node of the graph compile read (None: a
    #                   SumPool straight into neurons, fixed weights of 1)
    path: tuple[str, ...] = ()  # the nodes between the pre and the post population, in order
    pool: int = 0  # SumPool2d kernel (== stride) summing the pre spikes before the weights:
    #                fused into a conv, or folded into a dense matrix's columns
    pool_factor: float = 1.0  # AvgPool2d's 1/k^2 (compile sums, so it goes into the weights),
    #                           multiplied in float64 and stored in the weights' float dtype
    scales: tuple = ()  # each Scale node after the weights, applied in float64 in order: a
    #                     float, or a float64 array per output neuron where values differ
    delayed: bool = False  # a Delay on the path: the projection is one of its per-delay parts

    @property
    def factor(self) -> float | None:
        """The one number the node's weights are multiplied by (AvgPool's 1/k^2 x the
        Scales); None where a Scale differs per neuron."""
        prod = 1.0
        for s in self.scales:
            if np.ndim(s):
                return None
            prod *= float(s)
        return self.pool_factor * prod


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
    fold: Fold | None = None  # the graph's weights it came from, and the factors folded in


@dataclass
class Program:
    """A compiled network: what would be loaded onto the chip."""

    populations: dict[str, Population]
    projections: list[Projection]
    input: str
    outputs: list[str]  # populations whose spikes/voltages are the network's output
    depth: int  # projections on the longest input -> output path (steps of latency)
    notes: list[str] = field(default_factory=list)  # what the user should know (read-outs...)
    arithmetic: ChipArithmetic = field(default_factory=ChipArithmetic)  # what the chip computes
    engine: EngineConfig = field(default_factory=EngineConfig)  # how the emulator runs it


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


# ------------------------------------------------------------------- derived facts
def sum_bound(proj: Projection) -> float:
    """The largest |synaptic sum| one step of this projection can put into one neuron (sum of
    |w| over its fan-in; x k^2 for a fused k x k sum-pool), in row chunks so a large integer
    table needs no table-sized temporary."""
    w = np.asarray(proj.weight)
    if not w.size:
        return 0.0
    rows = w.reshape(w.shape[0], -1) if w.ndim != 2 or not w.flags.f_contiguous else w
    acc_t = np.float64 if w.dtype.kind == "f" else np.int32 if rows.shape[1] < 1 << 23 else np.int64
    if rows.flags.f_contiguous and not rows.flags.c_contiguous:  # compile's dense layout:
        acc = np.zeros(rows.shape[0], acc_t)  # walk the contiguous columns
        for j in range(rows.shape[1]):
            acc += np.abs(rows[:, j].astype(acc_t))
        big = float(acc.max())
    else:
        step = max(1, (1 << 22) // max(1, rows.shape[1]))
        big = max(float(np.abs(rows[i:i + step].astype(acc_t)).sum(1).max())
                  for i in range(0, rows.shape[0], step))
    return big * (proj.conv.get("pool", 0) ** 2 or 1) if proj.kind != "dense" else big


def folded_weights(w, fold: Fold) -> np.ndarray:
    """A weight node's values `w` as compile scales them for `fold`'s projection (float64,
    the node's shape: a folded pool's column expansion aside): AvgPool's 1/k^2 in the
    weights' float dtype, then each Scale in float64 (per output neuron: rows)."""
    w = np.asarray(w)
    if fold.pool_factor != 1.0:
        dtype = w.dtype if w.dtype.kind == "f" else np.float64
        w = (w.astype(np.float64) * fold.pool_factor).astype(dtype)
    w = w.astype(np.float64)
    for s in fold.scales:
        w = w * (s if np.ndim(s) == 0 else np.reshape(s, (-1,) + (1,) * (w.ndim - 1)))
    return w


def _crc(a) -> int:
    """CRC of an array's bytes in memory order (no copy for C- or Fortran-ordered arrays)."""
    a = np.asarray(a)
    if not a.flags.c_contiguous and a.flags.f_contiguous:
        a = a.T
    return zlib.crc32(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def fingerprint(program: Program) -> tuple:
    """A cheap key that changes when a program's weights or parameters change (CRC of their
    bytes), so per-program caches notice in-place edits."""
    return (tuple((_crc(p.weight), np.shape(p.weight), np.asarray(p.weight).dtype.str,
                   p.kind, p.delay, p.pre,
                   p.post, tuple(sorted((k, str(v)) for k, v in p.conv.items())))
                  for p in program.projections),
            tuple((n, p.record_only, p.shape, tuple((k, _crc(v)) for k, v in p.params.items()))
                  for n, p in program.populations.items()))
