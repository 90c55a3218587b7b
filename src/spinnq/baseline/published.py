"""Published reference rows for reports, always marked `kind: "published"`.

Numbers as summarised in ../shared/docs/mission.md and spinnaker2-target.md (section 5); they
come from the seed papers, not from this machine. A row is never mixed with measured ones
without its label.
"""

from __future__ import annotations

from spinnq.s2 import chip

SEED_A = "Arfa et al., ICONS 2025, arXiv 2507.23562"
SEED_B = "Arfa et al., NICE 2025, arXiv 2504.06748"

PUBLISHED: dict[str, list[dict]] = {
    "cartpole": [
        {"device": "GTX 1650 GPU", "latency_s": None, "energy_j": 0.145,
         "note": "0.145-0.19 J per inference (lower end shown); latency 'on par' with the "
                 "chip, no figure", "source": SEED_A, "kind": "published"},
        {"device": "SpiNNaker2 chip", "latency_s": None,
         "energy_j": chip.PUBLISHED_CARTPOLE_CHIP_J, "note": "per inference",
         "source": SEED_A, "kind": "published"},
    ],
    "gesture": [
        {"device": "SpiNNaker2 chip", "latency_s": 0.6,
         "energy_j": chip.PUBLISHED_DVS_GESTURE_J,
         "note": "147 PEs, 0.8 V / 300 MHz, about 600 steps of 1 ms; 94.13 % on chip",
         "source": SEED_B, "kind": "published"},
    ],
}


def published_rows(task: str) -> list[dict]:
    """Copies of the published rows for a task (`cartpole`, `gesture`); [] for others."""
    return [dict(r) for r in PUBLISHED.get(task, [])]
