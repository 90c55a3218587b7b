"""Per-population weight widths (`--bits l1=4,l2=8`): each projection is quantized at its
population's width, both emulator engines agree, the memory report is the sum of every
projection's weights times its width, a graph `quantize` writes runs at its widths with no
flags, and a bad spec is one line with exit 2."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import spinnq as sq
from spinnq.errors import InputError
from spinnq.graph.model import from_nir
from spinnq.quant.finetuning import ChipNet
from spinnq.resolver import resolve
from spinnq.s2 import S2Config, compile
from spinnq.s2.emulate import emulate
from spinnq.s2.energy import energy
from spinnq.s2.place import place, summarize
from spinnq.settings import parse_bits
from spinnq.sweep.space import parse_space
from spinnq.sweep.space import settings as trial_settings
from spinnq.sweep.trial import GraphProblem, run_trial
from tests.conftest import run_cli

SPEC = "l1=4,l2=8"


def mlp(seed: int = 0) -> nir.NIRGraph:
    """Input(16) -> fc1 -> IF l1(12) -> fc2 -> IF l2(4) -> Output: both layers fire."""
    rng = np.random.default_rng(seed)

    def if_(n: int) -> nir.IF:
        return nir.IF(r=np.ones(n), v_threshold=np.full(n, 1.0))
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([16])),
               "fc1": nir.Affine(weight=rng.normal(0.25, 0.6, (12, 16)), bias=np.zeros(12)),
               "l1": if_(12),
               "fc2": nir.Affine(weight=rng.normal(0.3, 0.8, (4, 12)), bias=np.zeros(4)),
               "l2": if_(4), "output": nir.Output(np.array([4]))},
        edges=[("input", "fc1"), ("fc1", "l1"), ("l1", "fc2"), ("fc2", "l2"),
               ("l2", "output")])


def spikes(n: int = 6, T: int = 12, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, T, 16)) < 0.4).astype(np.float32)


def test_each_projection_is_quantized_at_its_populations_width_and_both_engines_agree():
    g = from_nir(mlp())
    cfg = resolve(g, bits=SPEC).s2()
    assert (cfg.bits_of("l1"), cfg.bits_of("l2")) == (4, 8)
    runs = {}
    for engine in ("torch", "events"):
        prog = compile(g, cfg.with_(engine=engine))
        by_post = {p.post: p for p in prog.projections}
        assert (by_post["l1"].bits, by_post["l2"].bits) == (4, 8)
        assert np.abs(by_post["l1"].weight).max() == 15  # 'max' scale: the 4-bit range
        assert np.abs(by_post["l2"].weight).max() == 127
        runs[engine] = emulate(prog, spikes(), record=["l1", "l2"])
    for pop in ("l1", "l2"):
        assert runs["torch"].spikes[pop].sum() > 0  # a silent layer would prove nothing
        assert np.array_equal(runs["torch"].spikes[pop], runs["events"].spikes[pop])
        assert np.array_equal(runs["torch"].v[pop], runs["events"].v[pop])
    # the chip-exact training module computes what the emulator computes, at these widths
    net = ChipNet(g, cfg)
    assert {p.bits for p in net.projs} == {4, 8}
    import torch

    with torch.no_grad():
        out, _ = net(torch.from_numpy(spikes()))
    assert np.array_equal(out["l2"].reshape(runs["torch"].spikes["l2"].shape).numpy(),
                          runs["torch"].spikes["l2"].numpy())


def test_weights_memory_is_every_projections_weights_times_its_width(monkeypatch, capsys,
                                                                    tmp_path):
    path = sq.write_graph(mlp(), tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", spikes(2).astype(np.uint8))
    for bits, widths in ((SPEC, (4, 8)), ("4", (4, 4)), ("8", (8, 8)), ("8,l1=4", (4, 8))):
        j = tmp_path / f"s{widths}{bits}.json"
        code, out, err = run_cli(monkeypatch, capsys, "deploy", path, "--input",
                                 tmp_path / "x.npy", "--out", tmp_path / "o.npz",
                                 "--summary", j, "--bits", bits)
        assert code == 0, err
        s = json.loads(j.read_text())
        n = {"l1": 16 * 12, "l2": 12 * 4}
        per = {p: n[p] * b // 8 for p, b in zip(("l1", "l2"), widths, strict=True)}  # bytes
        assert {p: s["populations"][p]["weights_bytes"] for p in per} == per
        assert {p: s["populations"][p]["bits"] for p in per} == dict(zip(per, widths,
                                                                         strict=True))
        assert s["weights_bytes"] == sum(per.values())
        assert f"weights memory {sum(per.values()):,} bytes" in out
    # the energy model prices the same placement: its weight memory follows the widths
    g = from_nir(mlp())
    cfg = resolve(g, bits=SPEC).s2()
    prog = compile(g, cfg)
    pl = place(prog, cfg)
    cost = energy(pl, emulate(prog, spikes(2)), prog)
    assert cost.weights_bytes == summarize(prog, pl)["weights_bytes"] == 96 + 48
    assert {p: (d["bits"], d["weights_bytes"]) for p, d in cost.per_population.items()
            if d["bits"]} == {"l1": (4, 96), "l2": (8, 48)}


def test_quantize_writes_a_graph_that_evaluate_runs_at_its_widths_with_no_flags(
        monkeypatch, capsys, tmp_path):
    path = sq.write_graph(mlp(), tmp_path / "g.nir")
    x = spikes(24, seed=5).astype(np.uint8)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=np.random.default_rng(0).integers(0, 4, len(x)))
    q = tmp_path / "q.nir"
    code, out, err = run_cli(monkeypatch, capsys, "quantize", path, "--data", data, "--out", q,
                             "--bits", SPEC, "--percentiles", "max,p99")
    assert code == 0, err
    g = sq.read_graph(q)
    assert g.metadata["spinnq.bits"] == "8," + SPEC  # the settings it ran with: 8 for the rest
    assert {n: g.nodes[n].metadata["bits"] for n in ("fc1", "fc2")} == {"fc1": 4, "fc2": 8}
    j = tmp_path / "e.json"
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", q, "--data", data, "--json", j)
    assert code == 0, err
    rs = json.loads(j.read_text())["settings"]
    assert rs["bits_by_population"] == {"l1": 4, "l2": 8} and rs["graph_scales"]
    assert "8 bit (l1=4, l2=8)" in out
    prog = compile(g, resolve(g).s2())
    assert {p.post: (p.bits, int(np.abs(p.weight).max()) <= (15 if p.bits == 4 else 127))
            for p in prog.projections} == {"l1": (4, True), "l2": (8, True)}
    # without the stamp the weight nodes' own widths say the same
    g.metadata = {k: v for k, v in g.metadata.items() if k != "spinnq.bits"}
    assert resolve(g).bits_by_population == {"l1": 4, "l2": 8}
    # export keeps the widths: graph metadata and each weight node
    code, out, err = run_cli(monkeypatch, capsys, "export", q, "--out", tmp_path / "x.nir")
    assert code == 0, err
    xg = sq.read_graph(tmp_path / "x.nir")
    assert parse_bits(xg.metadata["spinnq.bits"])[1] == {"l1": 4, "l2": 8}
    assert (xg.nodes["fc1"].metadata["bits"], xg.nodes["fc2"].metadata["bits"]) == (4, 8)


@pytest.mark.parametrize("spec, words", [
    ("l9=4", ["l9", "populations: l1, l2"]),
    ("l1=6", ["l1=6", "8 or 4 bits"]),
    ("6", ["8 or 4 bits"]),
    ("l1=x", ["l1=x"]),
    ("l1=4,l1=8", ["l1 given twice"]),
])
def test_a_bad_bits_spec_is_one_line_exit_2(monkeypatch, capsys, tmp_path, spec, words):
    path = sq.write_graph(mlp(), tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", spikes(1).astype(np.uint8))
    for cmd in (["deploy", path, "--input", tmp_path / "x.npy", "--out", tmp_path / "o.npz"],
                ["energy", path, "--input", tmp_path / "x.npy"],
                ["export", path, "--out", tmp_path / "q.nir"]):
        code, out, err = run_cli(monkeypatch, capsys, *cmd, "--bits", spec)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (cmd, err)
        assert all(w in lines[0] for w in words), lines[0]


def test_the_sweep_takes_a_per_population_bits_choice(tmp_path):
    space = parse_space(["bits=8,l1=4+l2=8"])
    assert space == {"bits": (8, SPEC)}
    g = from_nir(mlp())
    x = spikes(8).astype(np.uint8)
    problem = GraphProblem(g, x, np.zeros(len(x), np.int64))
    rec = run_trial(problem, trial_settings({"bits": SPEC}), seed=0)
    assert rec["error"] == "" and rec["run_settings"]["bits_by_population"] == {"l1": 4,
                                                                                 "l2": 8}
    assert rec["weights_bytes"] == 16 * 12 * 4 // 8 + 12 * 4 * 8 // 8  # trials.csv's column
    assert "no population 'l9'" in run_trial(problem, trial_settings({"bits": "l9=4"}),
                                             seed=0)["error"]
    with pytest.raises(InputError, match="8 or 4 bits"):
        parse_space(["bits=8,l1=5"])
    # calibrate and the resolver agree on what the graph's bits mean
    cal = sq.calibrate(g, (x, None), bits=SPEC, percentiles=("max",))
    assert cal.bits == "8," + SPEC and resolve(cal.graph).s2().bits_of("l1") == 4
    assert S2Config().with_bits("l1=4").with_bits("8").bits_by_population == {}
