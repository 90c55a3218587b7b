"""The `device` setting, resolved in one place (`spinnq.config.resolve_device`) for the
trainers and the reference simulator: cpu runs, unknown names and a cuda without a GPU are
one-line input errors (CLI: exit 2, nothing written), cuda runs where torch sees a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spinnq.config import resolve_device
from spinnq.errors import InputError
from spinnq.graph import read_graph, simulate
from spinnq.graph.simulate import SimConfig, Simulator
from tests.conftest import run_cli
from tests.test_cli_errors import tiny_graph

CUDA = torch.cuda.is_available()


def test_devices_resolve_in_one_place(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="device must be one of cpu, cuda, got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(InputError, match="device must be one of"):
        SimConfig(device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_simulator_without_a_gpu_refuses_cuda_and_runs_on_the_cpu(tmp_path, monkeypatch):
    g = read_graph(tiny_graph(tmp_path / "g.nir"))
    x = (np.random.default_rng(1).random((2, 20, 3)) < 0.5).astype(np.uint8) * 100
    tr = simulate(g, x, SimConfig(reset="subtract", device="cpu"))
    assert all(t.device.type == "cpu" for t in (*tr.spikes.values(), *tr.v.values()))
    assert sum(int(t.sum()) for t in tr.spikes.values()) > 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        Simulator(g, SimConfig(device="cuda"))


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda"], "torch sees no CUDA GPU"),
    (["--device", "tpu"], "device must be one of cpu, cuda"),
])
def test_cli_device_errors_are_one_line_exit_2(monkeypatch, capsys, tmp_path, args, message):
    tiny_graph(tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", np.zeros((5, 3), np.float32))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = run_cli(monkeypatch, capsys, "simulate", tmp_path / "g.nir", "--input",
                             tmp_path / "x.npy", "--out", tmp_path / "o.npz", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o.npz").exists()
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "run", "gesture", "--quick", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    code, out, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--device", "cpu")
    assert code == 2 and "--device is for gesture" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not CUDA, reason="torch sees no CUDA GPU here")
def test_simulator_on_cuda_gives_the_cpu_spikes(tmp_path):
    g = read_graph(tiny_graph(tmp_path / "g.nir"))
    x = (np.random.default_rng(1).random((2, 50, 3)) < 0.5).astype(np.uint8) * 100
    cpu = simulate(g, x, SimConfig(reset="subtract"))
    gpu = simulate(g, x, SimConfig(reset="subtract", device="cuda"))
    for k, t in cpu.spikes.items():
        assert gpu.spikes[k].device.type == "cpu" and torch.equal(t, gpu.spikes[k])
    for k, t in cpu.v.items():
        torch.testing.assert_close(t, gpu.v[k])
