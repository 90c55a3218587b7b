"""Measure a float network on this machine's CPU or GPU: latency, throughput, energy.

    measure(fn_or_model, example_input, device="cpu", cfg=MeasureConfig()) -> Measured
    graph_fn(graph, sim_cfg) -> callable     # the reference simulator as the network

`example_input` is one inference with a leading batch dimension of 1, e.g. (1, T, *in) for a
graph. Latency: batch 1, after warm-up, `repeats` timed calls (device synchronized), median.
Throughput: the input repeated to `batch`, median time per batch. Energy per inference at
batch 1: a meter (NVML on a GPU, RAPL on a CPU, when available) over an idle interval and then
over a loop of at least `energy_s` seconds; "dynamic" = (E_loop - P_idle * t_loop) / n.
Without a meter the energy is None and `energy_note` says why.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from spinnq.baseline.power import NvmlMeter, RaplMeter
from spinnq.errors import BackendError, InputError


@dataclass(frozen=True)
class MeasureConfig:
    batch: int = 32  # batch for the throughput figure
    repeats: int = 20  # timed calls per figure (median)
    warmup: int = 3
    energy_s: float = 3.0  # seconds of the energy loop (NVML averages over ~1 s)
    idle_s: float = 1.0  # seconds of idle power before it
    energy: bool = True  # False: timing only


@dataclass
class Measured:
    """One baseline row; `row()` is what report.json stores."""

    device: str  # cpu | cuda:0
    device_name: str
    latency_s: float  # median per inference, batch 1
    latency_p10_s: float
    latency_p90_s: float
    throughput_per_s: float  # inferences per second at `batch`
    batch: int
    energy_j: float | None  # dynamic energy per inference at batch 1 (idle subtracted)
    energy_total_j: float | None  # including idle power (the meter's whole package / board)
    idle_power_w: float | None
    active_power_w: float | None
    energy_source: str | None  # nvml | rapl | None
    energy_note: str
    repeats: int
    threads: int
    kind: str = "measured"
    energy_basis: str = "dynamic"  # energy_j is above idle; energy_total_j is the total
    energy_scope: str = ""  # what the meter covers: "CPU package (RAPL)", "GPU board (NVML)"

    def row(self) -> dict:
        return asdict(self)


Meter = RaplMeter | NvmlMeter
SCOPES = {"rapl": "CPU package (RAPL)", "nvml": "GPU board (NVML)"}


def _device(device: str) -> torch.device:
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise BackendError("device 'cuda' requested but torch sees no CUDA GPU here")
    if d.type not in ("cpu", "cuda"):
        raise InputError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return d


SYNC: dict[str, Callable[[torch.device], None]] = {
    "cpu": lambda d: None,
    "cuda": lambda d: torch.cuda.synchronize(d),
}


def _device_name(d: torch.device) -> str:
    if d.type == "cuda":
        return torch.cuda.get_device_name(d)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_meter(d: torch.device) -> tuple[Meter | None, str]:
    """The meter for a device and a note saying what it measures (or why there is none)."""
    if d.type == "cuda":
        m = NvmlMeter.open(d.index or 0)
        return m, ("NVML board power, sampled and integrated" if m else
                   "unavailable: NVML (nvidia-ml-py) not importable or no access")
    m = RaplMeter.open()
    return m, (f"RAPL package counters ({m.name})" if m else
               "unavailable: RAPL counters in /sys/class/powercap not readable here")


def graph_fn(graph, sim_cfg=None) -> Callable[[torch.Tensor], object]:
    """The reference simulator of a NIR `Graph` as a function of a (B, T, *in) tensor; on a
    GPU it builds its tensors on the input's device."""
    from spinnq.graph.simulate import SimConfig, Simulator

    cfg = sim_cfg or SimConfig()

    def run(x: torch.Tensor):
        with torch.device(x.device):
            return Simulator(graph, cfg).run(x)

    return run


def _timed(call: Callable[[], object], sync: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def measure_energy(call: Callable[[], object], sync: Callable[[], None], meter: Meter,
                   energy_s: float, idle_s: float) -> dict:
    """Idle interval, then a loop of >= energy_s seconds: energies per call."""
    meter.start()
    time.sleep(idle_s)
    idle_j, idle_t = meter.stop()
    p_idle = idle_j / idle_t if idle_t > 0 else 0.0
    meter.start()
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < energy_s:
        call()
        sync()
        n += 1
    loop_j, loop_t = meter.stop()
    return {"energy_total_j": loop_j / n, "energy_j": max(loop_j - p_idle * loop_t, 0.0) / n,
            "idle_power_w": p_idle, "active_power_w": loop_j / loop_t if loop_t > 0 else None,
            "calls": n}


@torch.inference_mode()
def measure(fn, example_input: torch.Tensor, device: str = "cpu",
            cfg: MeasureConfig = MeasureConfig(), meter: Meter | None | str = "auto"
            ) -> Measured:
    """Latency, throughput and (when a meter exists) energy per inference; see the module."""
    d = _device(device)
    x = torch.as_tensor(example_input)
    if x.ndim < 1 or x.shape[0] != 1:
        raise InputError(f"example input must have a leading batch dimension of 1, got shape "
                         f"{tuple(x.shape)}")
    if cfg.batch < 1 or cfg.repeats < 1 or cfg.warmup < 0:
        raise InputError("batch and repeats must be >= 1, warmup >= 0")
    if isinstance(fn, torch.nn.Module):
        fn = fn.to(d).eval()
    x1 = x.to(d)
    xb = x1.expand(cfg.batch, *x1.shape[1:]).contiguous()
    sync = lambda: SYNC[d.type](d)  # noqa: E731

    def one():
        return fn(x1)

    def many():
        return fn(xb)

    _timed(one, sync, cfg.warmup)
    lat = sorted(_timed(one, sync, cfg.repeats))
    _timed(many, sync, min(cfg.warmup, 1))
    per_batch = statistics.median(_timed(many, sync, max(cfg.repeats // 4, 3)))
    note, e = "not measured (timing only)", {}
    if cfg.energy:
        if meter == "auto":
            meter, note = default_meter(d)
        elif meter is not None:
            note = f"{meter.source} meter ({getattr(meter, 'name', '')})"
        else:
            note = "unavailable: no meter given"
        if meter is not None:
            e = measure_energy(one, sync, meter, cfg.energy_s, cfg.idle_s)
    q = lambda p: lat[min(int(p * len(lat)), len(lat) - 1)]  # noqa: E731
    return Measured(
        device=str(d), device_name=_device_name(d), latency_s=statistics.median(lat),
        latency_p10_s=q(0.1), latency_p90_s=q(0.9), throughput_per_s=cfg.batch / per_batch,
        batch=cfg.batch, energy_j=e.get("energy_j"), energy_total_j=e.get("energy_total_j"),
        idle_power_w=e.get("idle_power_w"), active_power_w=e.get("active_power_w"),
        energy_source=getattr(meter, "source", None) if e else None, energy_note=note,
        repeats=cfg.repeats, threads=torch.get_num_threads(),
        energy_scope=SCOPES.get(getattr(meter, "source", None), "") if e else "")
