"""A Norse CubaLIF network trained in Norse on real handwritten digits runs on the emulated
chip as trained: within 1 pt of Norse's own accuracy with `convention="norse"`, while NIR's
reading of the same file starves it (0 output spikes: the issue's 10 %) and is warned about.

Norse 1.1 (`LIFCell` -> NIR CubaLIF) exported with `norse.torch.to_nir(net, x, dt=1.0)` (tau
in seconds, see test_norse_import.py); Norse steps with dt = 1e-3. Norse's default cells have
scalar parameters: `from_nir` broadcasts them, so the graph can also be written to a file.
"""

from __future__ import annotations

import nir
import norse.torch as norse
import numpy as np
import pytest
import torch

from spinnq.graph import SimConfig, from_nir, simulate, write_graph
from spinnq.graph.meta import read_settings
from spinnq.s2 import S2Config, compile, emulate, silent_outputs
from spinnq.s2.export import export_graph
from tests.conftest import digits_spikes, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning")
DT = 1e-3
OUT = "3"  # the output LIFCell's node name in Norse's export


def run_norse(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Output spikes (B, T, 10) of Norse's own simulation."""
    state, outs = None, []
    for t in range(x.shape[1]):
        z, state = net(x[:, t], state)
        outs.append(z)
    return torch.stack(outs, 1)


def train_norse_digits(hidden: int, epochs: int, seed: int = 0):
    """64 -> Linear -> LIFCell(hidden) -> Linear -> LIFCell(10), Norse's default parameters,
    cross-entropy on output spike counts. Returns (net, Norse's test accuracy, data)."""
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = digits_spikes(seed=seed)
    net = norse.SequentialState(torch.nn.Linear(64, hidden), norse.LIFCell(),
                                torch.nn.Linear(hidden, 10), norse.LIFCell())
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    X, Y = torch.as_tensor(xtr), torch.as_tensor(ytr)
    for _ in range(epochs):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(run_norse(net, X[idx]).sum(1), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        ref = run_norse(net, torch.as_tensor(xte))
    acc = float((ref.sum(1).argmax(1).numpy() == yte).mean())
    return net, acc, ref, (xte, yte)


def chip_accuracy(g, x, y, convention: str) -> tuple[float, list[str], int]:
    """(accuracy on the emulated chip, silent outputs, output spikes); 8-bit, scale max."""
    prog = compile(g, S2Config(dt=DT, convention=convention))
    run = emulate(prog, x)
    acc = float((run.spikes[OUT].sum(1).argmax(1).numpy() == y).mean())
    return acc, silent_outputs(prog, run), int(run.spikes[OUT].sum())


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    return train_norse_digits(hidden=64, epochs=8)


def test_norse_cubalif_digits_on_chip_within_1pt_of_norse(trained):
    net, acc_norse, ref, (x, y) = trained
    assert acc_norse > 0.85  # a real network, not a coin toss
    g = from_nir(norse.to_nir(net, torch.randn(64), dt=1.0))
    assert isinstance(g.nodes[OUT], nir.CubaLIF)
    sim = simulate(g, x, SimConfig(dt=DT, convention="norse", record=(OUT,)))
    assert int((sim.spikes[OUT] != ref).sum()) == 0  # the reference is Norse, spike for spike
    acc_chip, silent, spikes = chip_accuracy(g, x, y, "norse")
    assert silent == [] and spikes > len(y)
    assert abs(acc_chip - acc_norse) <= 0.01, (acc_chip, acc_norse)


def test_nir_reading_of_a_norse_cubalif_falls_silent_and_is_named(trained):
    net, acc_norse, _, (x, y) = trained
    g = from_nir(norse.to_nir(net, torch.randn(64), dt=1.0))
    acc, silent, spikes = chip_accuracy(g, x, y, "nir")
    assert spikes == 0 and silent == [OUT]  # the issue: inputs a_syn = 0.2 times too small
    assert acc < acc_norse - 0.5


def test_cli_deploy_convention_norse_and_the_silent_warning(trained, monkeypatch, capsys,
                                                            tmp_path):
    net, _, _, (x, _) = trained
    write_graph(from_nir(norse.to_nir(net, torch.randn(64), dt=1.0)), tmp_path / "net.nir")
    np.save(tmp_path / "x.npy", x[:20])
    args = ["deploy", tmp_path / "net.nir", "--input", tmp_path / "x.npy", "--dt", "1e-3"]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--out", tmp_path / "a.npz")
    assert code == 0, err
    assert "never fired" in out and f"'{OUT}'" in out
    assert np.load(tmp_path / "a.npz")[f"spikes/{OUT}"].sum() == 0
    code, out, err = run_cli(monkeypatch, capsys, *args, "--out", tmp_path / "b.npz",
                             "--convention", "norse")
    assert code == 0, err
    assert "never fired" not in out and "convention norse" in out
    assert np.load(tmp_path / "b.npz")[f"spikes/{OUT}"].sum() > 20
    code, out, err = run_cli(monkeypatch, capsys, "energy", tmp_path / "net.nir", "--input",
                             tmp_path / "x.npy", "--dt", "1e-3")
    assert code == 0 and "never fired" in out, err


def test_export_of_a_norse_graph_is_in_nirs_reading(trained):
    """`export --convention norse` writes w_in / a_syn: py-spinnaker2 (NIR's reading) and
    spinnq without a convention load the same chip program."""
    net, _, _, (x, _) = trained
    g = from_nir(norse.to_nir(net, torch.randn(64), dt=1.0))
    q = export_graph(g, S2Config(dt=DT, convention="norse"))
    assert read_settings(q.metadata)["convention"] == "nir"
    a = emulate(compile(g, S2Config(dt=DT, convention="norse")), x[:50])
    b = emulate(compile(from_nir(q), S2Config(dt=DT, weight_scale="none")), x[:50])
    assert a.spikes[OUT].sum() > 50 and torch.equal(a.spikes[OUT], b.spikes[OUT])


@pytest.mark.slow
def test_norse_cubalif_digits_full_size_within_1pt(capsys):
    """The full-size numbers (hidden 128, 20 epochs): printed, and within 1 pt."""
    torch.set_num_threads(1)
    net, acc_norse, _, (x, y) = train_norse_digits(hidden=128, epochs=20)
    g = from_nir(norse.to_nir(net, torch.randn(64), dt=1.0))
    acc_chip, _, _ = chip_accuracy(g, x, y, "norse")
    acc_nir, _, _ = chip_accuracy(g, x, y, "nir")
    with capsys.disabled():
        print(f"\nNorse digits (measured): Norse float {acc_norse:.4f}, chip norse "
              f"{acc_chip:.4f}, chip nir reading {acc_nir:.4f}")
    assert acc_norse > 0.9
    assert abs(acc_chip - acc_norse) <= 0.01
