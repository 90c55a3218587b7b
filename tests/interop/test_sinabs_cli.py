"""`--convention sinabs` reaches every command: a Sinabs export, run from the command line,
gives Sinabs's spikes (simulate), Sinabs's classes (evaluate --target float), and compiles
with Sinabs's translation in deploy, energy, export, quantize and a sweep's trials."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("sinabs", reason="pip install --no-deps sinabs==3.1.3 (Makefile)")

from spinnq.graph import Graph, from_nir, read_graph, write_graph  # noqa: E402
from spinnq.sweep.trial import GraphProblem  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.interop.test_sinabs_import import build, export, run_sinabs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
N, T = 6, 30


def typed(g: Graph) -> Graph:
    """Sinabs 3.1.3 leaves the input/output types of Conv2d, SumPool2d and Flatten (and the
    Conv2d's input_shape) None,
    which nir 1.0.8's `nir.write` cannot store: fill them from spinnq's inferred shapes."""
    for name, node in g.nodes.items():
        if any(v is None for v in getattr(node, "input_type", {}).values()):
            (pre,) = g.predecessors(name)
            node.input_type = {"input": np.array(g.shapes[pre])}
            node.output_type = {"output": np.array(g.shapes[name])}
            if hasattr(node, "input_shape") and node.input_shape is None:  # Conv2d
                node.input_shape = np.array(g.shapes[pre][1:])
    return g


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """net.nir (a Sinabs conv IAF network), x.npy (one sample), d.npz (x, y = Sinabs's own
    class: the argmax of its output spike counts) and Sinabs's traces of the sample batch."""
    torch.manual_seed(7)
    d = tmp_path_factory.mktemp("sinabs")
    net, shape, rec = build("conv-iaf", "subtract", b=N, gain=1.5)
    x = (torch.rand(N, T, *shape) < 0.3).float()
    ref = run_sinabs(net, x, rec)
    write_graph(typed(from_nir(export(net, x))), d / "net.nir")
    np.save(d / "x.npy", x[0].numpy())
    y = ref["7"].sum(1).numpy().argmax(1)
    np.savez(d / "d.npz", x=x.numpy().astype(np.uint8), y=y)
    return d, ref


def test_simulate_gives_sinabs_spikes(monkeypatch, capsys, files):
    d, ref = files
    code, out, err = run_cli(monkeypatch, capsys, "simulate", d / "net.nir", "--input",
                             d / "x.npy", "--out", d / "o.npz", "--convention", "sinabs",
                             "--record", "1", "--record", "7")
    assert code == 0, err
    got = np.load(d / "o.npz")
    for k in ("1", "7"):
        assert np.array_equal(got[f"spikes/{k}"][0], ref[k][0].numpy().astype(np.uint8)), k


def test_evaluate_float_gives_sinabs_classes(monkeypatch, capsys, files):
    d, _ = files
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", d / "net.nir", "--data",
                             d / "d.npz", "--target", "both", "--convention", "sinabs",
                             "--json", d / "e.json")
    assert code == 0, err
    res = json.loads((d / "e.json").read_text())
    assert res["float"]["accuracy"] == 1.0, res["float"]


@pytest.mark.parametrize("cmd", ["deploy", "energy", "export", "quantize"])
def test_chip_commands_take_the_sinabs_convention(monkeypatch, capsys, files, cmd):
    d, _ = files
    args = {"deploy": ["--input", d / "x.npy", "--out", d / "dep.npz"],
            "energy": ["--input", d / "x.npy"],
            "export": ["--out", d / "int.nir"],
            "quantize": ["--data", d / "d.npz", "--out", d / "q.nir"]}[cmd]
    code, out, err = run_cli(monkeypatch, capsys, cmd, d / "net.nir", *args,
                             "--convention", "sinabs")
    assert code == 0, err
    if cmd in ("deploy", "energy", "export"):
        assert "convention sinabs, reset subtract, dt 1 s" in out
    if cmd == "export":  # Sinabs's reading is kept (not NIR's): the file says so
        assert read_graph(d / "int.nir").metadata["spinnq.convention"] == "sinabs"
    if cmd == "quantize":
        assert "convention sinabs" in out


def test_sweep_trials_run_with_the_sinabs_convention(files):
    d, _ = files
    p = GraphProblem.from_files(d / "net.nir", d / "d.npz", convention="sinabs")
    assert (p.convention, p.reset, p.dt) == ("sinabs", "subtract", 1.0)
    assert p.s2_config(p.seed_config()).convention == "sinabs"
