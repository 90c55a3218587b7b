"""The energy model through compile -> place -> emulate, `spinnq energy`, and
`spinnq deploy --report`, on the NIR paper's third-party graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spinnq.graph import read_graph
from spinnq.s2.compile import compile
from spinnq.s2.emulate import emulate
from spinnq.s2.energy import energy, estimate_counters
from spinnq.s2.place import place
from tests.conftest import run_cli


@pytest.fixture
def braille(nir_paper, tmp_path):
    x = (np.random.default_rng(0).random((3, 40, 12)) < 0.2).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return nir_paper / "braille_noDelay_noBias_subtract.nir", tmp_path / "x.npy"


def test_emulated_run_costs_what_its_counters_say(nir_paper):
    g = read_graph(nir_paper / "braille_noDelay_noBias_subtract.nir")
    prog = compile(g)
    pl = place(prog)
    x = (np.random.default_rng(1).random((4, 30, 12)) < 0.2).astype(np.float32)
    run = emulate(prog, x)
    costs = {op: energy(pl, run, prog, op=op, tick_s=1e-3) for op in ("0.5V", "0.8V", "dvfs")}
    assert all(c.realtime for c in costs.values())  # a tiny network: real time at any point
    assert costs["0.5V"].energy_j == pytest.approx(costs["dvfs"].energy_j)
    assert costs["0.8V"].energy_j > costs["dvfs"].energy_j
    c = costs["0.8V"]
    assert c.pes == pl.pes and len(c.per_pe) == pl.pes and c.steps == 30 + prog.depth
    assert c.latency_s == pytest.approx((30 + prog.depth) * 1e-3)
    total = {n: sum(float(np.sum(v)) for v in d.values()) for n, d in run.counters.items()}
    assert all(total[n] > 0 for n in c.per_population)
    # more input spikes, more synaptic work, more dynamic energy
    busier = emulate(prog, (np.random.default_rng(1).random((4, 30, 12)) < 0.6).astype(np.float32))
    assert energy(pl, busier, prog, op="0.8V", tick_s=1e-3).dynamic_j > c.dynamic_j


def test_rate_estimate_matches_the_emulator_counters_of_a_conv_layer(nir_paper):
    """estimate_counters (planning without a run) agrees with the emulator's counts for the
    layer whose input rate is known: the input -> conv projection of the Sinabs CNN."""
    prog = compile(read_graph(nir_paper / "cnn_sinabs.nir"))
    rate, T = 0.05, 8
    x = (np.random.default_rng(2).random((4, T, 2, 34, 34)) < rate).astype(np.float32)
    run = emulate(prog, x, steps=T)
    first = next(p for p in prog.projections if p.pre == prog.input)
    est = estimate_counters(prog, {prog.input: float(x.mean())}, T)
    for k in ("packets_in", "macs"):
        emu = run.counters[first.post][k][1:].mean()  # the input reaches the layer at t + 1
        assert est[first.post][k][1] == pytest.approx(emu, rel=0.05), k
    # the estimate counts the padding taps too: within 10 %
    emu = run.counters[first.post]["syn_events"][1:].mean()
    assert est[first.post]["syn_events"][1] == pytest.approx(emu, rel=0.1)


def test_energy_command_prints_the_chip_table_and_writes_json(monkeypatch, capsys, braille,
                                                             tmp_path):
    graph, x = braille
    code, out, err = run_cli(monkeypatch, capsys, "energy", graph, "--input", x,
                             "--operating-point", "dvfs", "--tick-ms", "1",
                             "--json", tmp_path / "cost.json")
    assert code == 0, err
    assert "cost per inference (modelled), dvfs" in out and "per population" in out
    assert "feasible" in out and "lif1" in out and "chip base" in out
    assert "shortest feasible tick per level: 0.5V/75MHz" in out
    d = json.loads((tmp_path / "cost.json").read_text())
    assert set(d["shortest_ticks"]) == {"0.5V/75MHz", "0.5V", "0.8V/150MHz", "0.8V"}
    assert d["base_j"] + d["dynamic_j"] == pytest.approx(d["energy_j"])
    assert d["kind"] == "modelled" and d["operating_point"] == "dvfs" and d["tick_s"] == 1e-3
    assert len(d["per_pe"]) == d["pes"] and d["energy_j"] > 0


def test_a_huge_tick_is_feasible_but_never_called_real_time(monkeypatch, capsys, braille):
    graph, x = braille
    code, out, err = run_cli(monkeypatch, capsys, "energy", graph, "--input", x,
                             "--tick-ms", "1e9")
    assert code == 0, err
    assert "feasible" in out and "real time met" not in out


def test_tick_text_says_real_time_only_when_the_tick_equals_dt_times_the_speed_up():
    from spinnq.cli.energy import tick_text
    from spinnq.s2.published_fit import cartpole_cost
    c = cartpole_cost()  # 1 ms tick, met
    assert "real time: one tick per 1 ms step" in tick_text(c, dt=1e-3)
    assert "10x slower than real time" in tick_text(c, dt=1e-4)
    assert "real time" in tick_text(c, dt=1e-4, speedup=10)
    assert "feasible" in tick_text(c) and "real time" not in tick_text(c)
    c.tick_requested_s, c.realtime, c.overrun_steps = 1e-6, False, 3
    assert "NOT met at 3 steps" in tick_text(c, dt=1e-6) and "not real time" in tick_text(c)


@pytest.mark.parametrize("args, match", [
    (["--operating-point", "1.2V"], "--operating-point must be one of"),
    (["--tick-ms", "0"], "--tick-ms must be a positive"),
])
def test_energy_command_refuses_bad_options_in_one_line(monkeypatch, capsys, braille, args,
                                                        match):
    graph, x = braille
    code, out, err = run_cli(monkeypatch, capsys, "energy", graph, "--input", x, *args)
    assert code == 2 and match in err and "Traceback" not in err


def test_deploy_report_writes_the_report_with_chip_baseline_and_stages(monkeypatch, capsys,
                                                                      braille, tmp_path):
    graph, x = braille
    rep = tmp_path / "rep"
    code, out, err = run_cli(monkeypatch, capsys, "deploy", graph, "--input", x, "--out",
                             tmp_path / "o.npz", "--report", rep)
    assert code == 0, err
    d = json.loads((rep / "report.json").read_text())
    assert d["chip"]["kind"] == "modelled" and d["chip"]["tick_s"] == 1e-3
    assert d["chip"]["operating_point"] == "0.8V" and d["chip"]["timesteps"] == 40 + 2
    assert [b["device"] for b in d["baselines"]][0] == "cpu"
    assert d["baselines"][0]["kind"] == "measured" and d["baselines"][0]["latency_s"] > 0
    metrics = {(s["name"], s["metric"]) for s in d["stages"]}
    assert ("on chip (emulated)", "class agreement with float") in metrics
    assert d["ratios"][0]["latency_x"] > 0
    html = (rep / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "<table id='chip'>" in html


def test_energy_reads_a_chip_model_file_and_a_dvfs_threshold(monkeypatch, capsys, braille,
                                                              tmp_path):
    graph, x = braille
    (tmp_path / "m.json").write_text(json.dumps({"cycles": {"tick_overhead": 4000},
                                                 "unmodelled_static_w": 0.1}))
    code, out, err = run_cli(monkeypatch, capsys, "energy", graph, "--input", x,
                             "--operating-point", "dvfs", "--tick-ms", "1", "--chip-model",
                             tmp_path / "m.json", "--dvfs-threshold", "2", "--json",
                             tmp_path / "c.json")
    assert code == 0, err
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["unmodelled_j"] == pytest.approx(0.1 * d["run_s"] * d["chips"])
    assert d["chip_model"] == str(tmp_path / "m.json")
    assert set(d["dvfs_thresholds"].values()) == {2.0}
    assert d["energy_low_j"] < d["energy_j"] < d["energy_high_j"]
    assert "lower bound" in out and "range" in out
    (tmp_path / "bad.json").write_text(json.dumps({"cycles": {"tick_overhead": 1e9}}))
    code, out, err = run_cli(monkeypatch, capsys, "energy", graph, "--input", x,
                             "--chip-model", tmp_path / "bad.json")
    assert code == 2 and "tick_overhead" in err and "outside its range" in err


def test_energy_fit_command_writes_the_fitted_model_and_says_what_it_cannot_pin(
        monkeypatch, capsys, braille, tmp_path):
    from spinnq.s2.chip import ChipModel
    graph, _ = braille
    g = read_graph(graph)
    prog = compile(g)
    pl = place(prog)
    truth = ChipModel.default().with_values({"tick_overhead": 3000.0, "syn_word": 15.0})
    runs = []
    for i, rate in enumerate((0.05, 0.2, 0.4, 0.6)):
        x = (np.random.default_rng(i).random((2, 30, 12)) < rate).astype(np.float32)
        np.save(tmp_path / f"x{i}.npy", x)
        for op, tick in (("0.8V", 1.0), ("0.5V", 2.0)):
            c = energy(pl, emulate(prog, x), prog, op=op, tick_s=tick * 1e-3, model=truth)
            runs.append({"graph": str(graph), "input": f"x{i}.npy", "measured_j": c.dynamic_j,
                         "basis": "dynamic", "operating_point": op, "tick_ms": tick})
    (tmp_path / "meas.json").write_text(json.dumps({"runs": runs}))
    code, out, err = run_cli(monkeypatch, capsys, "energy-fit", tmp_path / "meas.json",
                             "--out", tmp_path / "fit.json", "--free",
                             "tick_overhead,syn_word,packet_sent", "--json", tmp_path / "r.json")
    assert code == 0, err
    fitted = ChipModel.load(tmp_path / "fit.json").values()
    assert fitted["tick_overhead"] == pytest.approx(3000, rel=0.02)
    assert fitted["syn_word"] == pytest.approx(15, rel=0.02)
    r = json.loads((tmp_path / "r.json").read_text())
    assert max(abs(x["error"]) for x in r["residuals"]) < 0.01
    assert "residuals" in out and "fitted constants" in out
    code, out, err = run_cli(monkeypatch, capsys, "energy-fit", tmp_path / "nope.json",
                             "--out", tmp_path / "f2.json")
    assert code == 2 and "nope.json: no such file" in err
    (tmp_path / "bad.json").write_text("{not json")
    code, out, err = run_cli(monkeypatch, capsys, "energy-fit", tmp_path / "bad.json",
                             "--out", tmp_path / "f3.json")
    assert code == 2 and "measurements is not JSON" in err and "bad.json" in err
