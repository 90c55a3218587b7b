"""Every number spinnq assumes about SpiNNaker2, each with its source.

Sources (full evidence in ../shared/docs/spinnaker2-target.md):
  [paper]   published SpiNNaker2 chip papers, as summarised in that document (section 4/5)
  [code]    py-spinnaker2 usage and converter code (s2_nir), as summarised there (sections 1-2)
  [trace]   measured in the NIR paper's SpiNNaker2 trace (external/nir-paper/lif_spinnaker2.csv)
  [derived] computed here from the rows it names
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
    """A DVFS level of a PE."""

    name: str
    volts: float
    clock_hz: float
    pe_sleep_w: float  # one PE asleep (chip asleep power / PEs)  [derived]
    energy_per_cycle_j: float  # busy-cycle energy above sleep [derived]


CHIP_OFF_W = 0.0752  # chip, all PEs off [paper]
CHIP_ASLEEP_W = {0.5: 0.2354, 0.8: 0.5647}  # chip, all PEs asleep [paper]
CHIP_COREMARK_W = {0.5: 0.4246, 0.8: 1.248}  # chip, CoreMark on all PEs [paper]
CLOCK_HZ = {0.5: 150e6, 0.8: 300e6}  # [paper]


def _point(name: str, volts: float) -> OperatingPoint:
    sleep_pe = (CHIP_ASLEEP_W[volts] - CHIP_OFF_W) / PES_PER_CHIP  # [derived] ~1.05 / 3.2 mW
    busy_pe = (CHIP_COREMARK_W[volts] - CHIP_ASLEEP_W[volts]) / PES_PER_CHIP
    return OperatingPoint(name, volts, CLOCK_HZ[volts], sleep_pe, busy_pe / CLOCK_HZ[volts])


OPERATING_POINTS = {"0.5V": _point("0.5V", 0.5), "0.8V": _point("0.8V", 0.8)}


# ------------------------------------------------------------------ energy model (issue 4)
# Used by s2/energy.py. Busy cycles per counted event set how long a PE works in a tick (and
# so the shortest tick and the DVFS level); their energy is `energy_per_cycle_j` above sleep.
# What the energy model does not know (so the model is an estimate, labelled "modelled"):
#  - the cycle cost of each step of py-spinnaker2's PE software (neuron update, packet
#    handling, per-tick bookkeeping, recording): the [assumed] rows below are orders of
#    magnitude for a Cortex-M4F, not measurements;
#  - the power of the router, NoC, host interface and DRAM during a run beyond "chip, all PEs
#    off"; the cost of a DVFS switch (taken as 0); leakage differences between chips;
#  - whether the accelerator's TOPS/W figures are chip-level (taken so) and how they scale;
#  - how `packets_in` spread over a population's PEs for conv projections (taken: by share);
#  - chip-to-chip links: their energy and latency per packet (not charged; chips pay P_off).
# Calibration against the published rows (tests/s2/test_energy_calibration.py): the seed DVS
# network lands at about 0.75x the published 0.459 J: the rest is what the list above lacks.
SYN_EVENTS_PER_S_PER_CHIP = 1.8e9  # at a 1 ms tick [paper]
NEURONS_PER_CHIP = 150_000  # at a 1 ms tick [paper]
# one synaptic event: 148 PEs x 300 MHz / 1.8 G events/s = 24.7 cycles [derived]
CYCLES_PER_SYN_EVENT = USABLE_PES_PER_CHIP * CLOCK_HZ[0.8] / SYN_EVENTS_PER_S_PER_CHIP
# one neuron update (float32 LIF step on the M4F: load, decay, add, compare, reset, store,
# record) [assumed]; the capacity figure bounds it: 148 x 300e3 / 150,000 = 296 cycles [derived]
CYCLES_PER_NEURON_UPDATE = 30.0
NEURON_UPDATE_CYCLES_BOUND = USABLE_PES_PER_CHIP * CLOCK_HZ[0.8] * 1e-3 / NEURONS_PER_CHIP
CYCLES_PER_PACKET_IN = 40.0  # IRQ entry/exit, routing-key lookup, synapse-row DMA [assumed]
CYCLES_PER_SPIKE_OUT = 10.0  # write one multicast packet to the NoC [assumed]
TICK_OVERHEAD_CYCLES = 2_000.0  # per PE and tick: timer IRQ, buffer swap, recording [assumed]
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

# Published runs the model is checked against (tests/s2/test_energy_calibration.py)
PUBLISHED_DVS_GESTURE_J = 0.459  # per gesture, 147 PEs, 0.8 V, ~600 x 1 ms, seed paper B [paper]
PUBLISHED_DVS_GESTURE_PES = 147  # [paper]
# DVS-gesture SNN in real time: energy per run by operating policy [paper]
PUBLISHED_DVFS_RUN_J = {"dvfs": 0.741, "0.8V": 1.023, "0.5V": 2.010}
PUBLISHED_CARTPOLE_CHIP_J = 0.006  # per inference, seed paper A [paper]
