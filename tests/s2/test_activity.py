"""The field's activity metrics beside the joules (spinnq/s2/activity.py): NeuroBench's own
metric classes on the emulated spikes give the same per-population numbers as spinnq's
emulator counters, on a recurrent dense net, the seed DVS conv net (a fused sum-pool included)
and a chain with a 3-step delay; `energy`/`evaluate` JSON and reports carry them."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from spinnq.graph import from_nir, read_graph
from spinnq.s2 import activity
from spinnq.s2.compile import S2Config, compile
from spinnq.s2.emulate import emulate
from spinnq.s2.energy import energy
from spinnq.s2.events import fanout_table
from spinnq.s2.place import place
from spinnq.s2.program import Population, Program, Projection
from tests.conftest import benchmark, run_cli

KEYS = ("spikes", "activation_sparsity", "effective_acs", "dense_synops")


def seed_program() -> Program:
    seed_network = benchmark("seed_net").seed_network
    return compile(from_nir(seed_network()), S2Config(reset="subtract"))


def delayed_chain() -> Program:
    """input(30) -> h(40) with a 3-step delay, sparse signed weights; h -> h recurrent."""
    rng = np.random.default_rng(3)
    w = (rng.integers(-2, 4, (40, 30)) * (rng.random((40, 30)) < 0.4)).astype(np.int8)
    r = (rng.integers(-1, 2, (40, 40)) * (rng.random((40, 40)) < 0.2)).astype(np.int8)
    lif = {"alpha": np.full(40, 0.9), "threshold": np.full(40, 2.0),
           "i_offset": np.zeros(40), "v_reset": np.zeros(40)}
    pops = {"input": Population("input", "spike_list", (30,)),
            "h": Population("h", "lif", (40,), params=lif)}
    projs = [Projection("input", "h", "dense", w, 1.0, delay=3),
             Projection("h", "h", "dense", r, 1.0, delay=1)]
    return Program(pops, projs, input="input", outputs=["h"], depth=3)


def _programs(nir_paper):
    rng = np.random.default_rng(0)
    braille = compile(read_graph(nir_paper / "braille_noDelay_noBias_subtract.nir"))
    # (program, input, steps): the delayed chain stops at its last input step, so the
    # spikes of its last 3 input steps never arrive (a replay ignoring the delay differs)
    return {"braille (recurrent)": (braille, rng.random((3, 25, 12)) < 0.3, None),
            "seed DVS (conv, pooled conv, dense)": (
                seed_program(), rng.random((2, 20, 2, 32, 32)) < 0.1, None),
            "delayed chain": (delayed_chain(), rng.random((2, 15, 30)) < 0.3, 15)}


def test_neurobench_counts_what_the_emulator_counts_per_population(nir_paper):
    """Per population and in total: spikes, activation sparsity, effective ACs and dense
    synaptic operations from NeuroBench 2.3.0's SynapticOperations /
    ActivationSparsityByLayer / ActivationSparsity (its TorchModel wrapper and hooks) equal
    the ones from the emulator's event counters; NeuroBench sees spikes, so no MACs."""
    for name, (prog, x, steps) in _programs(nir_paper).items():
        run = emulate(prog, x.astype(np.float32), steps, record=list(prog.populations))
        ours = activity.from_counters(prog, run)
        nb = activity.with_neurobench(prog, run)
        assert nb["source"].startswith("NeuroBench 2.3.0"), nb["source"]
        assert set(nb["per_population"]) == set(ours["per_population"]) == set(prog.populations)
        for pop, d in ours["per_population"].items():
            b = nb["per_population"][pop]
            for k in KEYS:
                assert b[k] == pytest.approx(d[k], rel=1e-9, abs=1e-9), (name, pop, k)
            assert b["effective_macs"] == 0, (name, pop)
        for k in ("effective_acs", "dense_synops", "activation_sparsity"):
            assert nb["total"][k] == pytest.approx(ours["total"][k], rel=1e-9), (name, k)
        assert ours["total"]["effective_acs"] > 0, name  # the nets are not silent


