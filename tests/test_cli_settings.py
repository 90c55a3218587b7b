"""Graphs that record how they must be run (`spinnq.reset/convention/dt`, as `spinnq.nn.to_nir`
writes them) run as trained in simulate, deploy, energy and export with no flags; flags win."""

import nir
import numpy as np
import torch
from torch import nn

from spinnq.graph import SimConfig, from_nir, simulate
from spinnq.graph.meta import read_settings
from spinnq.nn import LIF, SpikingSequential, to_nir
from tests.conftest import run_cli


def _net(tmp_path):
    torch.manual_seed(0)
    m = SpikingSequential(nn.Linear(6, 12), LIF(0.9, reset="subtract"), nn.Linear(12, 4),
                          LIF(0.8, reset="subtract"))
    with torch.no_grad():
        for mod in m:
            if isinstance(mod, nn.Linear):
                mod.weight *= 3
    g = to_nir(m, (6,), dt=1e-3)
    nir.write(tmp_path / "net.nir", g)
    x = (np.random.default_rng(0).random((2, 40, 6)) < 0.4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return m, from_nir(g), x


def test_simulate_runs_a_recorded_graph_as_trained_without_flags(monkeypatch, capsys,
                                                                 tmp_path):
    m, g, x = _net(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "simulate", tmp_path / "net.nir", "--input",
                           tmp_path / "x.npy", "--out", tmp_path / "o.npz")
    assert code == 0, err
    got = np.load(tmp_path / "o.npz")["spikes/3"]
    want = m(torch.as_tensor(x)).detach().numpy()  # spinnq's own torch model (subtract)
    assert want.sum() > 0 and np.array_equal(got, want)
    zero = simulate(g, x, SimConfig(reset="zero", dt=1e-3)).spikes["3"].numpy()
    assert not np.array_equal(zero, want)  # so the recorded reset is what made it agree


def test_deploy_energy_export_take_the_recorded_settings_and_flags_win(monkeypatch, capsys,
                                                                       tmp_path):
    _net(tmp_path)
    common = [tmp_path / "net.nir", "--input", tmp_path / "x.npy"]
    code, out, err = run_cli(monkeypatch, capsys, "deploy", *common, "--out", tmp_path / "c.npz")
    assert code == 0 and "convention nir, reset subtract, dt 0.001 s" in out, err
    code, out, err = run_cli(monkeypatch, capsys, "energy", *common, "--reset", "zero")
    assert code == 0 and "convention nir, reset zero, dt 0.001 s" in out, err
    code, out, err = run_cli(monkeypatch, capsys, "export", tmp_path / "net.nir", "--out",
                             tmp_path / "q.nir")
    assert code == 0, err
    assert read_settings(nir.read(tmp_path / "q.nir").metadata) == {
        "reset": "subtract", "convention": "nir", "dt": 1e-3, "bits": 8,
        "integrator": "forward", "delayed_reset": False}
