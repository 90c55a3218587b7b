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
