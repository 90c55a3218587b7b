"""Every published figure spinnq compares itself with, in one place, always `kind: "published"`.

Numbers as summarised in the project's mission and `docs/spinnaker2-target.md` (section 5);
they come from papers, not from this machine. The energy model is calibrated against the
SpiNNaker2 runs (`spinnq.s2.published_fit`); reports show the rows of `PUBLISHED`. Each row
names the `workload` that produced it and what its energy covers: `energy_basis` is
"dynamic" (above idle), "total" (everything the device draws while it runs) or "unknown", and
`energy_scope` says which device part ("whole chip", "used PEs", "GPU board", ...). A report
computes a "chip wins Nx" ratio only against a row of the chip's own workload and on the same
basis (`spinnq.report.build.ratios`); the others stand as references.
"""

from __future__ import annotations

# --------------------------------------- SpiNNaker2 runs the energy model is checked against
# (tests/s2/test_energy_calibration.py, benchmarks/energy_calibration.py)
PUBLISHED_DVS_GESTURE_J = 0.459  # per gesture, 147 PEs, 0.8 V, ~600 x 1 ms, seed paper B [paper]
PUBLISHED_DVS_GESTURE_PES = 147  # [paper]
PUBLISHED_DVS_GESTURE_STEPS = 600  # about 600 ticks of 1 ms [paper]
# its dynamic part: the total minus 147 PEs asleep and the chip's off power for 0.605 s
# (~0.127 J, 28 %) [derived]; with all 152 PEs asleep instead, 0.117 J (25 %) [derived]
# DVS-gesture SNN in real time (SpiNNaker2 chip paper, 2026): energy per run by policy [paper]
PUBLISHED_DVFS_RUN_J = {"dvfs": 0.741, "0.8V": 1.023, "0.5V": 2.010}
PUBLISHED_DVFS_ACCURACY = 0.9204  # in all three modes [paper]
PUBLISHED_CARTPOLE_CHIP_J = 0.006  # per inference, seed paper A; basis not published [paper]
# a third-party note quotes 0.333 W average: 6 mJ / 0.333 W = 18 ms, and 0.333 W lies in the
# whole chip's 0.5 V range (235-425 mW): "whole chip, total" fits as well as "dynamic" [quote]
PUBLISHED_CARTPOLE_POWER_W = 0.333  # [quote]
# The seed DVS paper's accuracies per stage (P-SNN float -> PTQ on chip; Q-SNN QAT -> on chip)
SEED_B_ACCURACY = {"float_psnn": 0.9507, "ptq_chip": 0.940, "float_qsnn": 0.9469,
                   "qat_chip": 0.9413}  # [paper]
SEED_B_WEIGHTS = 25_504  # weights of the seed DVS network (no biases) [paper]

# ------------------------------------------------------------------------- report rows
SEED_A = "Arfa et al., ICONS 2025, arXiv 2507.23562"
SEED_B = "Arfa et al., NICE 2025, arXiv 2504.06748"
CHIP_PAPER = "SpiNNaker2 chip paper (2026): DVS-gesture SNN in real time"
SPECK = "Yao et al., Nature Communications 2024 (Speck)"
COLIBRIES = "Rutishauser et al. 2023 (ColibriES)"

# Workload names: a chip run that is the same work carries the same name (report `workload`).
SEED_A_CARTPOLE = "seed A spiking Q-network, CartPole"
SEED_B_GESTURE = "seed DVS-gesture network, 147 PEs, 600 x 1 ms"

PUBLISHED: dict[str, list[dict]] = {
    "cartpole": [
        {"device": "GTX 1650 GPU", "latency_s": None, "energy_j": 0.145, "energy_basis": "total",
         "energy_scope": "GPU board", "workload": SEED_A_CARTPOLE,
         "note": "0.145-0.19 J per inference (lower end shown); latency 'on par' with the "
                 "chip, no figure", "source": SEED_A, "kind": "published"},
        {"device": "SpiNNaker2 chip", "latency_s": None,
         "energy_j": PUBLISHED_CARTPOLE_CHIP_J, "energy_basis": "unknown",
         "energy_scope": "dynamic, or whole chip total at 0.5 V", "workload": SEED_A_CARTPOLE,
         "note": "per inference; basis not published: the abstract speaks of dynamic power, "
                 "a quoted 0.333 W average fits the whole chip at 0.5 V over 18 ms as well "
                 "(both readings: benchmarks/results/energy_calibration.json)",
         "source": SEED_A, "kind": "published"},
    ],
    "gesture": [
        {"device": "SpiNNaker2 chip", "latency_s": 0.6,
         "energy_j": PUBLISHED_DVS_GESTURE_J, "energy_basis": "total",
         "energy_scope": "whole chip", "workload": SEED_B_GESTURE, "accuracy": 0.9413,
         "note": "147 PEs, 0.8 V / 300 MHz, about 600 steps of 1 ms; 94.13 % on chip",
         "source": SEED_B, "kind": "published"},
        {"device": "SpiNNaker2 chip (DVFS)", "latency_s": None,
         "energy_j": PUBLISHED_DVFS_RUN_J["dvfs"], "energy_basis": "total",
         "energy_scope": "whole chip", "workload": "DVS-gesture SNN of the SpiNNaker2 chip paper",
         "accuracy": PUBLISHED_DVFS_ACCURACY,
         "note": "92.04 %, 0.741 J per run with automatic DVFS (1.023 J fixed 0.8 V, 2.010 J "
                 "fixed 0.5 V)", "source": CHIP_PAPER, "kind": "published"},
        {"device": "Speck", "latency_s": None, "energy_j": None, "power_w": 3.8e-3,
         "energy_basis": "total", "energy_scope": "chip", "workload": "DVS gesture on Speck",
         "accuracy": 0.900,
         "note": "90.0 % at 3.8 mW total", "source": SPECK, "kind": "published"},
        {"device": "ColibriES", "latency_s": 0.1645, "energy_j": 7.7e-3,
         "energy_basis": "total", "energy_scope": "system",
         "workload": "DVS gesture on ColibriES",
         "note": "7.7 mJ and 164.5 ms per inference", "source": COLIBRIES,
         "kind": "published"},
    ],
}


def published_rows(task: str) -> list[dict]:
    """Copies of the published rows for a task (`cartpole`, `gesture`); [] for others."""
    return [dict(r) for r in PUBLISHED.get(task, [])]
