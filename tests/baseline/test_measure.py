"""CPU/GPU baselines: timing statistics, meters (fake RAPL sysfs, fake NVML), honest None."""

from __future__ import annotations

import sys
import time
import types

import pytest
import torch

from spinnq.baseline import MeasureConfig, NvmlMeter, RaplMeter, graph_fn, measure
from spinnq.baseline import power as power_mod
from spinnq.errors import BackendError, InputError
from spinnq.graph import read_graph
from spinnq.published import published_rows

FAST = MeasureConfig(batch=4, repeats=5, warmup=1, energy=False)


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_timing_figures_are_ordered_and_energy_is_none_when_not_measured():
    m = measure(tiny(), torch.zeros(1, 4), cfg=FAST)
    assert 0 < m.latency_p10_s <= m.latency_s <= m.latency_p90_s
    assert m.throughput_per_s > 0 and m.batch == 4 and m.device == "cpu"
    assert m.energy_j is None and m.energy_total_j is None and "not measured" in m.energy_note
    row = m.row()
    assert row["kind"] == "measured" and set(row) >= {"device", "latency_s", "energy_j"}


def test_cpu_energy_is_null_with_a_reason_when_rapl_is_not_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(power_mod, "RAPL_ROOT", tmp_path)  # no intel-rapl zones
    cfg = MeasureConfig(batch=2, repeats=3, warmup=0, energy_s=0.05, idle_s=0.01)
    m = measure(tiny(), torch.zeros(1, 4), cfg=cfg)
    assert m.energy_j is None and m.energy_source is None
    assert "unavailable" in m.energy_note and "RAPL" in m.energy_note


def _fake_rapl(root, uj: int, max_uj: int = 1_000_000):
    z = root / "intel-rapl:0"
    (z / "intel-rapl:0:0").mkdir(parents=True, exist_ok=True)  # sub-zone: must not be added
    (z / "energy_uj").write_text(str(uj))
    (z / "max_energy_range_uj").write_text(str(max_uj))
    (z / "name").write_text("package-0\n")
    (z / "intel-rapl:0:0" / "energy_uj").write_text("5")
    return z


def test_rapl_meter_reads_package_counters_and_survives_wraparound(tmp_path):
    z = _fake_rapl(tmp_path, 999_000)
    m = RaplMeter.open(tmp_path)
    assert m is not None and m.name == "package-0" and len(m.zones) == 1
    m.start()
    (z / "energy_uj").write_text("1000")  # wrapped: 999,000 -> 1,000,000 = 0 -> 1,000
    joules, secs = m.stop()
    assert joules == pytest.approx(2000e-6) and secs >= 0


def test_unreadable_rapl_gives_no_meter(tmp_path):
    z = _fake_rapl(tmp_path, 1)
    (z / "energy_uj").write_text("permission denied")
    assert RaplMeter.open(tmp_path) is None


class FakeNvml(types.ModuleType):
    """Board power 10 W idle, 40 W while the workload runs (mW, as NVML reports)."""

    def __init__(self):
        super().__init__("pynvml")
        self.busy = False
        self.inits = 0

    def nvmlInit(self):
        self.inits += 1

    def nvmlDeviceGetHandleByIndex(self, i):
        if i != 0:
            raise RuntimeError("NVML_ERROR_INVALID_ARGUMENT")
        return "h0"

    def nvmlDeviceGetName(self, h):
        return b"Fake GPU 1650"

    def nvmlDeviceGetPowerUsage(self, h):
        return 40_000 if self.busy else 10_000


@pytest.fixture
def fake_nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_gpu_energy_path_integrates_nvml_power_and_subtracts_idle(fake_nvml):
    """The GPU path with a fake NVML: 30 W above idle while working, 5 ms per inference."""
    def work(x):
        fake_nvml.busy = True
        time.sleep(0.005)
        return x

    meter = NvmlMeter(0, interval_s=0.002)
    assert meter.name == "Fake GPU 1650" and meter.source == "nvml"
    cfg = MeasureConfig(batch=2, repeats=3, warmup=0, energy_s=0.4, idle_s=0.2)
    # idle: the flag is False until the first timed call; reset it before the energy phase
    m = measure(lambda x: work(x), torch.zeros(1, 3), cfg=cfg, meter=_Idle(meter, fake_nvml))
    assert m.energy_source == "nvml"
    assert m.idle_power_w == pytest.approx(10.0, rel=0.05)
    assert m.active_power_w == pytest.approx(40.0, rel=0.1)
    per_call = m.energy_total_j / 40.0  # seconds per inference in the energy loop
    assert m.energy_j == pytest.approx(30.0 * per_call, rel=0.1)
    assert m.energy_j == pytest.approx(30.0 * m.latency_s, rel=0.5)


class _Idle:
    """Wraps a meter: the first interval (idle) is measured with the workload flag off."""

    def __init__(self, meter, fake):
        self.meter, self.fake, self.n = meter, fake, 0
        self.source, self.name = meter.source, meter.name

    def start(self):
        self.fake.busy = False
        self.meter.start()

    def stop(self):
        return self.meter.stop()


def test_missing_nvml_means_no_gpu_meter_with_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert NvmlMeter.open(0) is None
    with pytest.raises(BackendError, match="nvidia-ml-py"):
        NvmlMeter(0)


def test_nvml_error_is_a_backend_error(fake_nvml):
    with pytest.raises(BackendError, match="GPU 3"):
        NvmlMeter(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(BackendError, match="no CUDA"):
        measure(tiny(), torch.zeros(1, 4), device="cuda", cfg=FAST)


@pytest.mark.parametrize("kw, match", [
    (dict(device="tpu"), "device"),
    (dict(x=torch.zeros(2, 4)), "batch dimension of 1"),
    (dict(cfg=MeasureConfig(repeats=0)), "repeats"),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(InputError, match=match):
        measure(tiny(), kw.get("x", torch.zeros(1, 4)), device=kw.get("device", "cpu"),
                cfg=kw.get("cfg", FAST))


def test_the_reference_simulator_of_a_nir_graph_is_measurable(nir_paper):
    g = read_graph(nir_paper / "braille_noDelay_noBias_subtract.nir")
    x = (torch.rand(1, 20, 12) < 0.2).float()
    m = measure(graph_fn(g), x, cfg=FAST)
    assert m.latency_s > 0 and m.throughput_per_s > 0


def test_published_rows_are_labelled_published():
    rows = published_rows("cartpole") + published_rows("gesture")
    assert rows and all(r["kind"] == "published" and r["source"] for r in rows)
    assert published_rows("unknown-task") == []
