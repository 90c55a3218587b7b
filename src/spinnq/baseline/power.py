"""Energy meters for the CPU/GPU baselines: measured, or `None` — never invented.

A meter is `start()` then `stop() -> (joules, seconds)` over an interval.
  - `RaplMeter`: the CPU packages' cumulative counters in
    `/sys/class/powercap/intel-rapl:N/energy_uj` (Intel, and AMD's RAPL driver); often
    readable by root only. `RaplMeter.open()` returns None when it cannot be read. The
    counters cover the whole package, other processes included: the idle interval subtracts
    their steady part, not their bursts (measure on a quiet machine).
  - `NvmlMeter`: a GPU's board power from NVML (`pynvml`, package `nvidia-ml-py`, extra
    `spinnq[gpu]`) sampled in a thread every `interval_s` and integrated (trapezoids); NVML's
    power reading is itself averaged over about a second, so meter loops of seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from spinnq.errors import BackendError

RAPL_ROOT = Path("/sys/class/powercap")


class RaplMeter:
    """Sum of the CPU package counters (top-level `intel-rapl:N` zones, no sub-zones)."""

    def __init__(self, zones: list[Path]):
        self.zones = zones
        self.ranges = [int((z / "max_energy_range_uj").read_text()) if
                       (z / "max_energy_range_uj").exists() else 2**63 for z in zones]
        self._start: list[int] = []
        self._t0 = 0.0
        self.source = "rapl"
        self.name = ", ".join((z / "name").read_text().strip() if (z / "name").exists()
                              else z.name for z in zones)

    @classmethod
    def open(cls, root: Path | None = None) -> RaplMeter | None:
        """A meter over the readable package zones, or None (no RAPL, or not permitted)."""
        root = RAPL_ROOT if root is None else root
        zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
        try:
            for z in zones:
                int((z / "energy_uj").read_text())
        except (OSError, ValueError):
            return None
        return cls(zones) if zones else None

    def _read(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def start(self) -> None:
        self._start, self._t0 = self._read(), time.perf_counter()

    def stop(self) -> tuple[float, float]:
        end, t = self._read(), time.perf_counter() - self._t0
        uj = sum((e - s) % r for s, e, r in zip(self._start, end, self.ranges, strict=True))
        return uj * 1e-6, t


class PowerSampler:
    """Calls `read_w()` every `interval_s` in a thread and integrates power over time."""

    def __init__(self, read_w: Callable[[], float], interval_s: float = 0.01):
        self.read_w, self.interval_s = read_w, interval_s
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._samples.append((time.perf_counter(), float(self.read_w())))
            self._stop.wait(self.interval_s)
        self._samples.append((time.perf_counter(), float(self.read_w())))

    def start(self) -> None:
        self._samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        s = self._samples
        if len(s) < 2:
            return 0.0, 0.0
        joules = sum((t1 - t0) * (p0 + p1) / 2
                     for (t0, p0), (t1, p1) in zip(s, s[1:], strict=False))
        return joules, s[-1][0] - s[0][0]


class NvmlMeter(PowerSampler):
    """Board power of GPU `index` through NVML, sampled and integrated."""

    def __init__(self, index: int = 0, interval_s: float = 0.01):
        try:
            import pynvml
        except ImportError:
            raise BackendError("GPU energy needs NVML: pip install nvidia-ml-py "
                               "(extra spinnq[gpu])") from None
        try:
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
        except Exception as e:  # pynvml raises its own NVMLError hierarchy
            raise BackendError(f"NVML cannot open GPU {index}: {e}") from None
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.source = "nvml"
        super().__init__(lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, interval_s)

    @classmethod
    def open(cls, index: int = 0) -> NvmlMeter | None:
        try:
            return cls(index)
        except BackendError:
            return None
