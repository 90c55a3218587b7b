"""Every door gives the same answer: the Python API prices a run at the commands' default tick,
and the settings spinnq writes into a graph (integrator, delayed reset) come back from it."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import spinnq as sq
from spinnq.graph.meta import read_settings, stamp
from spinnq.resolver import resolve
from tests.conftest import dense_lif_graph, run_cli


def dense(rng: np.random.Generator, metadata: dict | None = None) -> nir.NIRGraph:
    """Input(4) -> Affine -> LIF(3) -> Output, firing on the spikes of `inputs`."""
    return dense_lif_graph(rng, metadata, loc=0.6, scale=0.6)


def inputs(rng: np.random.Generator, n: int = 6, steps: int = 12) -> np.ndarray:
    return (rng.random((n, steps, 4)) < 0.5).astype(np.uint8)


def test_api_energy_prices_what_spinnq_energy_prices_with_no_flags(monkeypatch, capsys,
                                                                   tmp_path):
    rng = np.random.default_rng(1)
    sq.write_graph(dense(rng), tmp_path / "g.nir")
    x = inputs(rng)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli(monkeypatch, capsys, "energy", tmp_path / "g.nir", "--input",
                             tmp_path / "x.npy", "--json", tmp_path / "e.json")
    assert code == 0, err
    cli = json.loads((tmp_path / "e.json").read_text())
    g = sq.read_graph(tmp_path / "g.nir")
    program, placement, run = sq.deploy(g, x)
    api = sq.energy(placement, run, program)
    assert cli["settings"]["tick_s"] == 1e-3 and api.tick_s == pytest.approx(1e-3)
    assert api.energy_j == pytest.approx(cli["energy_j"], rel=1e-12)
    # the shortest tick is asked for, by a flag or a settings object, never the default
    short = sq.energy(placement, run, program, tick_s="shortest")
    assert short.tick_s < 1e-3 and short.energy_j < api.energy_j
    assert sq.energy(placement, run, program,
                     settings=resolve(g, tick_s="shortest")).energy_j == short.energy_j
    assert sq.energy(placement, run, program, op="0.5V").energy_j != api.energy_j


CASES = {  # graph metadata, the setting written, the line a command prints for it
    "delayed_reset": ({"convention": "snntorch", "reset": "subtract"},
                      {"delayed_reset": True}, ["--delayed-reset"], "delayed reset"),
    "integrator": ({}, {"integrator": "exponential"}, ["--integrator", "exponential"],
                   "integrator exponential")}


@pytest.mark.parametrize("how", ["api", "cli"])
@pytest.mark.parametrize("case", list(CASES))
def test_settings_written_by_quantize_come_back_with_no_flags(monkeypatch, capsys, tmp_path,
                                                              how, case):
    md, setting, flag, line = CASES[case]
    rng = np.random.default_rng(2)
    g = dense(rng, stamp({}, **md))
    x, y = inputs(rng), rng.integers(0, 3, 6)
    path = tmp_path / "q.nir"
    if how == "api":
        cal = sq.calibrate(g, (x, y), percentiles=("max",), quiet=True, **setting)
        sq.write_graph(cal.graph, path)
    else:
        sq.write_graph(g, tmp_path / "g.nir")
        np.savez(tmp_path / "d.npz", x=x, y=y)
        code, out, err = run_cli(monkeypatch, capsys, "quantize", tmp_path / "g.nir", "--data",
                                 tmp_path / "d.npz", "--out", path, "--percentiles", "max",
                                 *flag)
        assert code == 0, err
    back = sq.read_graph(path)
    name, value = next(iter(setting.items()))
    assert read_settings(back.metadata)[name] == value
    assert getattr(resolve(back), name) == value  # no flags: what the file records
    assert getattr(resolve(back, **{name: default_of(name)}), name) != value
    np.save(tmp_path / "x.npy", x)  # a command on the written graph runs with it, no flags
    code, out, err = run_cli(monkeypatch, capsys, "deploy", path, "--input", tmp_path / "x.npy",
                             "--out", tmp_path / "o.npz")
    assert code == 0 and line in out, err


def default_of(name: str):
    from spinnq.resolver import RunSettings

    return getattr(RunSettings(), name)


def test_no_delayed_reset_flag_beats_the_file(monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(4)
    sq.write_graph(dense(rng, stamp({}, convention="snntorch", reset="subtract",
                                    delayed_reset=True)), tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", inputs(rng))
    args = ("deploy", tmp_path / "g.nir", "--input", tmp_path / "x.npy", "--out",
            tmp_path / "o.npz")
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "delayed reset" in out, err
    code, out, err = run_cli(monkeypatch, capsys, *args, "--no-delayed-reset")
    assert code == 0 and "delayed reset" not in out, err


def test_an_exported_graph_records_its_integrator_and_holds_the_late_reset_itself(tmp_path):
    from spinnq.s2.export import export_graph

    rng = np.random.default_rng(3)
    g = sq.read_graph(_written(dense(rng, stamp({}, convention="snntorch",
                                                 reset="subtract")), tmp_path))
    q = export_graph(g, resolve(g, delayed_reset=True).s2())
    st = read_settings(q.metadata)
    assert st["integrator"] == "forward" and st["delayed_reset"] is False
    assert any(k.endswith(".delayed_reset") for k in q.nodes)  # the self-projection
    g = sq.read_graph(_written(dense(rng), tmp_path))
    q = export_graph(g, resolve(g, integrator="exponential").s2())
    assert read_settings(q.metadata)["integrator"] == "exponential"


def test_a_bad_stored_flag_names_the_key():
    from spinnq.errors import GraphError

    assert read_settings({"spinnq.delayed_reset": np.bool_(True)}) == {"delayed_reset": True}
    assert read_settings({"spinnq.delayed_reset": b"false"}) == {"delayed_reset": False}
    with pytest.raises(GraphError, match="'spinnq.delayed_reset' must be a bool"):
        read_settings({"spinnq.delayed_reset": "sometimes"})
    with pytest.raises(GraphError, match="'spinnq.integrator' must be one of"):
        read_settings({"spinnq.integrator": "rk4"})


def _written(g: nir.NIRGraph, tmp_path) -> str:
    sq.write_graph(g, tmp_path / "w.nir")
    return str(tmp_path / "w.nir")
