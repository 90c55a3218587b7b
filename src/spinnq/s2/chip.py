"""Every number spinnq assumes about SpiNNaker2, each with its source.

Sources (the project's evidence document, docs/spinnaker2-target.md, sections 4-6):
  [paper]   published SpiNNaker2 chip papers, as summarised in that document (section 4/5)
  [code]    py-spinnaker2 usage and converter code (s2_nir), and the public PE program of
            NESTML's SpiNNaker2 target (nest/nestml, pynestml/codegeneration/
            resources_spinnaker2: main.c, synapses.c, synapse_row.h, neuron.c,
            population_table_binary_search_impl.c, spike_processing.c)
  [trace]   measured in the NIR paper's SpiNNaker2 trace (tests/data/nir-paper/lif_spinnaker2.csv)
  [derived] computed here from the rows it names
  [fitted: to what] chosen so the model meets the named published figure, inside the bounds
            in `FITTED_BOUNDS` (tests/s2/test_energy_calibration.py checks both)
  [assumed] not confirmed anywhere: an option elsewhere, this is its default

What this table does not know: per-event energies measured on the chip (the energy model
derives them from CoreMark power), the exact cycle cost of each neuron model and of packet
handling in py-spinnaker2's PE software, and the default neurons per PE it chooses.
For the energy model also: router/NoC/IO power during a run, chip-to-chip link costs, the
cost of a DVFS switch, and how accelerator efficiency scales with voltage (the list and the
calibration against published runs: the energy section at the end of this file).
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- architecture
PES_PER_CHIP = 152  # ARM Cortex-M4F PEs (38 quad-PEs) [paper]
USABLE_PES_PER_CHIP = 148  # about 148 usable for a network (the rest: system tasks) [paper]
PE_SRAM_BYTES = 128 * 1024  # SRAM per PE [paper]
PE_DATA_BYTES = 96 * 1024  # of which about 96 kB for data: weights, state, buffers [paper]
ROUTER_ENTRIES = 16_384  # multicast router table entries per chip [paper]
CHIPS_PER_BOARD = 48  # [paper]
MAC_ARRAY = (16, 4)  # int8 MACs per PE per cycle, 24-bit accumulators [paper]
ACCUMULATOR_BITS = 24  # [paper]

# Weight ranges per neuron model (signed, symmetric) [code]
WEIGHT_BITS = {"lif_no_delay": 8, "lif_conv2d": 8, "lif_curr_exp_no_delay": 8,
               "lif_curr_exp": 8, "lif": 4}
MAX_DELAY_STEPS = 8  # programmable delays of the plain `lif` model: 1..8 steps [code]

# Neurons per PE by model: published deployments used 8 to 256 [code]; py-spinnaker2's own
# defaults are not known [assumed: these].
DEFAULT_NEURONS_PER_PE = {"spike_list": 256, "lif_no_delay": 250, "lif_conv2d": 256,
                          "lif_curr_exp_no_delay": 250, "lif_curr_exp": 250, "lif": 250}

# Storage per PE, for the placement's memory check. py-spinnaker2's exact data layout is not
# known; these follow the models' state and weight formats [assumed: these].
NEURON_STATE_BYTES = {  # float32 words per neuron: v, threshold, alpha, i_offset (+ currents)
    "spike_list": 8, "lif_no_delay": 16, "lif_conv2d": 16, "lif": 16,
    "lif_curr_exp_no_delay": 28, "lif_curr_exp": 28}
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
# The 4x span (75-300 MHz) follows the 28 nm prototype's levels, 125-500 MHz [paper: Hoeppner
# et al. 2019, "Dynamic power management for neuromorphic many-core systems"].
CLOCK_DIVIDERS = (2, 1)  # [assumed]


def _point(volts: float, divider: int) -> OperatingPoint:
    sleep_pe = (CHIP_ASLEEP_W[volts] - CHIP_OFF_W) / PES_PER_CHIP  # [derived] ~1.05 / 3.2 mW
    busy_pe = (CHIP_COREMARK_W[volts] - CHIP_ASLEEP_W[volts]) / PES_PER_CHIP
    name = f"{volts:g}V" if divider == 1 else f"{volts:g}V/{CLOCK_HZ[volts] / divider / 1e6:g}MHz"
    return OperatingPoint(name, volts, CLOCK_HZ[volts] / divider, sleep_pe,
                          busy_pe / CLOCK_HZ[volts])  # ~8.3 pJ at 0.5 V, ~15 pJ at 0.8 V


# The levels from slowest to fastest: 0.5V/75MHz, 0.5V (150 MHz), 0.8V/150MHz, 0.8V (300 MHz).
# 0.8V/150MHz is as fast as 0.5V and costs more: automatic DVFS never picks it. [derived]
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
# included [derived]: the upper bound of the per-neuron work below
NEURON_UPDATE_CYCLES_BOUND = USABLE_PES_PER_CHIP * CLOCK_HZ[0.8] * 1e-3 / NEURONS_PER_CHIP
SYNAPSE_TYPES = 2  # excitatory and inhibitory ring buffers per neuron (SYNAPSE_TYPE_COUNT) [code]
# per 16-bit synapse word: load, 3 shift/mask extractions (weight, delay, type|index), ring
# index, load-add-store (_process_fixed_synapses) [code: the loop; cycles: fitted: 12 M
# synaptic events/s per core = 25 cycles all included, at the reference row below]
CYCLES_PER_SYN_WORD = 23.0  # [fitted: 12 M synaptic events/s per core]
# per received packet: queue pop and callback, row header reads, row DMA set-up [assumed]
CYCLES_PER_PACKET_RX = 60.0  # [assumed]
# per step of the population table's binary search: load key/mask, compare, branch [assumed];
# steps = ceil(log2(entries + 1)), entries = source PEs sending to the PE [code]
CYCLES_PER_LOOKUP_STEP = 10.0  # [assumed]
# per neuron and synapse type: read + clear the ring-buffer slot, int -> float32, scale, add
# into the input buffer (synapses_do_timestep_update) [assumed]
CYCLES_PER_DELAY_BUFFER = 12.0  # [assumed]
# per neuron: float32 state update, threshold check and reset, input-buffer clear
# (neuron_do_timestep_update) [fitted: the seed DVS run's dynamic energy, 0.459 J minus its
# asleep floor = 0.127 J; the fit ends at the upper bound below: see FIT_NOTE]
CYCLES_PER_NEURON_UPDATE = 272.0  # [fitted: seed DVS dynamic energy]
# per recorded neuron and tick: one voltage word (f2ui + store) and its share of the spike-bit
# record (record_voltages, send_spike_record) [assumed]; only recorded populations pay it
CYCLES_PER_RECORDED_NEURON = 6.0  # [assumed]
# per spike and target QPE: reprogram the transmit register (comms_reconfigure), busy-wait
# until it is free, write the key (send_spikes_to_all_targets) [assumed]
CYCLES_PER_PACKET_SENT = 30.0  # [assumed]
# per PE and tick: timer interrupt entry/exit, queue drain set-up, spike-record clear and
# copy-out header, time-done record, deadline check [fitted: the seed DVS run's dynamic
# energy, as above; ends at its upper bound]
TICK_OVERHEAD_CYCLES = 30_000.0  # [fitted: seed DVS dynamic energy]
# reference row for the 12 M events/s figure: a saturated core receiving packets whose rows
# hold 64 synapse words, 16 entries in its population table [assumed]
REFERENCE_ROW_WORDS = 64  # [assumed]
REFERENCE_TABLE_ENTRIES = 16  # [assumed]
# Fitted constants and the bounds they must stay in (physically plausible on a Cortex-M4F)
# [assumed: these bounds, each with its reason]:
FITTED_BOUNDS = {
    # the loop body is at least ~10 instructions; at most the 25 cycles all included
    "CYCLES_PER_SYN_WORD": (10.0, CYCLES_PER_SYN_EVENT_ALL_IN),
    # a float32 LIF step takes at least ~30 cycles; with the delay buffer and the per-word
    # work of a real network it cannot exceed the chip's capacity figure (296, all included)
    "CYCLES_PER_NEURON_UPDATE": (30.0, NEURON_UPDATE_CYCLES_BOUND - SYNAPSE_TYPES
                                 * CYCLES_PER_DELAY_BUFFER),
    # at least the interrupt and queue handling (~500); at most 10 % of a 1 ms tick at 300 MHz
    "TICK_OVERHEAD_CYCLES": (500.0, 0.1 * CLOCK_HZ[0.8] * 1e-3),
}

# what the fit could not reach [derived: checked in tests/s2/test_energy_calibration.py]
FIT_NOTE = ("the seed DVS run's published dynamic energy needs more busy cycles per tick than "
            "the PE program does at the assumed activity even with the tick overhead and the "
            "neuron update at the top of their plausible ranges: both fitted constants sit on "
            "their upper bounds and the modelled dynamic part stays below the published one")

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

# ------------------------------------------------- published runs the model is checked against
# (tests/s2/test_energy_calibration.py, benchmarks/energy_calibration.py)
PUBLISHED_DVS_GESTURE_J = 0.459  # per gesture, 147 PEs, 0.8 V, ~600 x 1 ms, seed paper B [paper]
PUBLISHED_DVS_GESTURE_PES = 147  # [paper]
PUBLISHED_DVS_GESTURE_STEPS = 600  # about 600 ticks of 1 ms [paper]
# its dynamic part: the total minus 147 PEs asleep and the chip's off power for 0.605 s
# (~0.127 J, 28 %) [derived]; with all 152 PEs asleep instead, 0.117 J (25 %) [derived]
# DVS-gesture SNN in real time (SpiNNaker2 chip paper, 2026): energy per run by policy [paper]
PUBLISHED_DVFS_RUN_J = {"dvfs": 0.741, "0.8V": 1.023, "0.5V": 2.010}
PUBLISHED_DVFS_ACCURACY = 0.9204  # in all three modes [paper]
PUBLISHED_CARTPOLE_CHIP_J = 0.006  # per inference, seed paper A: dynamic energy [paper + quote]