def test_dense_synops_count_every_synapse_a_spike_could_reach_at_every_step(nir_paper):
    """Dense synaptic operations = steps x the synapses of the program with every weight
    nonzero, counted by the event engine's own synapse list (padding taps and the rows a
    fused pool drops excluded): an independent count of what the conv replay computes."""
    prog, x, _ = _programs(nir_paper)["seed DVS (conv, pooled conv, dense)"]
    run = emulate(prog, x.astype(np.float32))
    per = activity.from_counters(prog, run)["per_population"]
    want = {n: 0.0 for n in prog.populations}
    for p in prog.projections:
        ones = replace(p, weight=np.ones_like(p.weight))
        want[p.post] += run.steps * len(fanout_table(ones, prog.populations[p.pre].shape)[1])
    assert any(p.conv.get("pool") for p in prog.projections)
    for n, v in want.items():
        assert per[n]["dense_synops"] == pytest.approx(v), n


def test_metrics_take_neurobench_where_every_population_is_recorded_else_the_counters():
    prog = delayed_chain()
    x = (np.random.default_rng(1).random((2, 10, 30)) < 0.3).astype(np.float32)
    assert activity.record_all(prog, 2, 13) == list(prog.populations)
    assert activity.record_all(prog, 10**6, 10**3) is None  # over the recording budget
    full = emulate(prog, x, record=list(prog.populations))
    part = emulate(prog, x)
    assert activity.metrics(prog, full)["source"] == activity.SOURCE_NEUROBENCH
    assert activity.metrics(prog, part)["source"] == activity.SOURCE_COUNTERS
    pl = place(prog)
    a, b = energy(pl, full, prog).activity, energy(pl, part, prog).activity
    assert a["per_population"]["h"]["effective_acs"] == pytest.approx(
        b["per_population"]["h"]["effective_acs"])
    # more input spikes, more effective ACs and less sparsity
    busy = emulate(prog, np.ones_like(x))
    c = energy(pl, busy, prog).activity
    assert c["per_population"]["h"]["effective_acs"] > b["per_population"]["h"]["effective_acs"]
    # every input neuron fires at the 10 input steps, none at the 3 steps of depth after them
    assert c["per_population"]["input"]["activation_sparsity"] == pytest.approx(3 / 13)


def test_energy_and_evaluate_json_and_report_carry_the_activity(monkeypatch, capsys, nir_paper,
                                                                tmp_path):
    graph = nir_paper / "braille_noDelay_noBias_subtract.nir"
    x = (np.random.default_rng(0).random((3, 20, 12)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2]))
    code, out, err = run_cli(monkeypatch, capsys, "energy", graph, "--input", tmp_path / "x.npy",
                             "--json", tmp_path / "e.json", "--report", tmp_path / "rep",
                             "--no-baseline")
    assert code == 0, err
    assert "activity per inference" in out and "effective ACs" in out
    e = json.loads((tmp_path / "e.json").read_text())["activity"]
    assert e["source"] == activity.SOURCE_NEUROBENCH  # small: every population recorded
    assert set(e["per_population"]) >= {"input", "lif2"} and e["total"]["effective_acs"] > 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["chip"]["activity"]["total"]["effective_acs"] > 0
    assert "Activity per inference" in (tmp_path / "rep" / "report.md").read_text()
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", graph, "--data",
                             tmp_path / "d.npz", "--json", tmp_path / "v.json")
    assert code == 0, err
    v = json.loads((tmp_path / "v.json").read_text())["chip"]["activity"]
    assert v["source"] == activity.SOURCE_COUNTERS  # every sample, from the counters
    assert v["per_population"]["lif2"]["effective_acs"] == pytest.approx(
        e["per_population"]["lif2"]["effective_acs"])  # same samples, same numbers
