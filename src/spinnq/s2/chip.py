"""Every number spinnq assumes about SpiNNaker2, each with its source.

Sources (the project's evidence document, docs/spinnaker2-target.md, sections 4-6):
  [paper]   published SpiNNaker2 chip papers, as summarised in that document (section 4/5)
  [code]    py-spinnaker2 usage and converter code (s2_nir), and the public PE program of
            NESTML's SpiNNaker2 target (nest/nestml, pynestml/codegeneration/
            resources_spinnaker2: main.c, synapses.c, synapse_row.h, neuron.c,
            population_table_binary_search_impl.c, spike_processing.c)
  [trace]   measured in the NIR paper's SpiNNaker2 trace (tests/data/nir-paper/lif_spinnaker2.csv)
  [derived] computed here from the rows it names
  [quote]   a third party's figure (a tool's profile, a note quoting a paper)
  [fitted: to what] chosen so the model meets the named published rate (only the synapse
            word, to the published 12 M events/s per core); never to a published energy
  [assumed] not confirmed anywhere: an option elsewhere, this is its default

The energy model's constants are `Ranged`: a value inside the range its source allows, none
on a bound (tests/s2/test_energy_calibration.py); every energy figure is also given with all
of them at the low and at the high end. `ChipModel` holds them as data a user can read,
override (`spinnq energy --chip-model FILE`) and fit to a board (`spinnq energy-fit`).

What this table does not know: per-event energies measured on the chip (the energy model
derives them from CoreMark power), the exact cycle cost of each neuron model and of packet
handling in py-spinnaker2's PE software, and the default neurons per PE it chooses.
For the energy model also: router/NoC/IO power during a run (one named term,
`UNMODELLED_STATIC_W`, off by default), chip-to-chip link costs, the cost of a DVFS switch,
and how accelerator efficiency scales with voltage (the comparison with published runs:
`spinnq.s2.published_fit`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spinnq.errors import InputError

# --------------------------------------------------------------------------- architecture
PES_PER_CHIP = 152  # ARM Cortex-M4F PEs (38 quad-PEs) [paper]
USABLE_PES_PER_CHIP = 148  # about 148 usable for a network (the rest: system tasks) [paper]
PE_SRAM_BYTES = 128 * 1024  # SRAM per PE [paper]
PE_DATA_BYTES = 96 * 1024  # of which about 96 kB for data: weights, state, buffers [paper]
ROUTER_ENTRIES = 16_384  # multicast router table entries per chip [paper]
CHIPS_PER_BOARD = 48  # [paper]
MAC_ARRAY = (16, 4)  # int8 MACs per PE per cycle, 24-bit accumulators [paper]
ACCUMULATOR_BITS = 24  # [paper]

MAX_DELAY_STEPS = 8  # programmable delays of the plain `lif` model: 1..8 steps [code]


@dataclass(frozen=True)
class NeuronModel:
    """One py-spinnaker2 population model: what the chip stores and runs for it."""

    name: str
    weight_bits: int  # signed, symmetric weight range of its synapses [code]
    neurons_per_pe: int  # default; published deployments used 8 to 256 [code]; py-spinnaker2's
    #                      own defaults are not known [assumed: these]
    state_bytes: int  # float32 words per neuron (v, threshold, alpha, i_offset, + currents);
    #                   py-spinnaker2's exact data layout is not known [assumed: these]
    current_based: bool = False  # excitatory/inhibitory synaptic currents (lif_curr_exp*) [code]
    delays: bool = False  # programmable delays: sparse 16-bit synapse words [code]
    accelerated: bool = False  # synaptic input on the PE's MAC accelerator (conv) [code]
    source: bool = False  # a spike source, no neurons to update [code]


# The one table of chip models: compile picks a model per population, place sizes its PEs,
# the emulator engines and the energy model read what it does. Each field's source is in
# `NeuronModel` above ([code], or [assumed] for neurons per PE and state bytes).
MODELS: dict[str, NeuronModel] = {m.name: m for m in (
    NeuronModel("spike_list", 8, 256, 8, source=True),
    NeuronModel("lif_no_delay", 8, 250, 16),
    NeuronModel("lif_conv2d", 8, 256, 16, accelerated=True),
    NeuronModel("lif", 4, 250, 16, delays=True),
    NeuronModel("lif_curr_exp_no_delay", 8, 250, 28, current_based=True),
    NeuronModel("lif_curr_exp", 8, 250, 28, current_based=True, delays=True),
)}
# Views of the table by property [derived: MODELS]
WEIGHT_BITS = {n: m.weight_bits for n, m in MODELS.items() if not m.source}  # [derived]
CUBA_MODELS = tuple(n for n, m in MODELS.items() if m.current_based)  # [derived]
SPARSE_MODELS = tuple(n for n, m in MODELS.items() if m.delays)  # synapse words [derived]
ACCELERATED = tuple(n for n, m in MODELS.items() if m.accelerated)  # [derived]
ACC_LIMIT = float(2 ** (ACCUMULATOR_BITS - 1) - 1)  # synaptic sums saturate here [paper]

# Storage per PE, for the placement's memory check [assumed: these].
SYNAPSE_WORD_BYTES = 4  # sparse synapse word (weight, delay, target): pool, `lif` [assumed]
RECORD_BYTES_PER_NEURON = 8  # spike bit + voltage word of the current step, streamed out [assumed]
PE_FIXED_BYTES = 4096  # spike-packet buffers, routing keys, headers per PE [assumed]


# ------------------------------------------------------------------- operating points
@dataclass(frozen=True)
class OperatingPoint:
    """A DVFS performance level of a PE: supply voltage and clock."""

    name: str
    volts: float
    clock_hz: float
    pe_sleep_w: float  # one PE asleep (chip asleep power / PEs)  [derived]
    energy_per_cycle_j: float  # busy-cycle energy above sleep [derived]


CHIP_OFF_W = 0.0752  # chip, all PEs off [paper]
CHIP_ASLEEP_W = {0.5: 0.2354, 0.8: 0.5647}  # chip, all PEs asleep [paper]
CHIP_COREMARK_W = {0.5: 0.4246, 0.8: 1.2479}  # chip, CoreMark on all PEs [paper]
CLOCK_HZ = {0.5: 150e6, 0.8: 300e6}  # the highest clock at each voltage [paper]
# 4 performance levels per PE: two voltages x clock dividers [paper]; the dividers (1 and 2)
# are not published [assumed]. Leakage (asleep power) depends on the voltage only and the
# energy of a busy cycle (~C V^2) does not depend on the clock [assumed].
# Hoeppner et al.'s 4x span was measured across 0.7-1.0 V on the 28 nm prototype, not as a
# divider at one voltage [paper]: the divided levels (0.5V/75MHz, 0.8V/150MHz) are kept as
# fixed operating points a user can pick, but the chip software's DVFS (`dvfs`) uses only
# 0.5 V / 150 MHz and 0.8 V / 300 MHz (DVFS_LOW, DVFS_HIGH below) [code].
CLOCK_DIVIDERS = (2, 1)  # [assumed]


def _point(volts: float, divider: int) -> OperatingPoint:
    sleep_pe = (CHIP_ASLEEP_W[volts] - CHIP_OFF_W) / PES_PER_CHIP  # [derived] ~1.05 / 3.2 mW
    busy_pe = (CHIP_COREMARK_W[volts] - CHIP_ASLEEP_W[volts]) / PES_PER_CHIP
    name = f"{volts:g}V" if divider == 1 else f"{volts:g}V/{CLOCK_HZ[volts] / divider / 1e6:g}MHz"
    return OperatingPoint(name, volts, CLOCK_HZ[volts] / divider, sleep_pe,
                          busy_pe / CLOCK_HZ[volts])  # ~8.3 pJ at 0.5 V, ~15 pJ at 0.8 V


# The levels from slowest to fastest: 0.5V/75MHz, 0.5V (150 MHz), 0.8V/150MHz, 0.8V (300 MHz).
# 0.8V/150MHz is as fast as 0.5V and costs more: the lower bound never picks it. [derived]
OPERATING_POINTS = {p.name: p for p in sorted(
    (_point(v, d) for v in (0.5, 0.8) for d in CLOCK_DIVIDERS),
    key=lambda p: (p.clock_hz, p.volts))}


# ------------------------------------------------------- the PE program, cycle by cycle
# Busy cycles of a PE in one tick, following the NESTML SpiNNaker2 PE program [code]: the
# timer interrupt drains the received-packet queue (per packet: a binary search in the
# population table, then the loop over the row's 16-bit synapse words, each adding its weight
# into a ring-buffer slot), moves the current ring-buffer slot of each of the 2 synapse types
# into the float32 input buffers (per neuron), updates every neuron (float32), checks the
# thresholds, records, and sends one packet per target QPE of the PE for each spike
# (busy-waiting on the transmit register). Each constant is cycles on the Cortex-M4F.
# What the model does not know: the per-instruction timing of py-spinnaker2's own `lif*`
# binaries (NESTML's skeleton assumed shared), router/NoC/IO power beyond "all PEs off",
# chip-to-chip links (not charged), the cost of a DVFS switch (0), and how lif_conv2d drives
# the MAC accelerator (taken: the whole output frame of the PE whenever an input spiked).
SYN_EVENTS_PER_S_PER_CORE = 12e6  # up to 12 M synaptic events/s per core, all included [paper]
SYN_EVENTS_PER_S_PER_CHIP = 1.8e9  # at a 1 ms tick [paper]
NEURONS_PER_CHIP = 150_000  # at a 1 ms tick [paper]
NOC_CYCLES_PER_HOP = 5  # at 300 MHz [paper]
# one synaptic event all included: 300 MHz / 12 M/s = 25 cycles [derived]; the chip figure
# gives 148 x 300 MHz / 1.8 G/s = 24.7 [derived]
CYCLES_PER_SYN_EVENT_ALL_IN = CLOCK_HZ[0.8] / SYN_EVENTS_PER_S_PER_CORE
# a neuron at the chip's capacity: 148 x 300e3 cycles / 150,000 = 296 cycles per tick, all
# included [derived]: a neuron's whole work per tick cannot exceed it
NEURON_UPDATE_CYCLES_BOUND = USABLE_PES_PER_CHIP * CLOCK_HZ[0.8] * 1e-3 / NEURONS_PER_CHIP
# KerasSpiking's SpiNNaker2 profile: 2.19 nJ per neuron update (2019 test chip) [quote]; at this
# chip's ~15 pJ per busy cycle (0.8 V) that is ~146 cycles [derived]: the upper end of the
# neuron update's range below (an older chip, its figure all-in)
KERAS_SPIKING_NEURON_UPDATE_J = 2.19e-9  # [quote]
SYNAPSE_TYPES = 2  # excitatory and inhibitory ring buffers per neuron (SYNAPSE_TYPE_COUNT) [code]


@dataclass(frozen=True)
class Ranged:
    """One constant of the energy model: its value and the range its source allows."""

    value: float
    low: float
    high: float
    source: str  # [paper] / [code] / [derived] / [fitted: ...] / [assumed] and why these bounds
    unit: str = "cycles"

    def at(self, corner: str) -> float:
        """The value at a corner of the range: "value", "low" or "high"."""
        return {"value": self.value, "low": self.low, "high": self.high}[corner]


# The PE program's cycles per unit of work, each inside the range its source allows and none
# on a bound. Every energy figure is given at these values and at the low and high ends of
# all of them (`Cost.energy_low_j`/`energy_high_j`).
CYCLE_CONSTANTS: dict[str, Ranged] = {  # [code: the loops; cycles: each entry's source]
    # per PE and tick: timer interrupt entry/exit, queue drain set-up, spike-record clear and
    # copy-out header, time-done record, deadline check (main.c's timer callback)
    "tick_overhead": Ranged(2_000.0, 500.0, 10_000.0, "[assumed] a few hundred instructions "
                            "of interrupt and bookkeeping code; at most 3 % of a 1 ms tick"),
    # per received packet: queue pop and callback, row header reads, row DMA set-up
    "packet_rx": Ranged(60.0, 30.0, 150.0, "[assumed] callback + header + DMA set-up"),
    # per step of the population table's binary search: load key/mask, compare, branch;
    # steps = ceil(log2(entries + 1)), entries = source PEs sending to the PE [code]
    "lookup_step": Ranged(10.0, 5.0, 20.0, "[assumed] load, mask, compare, branch"),
    # per 16-bit synapse word: load, 3 shift/mask extractions, ring index, load-add-store
    # (_process_fixed_synapses): 12 M synaptic events/s per core = 25 cycles all included,
    # at the reference row (REFERENCE_ROW_WORDS) [fitted: 12 M synaptic events/s per core]
    "syn_word": Ranged(23.0, 10.0, CYCLES_PER_SYN_EVENT_ALL_IN, "[fitted: 12 M synaptic "
                       "events/s per core, 25 cycles all included] at least ~10 instructions"),
    # per neuron and synapse type: read + clear the ring-buffer slot, int -> float32, scale,
    # add into the input buffer (synapses_do_timestep_update)
    "delay_buffer": Ranged(12.0, 6.0, 24.0, "[assumed] load, clear, convert, multiply-add"),
    # per neuron: float32 state update, threshold check and reset, input-buffer clear
    # (neuron_do_timestep_update): tens of cycles on a Cortex-M4F
    "neuron_update": Ranged(60.0, 30.0, 146.0, "[code: NESTML's neuron loop, tens of "
                            "instructions] low: the bare float32 LIF step; high: KerasSpiking's "
                            "2.19 nJ per update [quote] at ~15 pJ per cycle [derived]"),
    # per recorded neuron and tick: one voltage word and its share of the spike-bit record
    "recorded_neuron": Ranged(6.0, 3.0, 20.0, "[assumed] f2ui + store, record copy-out"),
    # per spike and target QPE: reprogram the transmit register, busy-wait, write the key
    "packet_sent": Ranged(30.0, 10.0, 100.0, "[assumed] comms_reconfigure + busy-wait"),
}
# Module-level names of the values [derived: CYCLE_CONSTANTS]
TICK_OVERHEAD_CYCLES = CYCLE_CONSTANTS["tick_overhead"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_PACKET_RX = CYCLE_CONSTANTS["packet_rx"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_LOOKUP_STEP = CYCLE_CONSTANTS["lookup_step"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_SYN_WORD = CYCLE_CONSTANTS["syn_word"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_DELAY_BUFFER = CYCLE_CONSTANTS["delay_buffer"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_NEURON_UPDATE = CYCLE_CONSTANTS["neuron_update"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_RECORDED_NEURON = CYCLE_CONSTANTS["recorded_neuron"].value  # [derived: CYCLE_CONSTANTS]
CYCLES_PER_PACKET_SENT = CYCLE_CONSTANTS["packet_sent"].value  # [derived: CYCLE_CONSTANTS]
# reference row for the 12 M events/s figure: a saturated core receiving packets whose rows
# hold 64 synapse words, 16 entries in its population table [assumed]
REFERENCE_ROW_WORDS = 64  # [assumed]
REFERENCE_TABLE_ENTRIES = 16  # [assumed]
# The energy of a busy cycle is CoreMark's (chip CoreMark power minus asleep, per PE and
# cycle); the SNN program's instruction mix (more loads/stores, FPU) may draw more or less
# [assumed: +-20 %]
ENERGY_PER_CYCLE_SCALE = Ranged(1.0, 0.8, 1.2, "[assumed] SNN code vs CoreMark's mix", "x")
# What the model leaves out, as one named term, OFF by default: router/NoC traffic, the
# always-on domain beyond "all PEs off", IO and DRAM, board regulators. Watts per chip for the
# whole run. A user who measures a board can fit it (`spinnq energy-fit`); the bounds are the
# fit's [assumed: at most about the chip's whole asleep power at 0.8 V]
UNMODELLED_STATIC_W = Ranged(0.0, 0.0, 0.6, "[assumed] off by default; fit it to a board", "W")
# DVFS as the chip's software does it (py-spinnaker2's DVFS demo, [code]): two performance
# levels per PE, the high one at twice the low clock, chosen per tick by the number of
# received packets: at or above the threshold the PE runs high. The demo picks a threshold per
# neuron model by hand from a calibration run; these defaults are [assumed] (a setting).
DVFS_LOW, DVFS_HIGH = "0.5V", "0.8V"  # [code: two levels, high = 2x the low clock]
DVFS_THRESHOLD_PACKETS = {"lif_conv2d": 20.0, "default": 20.0}  # [assumed] packets per tick

CHIP_TOPS = {0.8: 4.56e12}  # int8 ops/s per chip at 300 MHz, measured [paper]
CHIP_TOPS[0.5] = CHIP_TOPS[0.8] * CLOCK_HZ[0.5] / CLOCK_HZ[0.8]  # linear in clock [assumed]
TOPS_PER_W = {0.5: 2.77e12, 0.8: 2.06e12}  # accelerator efficiency, chip level [paper]
# effective MACs per PE per cycle: 4.56e12 / 2 ops / 300 MHz / 152 PEs = 50 of 64 [derived]
MACS_PER_CYCLE = CHIP_TOPS[0.8] / 2 / CLOCK_HZ[0.8] / PES_PER_CHIP
# accelerator energy per MAC above sleep: (TOPS / TOPS_per_W - P_asleep) / (TOPS / 2)
# = 0.72 pJ at 0.8 V, 0.52 pJ at 0.5 V [derived]; these MAC cycles are not charged again
ENERGY_PER_MAC_J = {v: (CHIP_TOPS[v] / TOPS_PER_W[v] - CHIP_ASLEEP_W[v]) / (CHIP_TOPS[v] / 2)
                    for v in (0.5, 0.8)}
DVFS_SWITCH_J = 0.0  # energy of a performance-level switch, unknown [assumed]


# ------------------------------------------------------------ the energy model as data
@dataclass
class ChipModel:
    """The energy model's free constants as data a user can read, override and fit:
    `ChipModel.load(path)` (JSON, any subset of `to_dict()`'s keys), `save(path)`. A constant
    is a number (its value; the range kept) or {"value", "low", "high", "source"}."""

    cycles: dict[str, Ranged]
    energy_per_cycle_scale: Ranged
    unmodelled_static_w: Ranged
    dvfs_threshold_packets: dict[str, float]
    source: str = "spinnq defaults (spinnq/s2/chip.py)"

    @classmethod
    def default(cls) -> ChipModel:
        return cls(dict(CYCLE_CONSTANTS), ENERGY_PER_CYCLE_SCALE, UNMODELLED_STATIC_W,
                   dict(DVFS_THRESHOLD_PACKETS))

    def constants(self) -> dict[str, Ranged]:
        """Every ranged constant by name (the cycle costs, the cycle-energy scale, the
        unmodelled static power)."""
        return {**self.cycles, "energy_per_cycle_scale": self.energy_per_cycle_scale,
                "unmodelled_static_w": self.unmodelled_static_w}

    def values(self, corner: str = "value") -> dict[str, float]:
        """Every constant at a corner of its range ("value", "low", "high"); the unmodelled
        static power stays at its value (a term the user turns on, not an uncertainty)."""
        out = {k: c.at(corner) for k, c in self.constants().items()}
        out["unmodelled_static_w"] = self.unmodelled_static_w.value
        return out

    def with_values(self, values: dict[str, float], source: str | None = None) -> ChipModel:
        """A copy with some constants' values replaced (ranges kept), checked."""
        d = self.to_dict()
        for k, v in values.items():
            where = d["cycles"] if k in d["cycles"] else d
            if k not in where:
                raise InputError(f"chip model has no constant '{k}'")
            where[k] = dict(where[k], value=float(v))
        d["source"] = source or self.source
        return ChipModel.from_dict(d)

    def threshold(self, model: str) -> float:
        t = self.dvfs_threshold_packets
        return float(t.get(model, t.get("default", DVFS_THRESHOLD_PACKETS["default"])))

    def to_dict(self) -> dict:
        def one(c: Ranged) -> dict:
            return {"value": c.value, "low": c.low, "high": c.high, "unit": c.unit,
                    "source": c.source}
        return {"source": self.source, "cycles": {k: one(c) for k, c in self.cycles.items()},
                "energy_per_cycle_scale": one(self.energy_per_cycle_scale),
                "unmodelled_static_w": one(self.unmodelled_static_w),
                "dvfs_threshold_packets": dict(self.dvfs_threshold_packets)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "chip model") -> ChipModel:
        """Defaults overridden by `d` (see the class docstring); refuses unknown keys and
        values outside their ranges, naming them."""
        if not isinstance(d, dict):
            raise InputError(f"{where}: expected a JSON object")
        base = cls.default()
        known = {"source", "cycles", "energy_per_cycle_scale", "unmodelled_static_w",
                 "dvfs_threshold_packets", "kind"}
        bad = sorted(set(d) - known)
        if bad:
            raise InputError(f"{where}: unknown key '{bad[0]}' (known: {', '.join(sorted(known))})")
        cyc = d.get("cycles", {})
        if not isinstance(cyc, dict):
            raise InputError(f"{where}: 'cycles' must be an object")
        unknown = sorted(set(cyc) - set(base.cycles))
        if unknown:
            raise InputError(f"{where}: unknown cycle constant '{unknown[0]}' (known: "
                             f"{', '.join(base.cycles)})")
        cycles = {k: _ranged(cyc.get(k), c, f"{where}: cycles.{k}")
                  for k, c in base.cycles.items()}
        thr = d.get("dvfs_threshold_packets", base.dvfs_threshold_packets)
        if not isinstance(thr, dict) or not all(_number(v) >= 0 for v in thr.values()):
            raise InputError(f"{where}: dvfs_threshold_packets must map neuron models (or "
                             "'default') to packet counts >= 0")
        return cls(cycles, _ranged(d.get("energy_per_cycle_scale"), base.energy_per_cycle_scale,
                                   f"{where}: energy_per_cycle_scale"),
                   _ranged(d.get("unmodelled_static_w"), base.unmodelled_static_w,
                           f"{where}: unmodelled_static_w"),
                   {str(k): float(v) for k, v in thr.items()}, str(d.get("source", where)))

    @classmethod
    def load(cls, path) -> ChipModel:
        from spinnq.files import read_json_input

        return cls.from_dict(read_json_input(path, "chip model"), str(path))

    def save(self, path) -> None:
        import json
        from pathlib import Path
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def _number(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def _ranged(v, base: Ranged, where: str) -> Ranged:
    """A constant from a number (value only) or an object; checked."""
    if v is None:
        return base
    d = v if isinstance(v, dict) else {"value": v}
    bad = sorted(set(d) - {"value", "low", "high", "unit", "source"})
    if bad:
        raise InputError(f"{where}: unknown field '{bad[0]}'")
    val, lo, hi = (_number(d.get(k, getattr(base, k))) for k in ("value", "low", "high"))
    if not all(math.isfinite(x) and x >= 0 for x in (val, lo, hi)):
        raise InputError(f"{where}: value, low and high must be numbers >= 0")
    if not lo <= val <= hi:
        raise InputError(f"{where}: value {val:g} lies outside its range [{lo:g}, {hi:g}]")
    return Ranged(val, lo, hi, str(d.get("source", base.source)), str(d.get("unit", base.unit)))
