"""Defaults shared across stages: one place, so the CLI, the API and the tests agree."""

from __future__ import annotations

from typing import Any

from spinnq.errors import InputError

DEFAULT_DT = 1e-4  # s; the convention of the NIR paper, snnTorch and py-spinnaker2 runs
DEFAULT_SEED = 0
REALTIME_TICK_S = 1e-3  # s; one chip step per 1 ms system tick: the papers' real time
SHORTEST_TICK = "shortest"  # a tick setting: the shortest tick every PE meets
DEFAULT_OP = "0.8V"  # the operating point every door defaults to (the papers' level)
RUNS_DIR = "runs"  # every long job writes runs/<task>-<time>/
# candidate weight scales of PTQ calibration (max = the 100th percentile of |w|)
PERCENTILES = ("max", "p99.99", "p99.9", "p99.5", "p99")
DEVICES = ("cpu", "cuda")  # --device: where torch trains and the reference simulator runs


def resolve_device(name: str) -> Any:
    """The torch device of a `device` setting (training, the reference simulator), or
    InputError naming the setting: one of DEVICES, and cuda only where torch sees a GPU. The
    one place both resolve it, so they accept and refuse the same names."""
    if name not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    import torch  # here, not at import: `spinnq --help` starts without torch

    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda: torch sees no CUDA GPU here (use device cpu)")
    return torch.device(name)
# weight widths SpiNNaker2's synapses store (signed, symmetric: s2.formats.QMAX), widest first
WEIGHT_BITS = (8, 4)
