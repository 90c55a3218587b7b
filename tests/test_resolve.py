"""One settings resolver for every door: the commands (deploy, export, energy, evaluate,
quantize), a sweep trial and the Python API resolve the same graph metadata and flags into the
same settings, and a sweep trial scores exactly what `spinnq evaluate` scores with its settings.
"""

from __future__ import annotations

import json
import random
import shlex

import nir
import numpy as np
import pytest

import spinnq as sq
from spinnq.errors import InputError
from spinnq.graph.meta import stamp
from spinnq.resolver import RunSettings, resolve
from spinnq.sweep.runner import write_best
from spinnq.sweep.space import settings as trial_settings
from spinnq.sweep.trial import GraphProblem, run_trial
from tests.conftest import dense_lif_graph, run_cli

N, T = 6, 8


def spikes(rng: np.random.Generator, n: int, shape: tuple, p: float = 0.4) -> np.ndarray:
    return (rng.random((n, T, *shape)) < p).astype(np.float32)


# ------------------------------------------------------------------- the ranking, by hand
def test_flags_beat_metadata_beat_convention_defaults_beat_spinnq_defaults():
    assert resolve() == RunSettings()  # no graph, no flags: spinnq's defaults
    assert resolve(convention="snntorch").reset == "subtract"  # the convention's default
    assert resolve(convention="norse").dt == 1e-3
    graph = _graph(stamp({}, convention="norse", reset="subtract"))
    rs = resolve(graph)
    assert (rs.convention, rs.reset, rs.dt) == ("norse", "subtract", 1e-3)  # file > defaults
    rs = resolve(graph, reset="zero", dt=5e-4, convention="nir")  # flags > file
    assert (rs.convention, rs.reset, rs.dt) == ("nir", "zero", 5e-4)
    assert resolve(graph, settings=rs) == rs  # a settings object is already resolved
    assert resolve(graph, settings={"reset": "zero"}).reset == "zero"
    assert RunSettings().tick_s == 1e-3 and resolve(tick_s="shortest").tick_s is None
    with pytest.raises(InputError, match="unknown run setting"):
        resolve(graph, colour="blue")


def _graph(metadata: dict | None = None, w_meta: dict | None = None):
    from spinnq.graph.model import from_nir

    return from_nir(dense_lif_graph(np.random.default_rng(0), metadata, w_meta))


def test_a_graph_with_scales_runs_with_them_and_its_bits_unless_told_otherwise():
    g = _graph(stamp({}, bits=4), {"w_scale": 7.0, "bits": 4})
    rs = resolve(g)
    assert rs.graph_scales and rs.bits == 4
    assert not resolve(g, weight_scale="p99").graph_scales  # a weight scale given wins
    assert not resolve(g, graph_scales=False).graph_scales
    assert resolve(_graph(None, {"w_scale": 7.0, "bits": 4})).bits == 4  # the nodes' bits
    assert resolve(g, bits=8).bits == 8
    assert not resolve(_graph()).graph_scales and resolve(_graph()).bits == 8


# ------------------------------------------------------- every door, random combinations
CONVENTIONS = (None, "nir", "snntorch", "norse", "spikingjelly", "rockpool")
CHOICES = {
    "convention": CONVENTIONS, "reset": (None, "zero", "subtract"), "dt": (None, 1e-3, 5e-4),
    "integrator": (None, "forward", "forward", "exponential"),
    "bits": (None, 8, 4, "lif=4", "4,lif=8", "nope=4"),  # per population: 'lif' is the one
    "weight_scale": (None, None, "max", "p99"), "graph_scales": (None, None, True, False),
    "delayed_reset": (None, None, False, True), "tick_s": (None, "shortest", 2e-3),
    "operating_point": (None, "0.5V", "dvfs"), "neurons_per_pe": (None, None, 2),
}


def draw(r: random.Random) -> tuple[dict, dict | None, dict]:
    """(graph metadata, weight-node metadata, flags)."""
    md = {k: r.choice(v) for k, v in (("convention", CONVENTIONS),
                                      ("reset", (None, "zero", "subtract")),
                                      ("dt", (None, 2e-4)),
                                      ("bits", (None, 8, 4, "lif=4", "8,lif=4")),
                                      ("integrator", (None, None, "exponential")),
                                      ("delayed_reset", (None, None, None, True)))}
    w_meta = r.choice((None, {"w_scale": 9.0, "bits": r.choice((8, 4))}))
    flags = {k: r.choice(v) for k, v in CHOICES.items()}
    return stamp({}, **md), w_meta, flags


def cli_flags(flags: dict, keys: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for k in keys:
        v = flags.get(k)
        if v is None:
            continue
        if k == "tick_s":
            out += ["--tick-ms", v if isinstance(v, str) else repr(v * 1e3)]
        elif k == "graph_scales":
            out.append("--graph-scales" if v else "--no-graph-scales")
        elif k == "delayed_reset":
            out.append("--delayed-reset" if v else "--no-delayed-reset")
        else:
            out += ["--" + k.replace("_", "-"), str(v)]
    return out


ALL = tuple(CHOICES)
EXPORT = ("convention", "reset", "dt", "integrator", "bits", "weight_scale", "graph_scales",
          "delayed_reset")
QUANTIZE = tuple(k for k in ALL if k not in ("weight_scale", "graph_scales"))


def expected(g, flags: dict, keys: tuple[str, ...]) -> RunSettings | str:
    """What the resolver gives with the flags a door takes, or its one-line error."""
    try:
        return resolve(g, **{k: flags[k] for k in keys})
    except InputError as e:
        return str(e)


def check_door(code: int, err: str, want: RunSettings | str, got: dict | None) -> None:
    if isinstance(want, str):
        assert code == 2 and want in err, (want, err)
    else:
        assert code == 0, err
        assert got == want.to_dict()


def run_doors(monkeypatch, capsys, tmp_path, g, path, x, data, flags) -> None:
    j = tmp_path / "out.json"
    # deploy: --summary JSON (settings, and the S2Config they make)
    want = expected(g, flags, ALL)
    code, out, err = run_cli(monkeypatch, capsys, "deploy", path, "--input", x, "--out",
                             tmp_path / "o.npz", "--summary", j, *cli_flags(flags, ALL))
    got = json.loads(j.read_text()) if code == 0 else None
    check_door(code, err, want, got and got["settings"])
    if got:
        assert got["config"]["convention"] == want.s2().convention
        keys = ("dt", "reset", "bits", "bits_by_population", "graph_scales", "weight_scale",
                "delayed_reset")
        assert {k: got["config"][k] for k in keys} == {k: getattr(want.s2(), k) for k in keys}
        j.unlink()
        assert want.line() in out
    # energy --json
    code, out, err = run_cli(monkeypatch, capsys, "energy", path, "--input", x, "--json", j,
                             *cli_flags(flags, ALL))
    check_door(code, err, want, json.loads(j.read_text())["settings"] if code == 0 else None)
    if code == 0:
        j.unlink()
    # evaluate --json
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", path, "--data", data, "--json",
                             j, *cli_flags(flags, ALL))
    check_door(code, err, want, json.loads(j.read_text())["settings"] if code == 0 else None)
    if code == 0:
        j.unlink()
    # the API: evaluate records its settings; deploy compiles with the same S2Config
    xs, ys = np.load(data)["x"], np.load(data)["y"]
    try:
        res = sq.evaluate(g, (xs, ys), **flags)
        assert not isinstance(want, str) and res.settings == want
        seen = []
        import spinnq.pipeline as pipeline

        real = pipeline.compile_graph
        monkeypatch.setattr(pipeline, "compile_graph",
                            lambda graph, cfg: seen.append(cfg) or real(graph, cfg))
        sq.deploy(g, xs, **flags)
        monkeypatch.setattr(pipeline, "compile_graph", real)
        assert seen == [want.s2()]
    except InputError as e:
        assert isinstance(want, str) and want == str(e)
    # export: the printed line
    want_x = expected(g, flags, EXPORT)
    code, out, err = run_cli(monkeypatch, capsys, "export", path, "--out", tmp_path / "q.nir",
                             *cli_flags(flags, EXPORT))
    if isinstance(want_x, str):
        assert code == 2 and want_x in err
    else:
        assert code == 0 and want_x.line() in out, (out, err)
    # quantize --json: the settings the written graph runs with (its scales)
    want_q = expected(g, flags, QUANTIZE)
    want_q = want_q if isinstance(want_q, str) else want_q.with_(graph_scales=True)
    code, out, err = run_cli(monkeypatch, capsys, "quantize", path, "--data", data, "--out",
                             tmp_path / "cal.nir", "--percentiles", "max", "--json", j,
                             *cli_flags(flags, QUANTIZE))
    check_door(code, err, want_q, json.loads(j.read_text())["settings"] if code == 0 else None)
    if code == 0:
        j.unlink()


def sweep_door(g, xs, ys, flags) -> None:
    """A sweep trial's settings: the problem's convention/reset/dt, the trial's chip keys."""
    s = {"bits": flags["bits"] or 8, "weight_scale": flags["weight_scale"] or "max",
         "operating_point": flags["operating_point"] or "0.8V",
         "tick_ms": (flags["tick_s"] if flags["tick_s"] == "shortest" else
                     1.0 if flags["tick_s"] is None else flags["tick_s"] * 1e3),
         "neurons_per_pe": flags["neurons_per_pe"] or 0}
    sweep_flags = {"convention": flags["convention"], "reset": flags["reset"],
                   "dt": flags["dt"], "bits": s["bits"], "weight_scale": s["weight_scale"],
                   "operating_point": s["operating_point"], "neurons_per_pe":
                   s["neurons_per_pe"], "tick_s": "shortest" if s["tick_ms"] == "shortest"
                   else s["tick_ms"] * 1e-3}
    want = expected(g, sweep_flags, tuple(sweep_flags))
    try:
        p = GraphProblem(g, xs, ys, convention=flags["convention"], reset=flags["reset"],
                         dt=flags["dt"])
        got = p.run_settings(trial_settings(s))
        assert got == want and p.s2_config(trial_settings(s)) == want.s2()
    except InputError as e:
        assert isinstance(want, str) and want == str(e)


@pytest.mark.parametrize("n_commands", [
    6, pytest.param(50, marks=pytest.mark.slow, id="all-50-through-the-commands")])
def test_every_door_resolves_random_metadata_and_flags_the_same(monkeypatch, capsys, tmp_path,
                                                                n_commands):
    """50 seeded draws through the resolver's users (sweep trial, API); the first
    `n_commands` also through deploy, energy, evaluate, export and quantize."""
    r = random.Random(20)
    rng = np.random.default_rng(0)
    x = tmp_path / "x.npy"
    data = tmp_path / "d.npz"
    xs = spikes(rng, N, (4,))
    ys = rng.integers(0, 3, N)
    np.save(x, xs[:2].astype(np.uint8))
    np.savez(data, x=xs.astype(np.uint8), y=ys)
    for i in range(50):
        md, w_meta, flags = draw(r)
        path = tmp_path / f"g{i}.nir"
        sq.write_graph(dense_lif_graph(rng, md, w_meta), path)
        g = sq.read_graph(path)
        sweep_door(g, xs, ys, flags)
        if i < n_commands:  # each runs five commands and the API
            run_doors(monkeypatch, capsys, tmp_path, g, path, x, data, flags)


# --------------------------------------------- a sweep trial = evaluate with its settings
def sj_conv_graph(rng: np.random.Generator) -> nir.NIRGraph:
    """A SpikingJelly-style conv net (IF neurons, its convention in the metadata)."""
    conv = nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0, 1.0, (2, 1, 3, 3)),
                      stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(2))
    fc = nir.Affine(weight=rng.normal(0, 1.0, (3, 32)), bias=np.zeros(3))
    if1 = nir.IF(r=np.full((2, 4, 4), 1e4), v_threshold=np.ones((2, 4, 4)))
    if2 = nir.IF(r=np.full(3, 1e4), v_threshold=np.ones(3))
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([1, 6, 6])), "conv": conv, "if1": if1,
               "flat": nir.Flatten(start_dim=0, input_type={"input": np.array([2, 4, 4])}),
               "fc": fc, "if2": if2, "output": nir.Output(np.array([3]))},
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "flat"), ("flat", "fc"),
               ("fc", "if2"), ("if2", "output")],
        metadata=stamp({}, convention="spikingjelly"))


def norse_cuba_graph(rng: np.random.Generator) -> nir.NIRGraph:
    """A Norse-style CubaLIF MLP (no convention recorded: the flag says it)."""
    def cuba(n: int) -> nir.CubaLIF:
        return nir.CubaLIF(tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.ones(n),
                           v_leak=np.zeros(n), v_threshold=np.full(n, 0.4), v_reset=np.zeros(n),
                           w_in=np.ones(n))
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.array([4])),
               "fc1": nir.Affine(weight=rng.normal(0, 1.5, (6, 4)), bias=np.zeros(6)),
               "l1": cuba(6), "fc2": nir.Affine(weight=rng.normal(0, 1.5, (3, 6)),
                                                 bias=np.zeros(3)),
               "l2": cuba(3), "output": nir.Output(np.array([3]))},
        edges=[("input", "fc1"), ("fc1", "l1"), ("l1", "fc2"), ("fc2", "l2"), ("l2", "output")])


@pytest.mark.parametrize("kind, convention, shape", [
    ("spikingjelly conv", None, (1, 6, 6)), ("norse CubaLIF", "norse", (4,))])
def test_a_sweep_trial_scores_what_evaluate_scores_with_its_settings(
        monkeypatch, capsys, tmp_path, kind, convention, shape):
    rng = np.random.default_rng(3)
    g_nir = sj_conv_graph(rng) if kind.startswith("spiking") else norse_cuba_graph(rng)
    path = sq.write_graph(g_nir, tmp_path / "g.nir")
    x = spikes(rng, 12, shape, 0.5).astype(np.uint8)
    y = rng.integers(0, 3, 12)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    problem = GraphProblem.from_files(path, data, convention=convention)
    want_conv = convention or "spikingjelly"
    for s in ({}, {"bits": 4, "operating_point": "0.5V", "tick_ms": "shortest"}):
        rec = run_trial(problem, trial_settings(s), seed=0)
        assert rec["error"] == "" and rec["run_settings"]["convention"] == want_conv
        rs = RunSettings(**rec["run_settings"])
        flags = rs.flags(pricing=True)
        j = tmp_path / "e.json"
        code, out, err = run_cli(monkeypatch, capsys, "evaluate", path, "--data", data,
                                 "--batch", len(y), "--json", j, *flags)
        assert code == 0, err
        ev = json.loads(j.read_text())
        assert ev["settings"] == rec["run_settings"]
        assert ev["chip"]["accuracy"] == rec["accuracy"]
        assert ev["chip"]["energy_j"] == rec["energy_j"]
        # the API, given the convention (and the trial's other settings) as keywords
        res = sq.evaluate(sq.read_graph(path), (x, y), batch=len(y), convention=convention,
                          bits=rs.bits, operating_point=rs.operating_point,
                          tick_s="shortest" if rs.tick_s is None else rs.tick_s)
        assert res.settings == rs
        assert (res.chip.accuracy, res.chip.cost.energy_j) == (rec["accuracy"], rec["energy_j"])
        # best.md's evaluate command, on the exported best.nir, gives the trial's numbers
        best = tmp_path / f"sweep{len(s)}"
        best.mkdir()
        md = write_best(problem, best, rec)["best_md"].read_text()
        line = next(ln for ln in md.splitlines() if ln.startswith("spinnq evaluate"))
        monkeypatch.chdir(best)
        code, out, err = run_cli(monkeypatch, capsys, *shlex.split(line)[1:])
        assert code == 0, err
        ev = json.loads((best / "best_eval.json").read_text())["chip"]
        assert (ev["accuracy"], ev["energy_j"]) == (rec["accuracy"], rec["energy_j"])
    # the convention matters here: NIR's reading of the same file runs another network
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", path, "--data", data, "--batch",
                             len(y), "--json", j, "--convention", "nir", *flags[2:])
    assert code == 0, err
    nir_ev = json.loads(j.read_text())["chip"]
    assert (nir_ev["accuracy"], nir_ev["energy_j"]) != (rec["accuracy"], rec["energy_j"])


def test_a_4_bit_graph_from_quantize_runs_at_4_bits_with_its_scales_with_no_flags(
        monkeypatch, capsys, tmp_path):
    rng = np.random.default_rng(1)
    path = sq.write_graph(dense_lif_graph(rng, stamp({}, convention="snntorch")), tmp_path / "g.nir")
    xs, ys = spikes(rng, N, (4,)).astype(np.uint8), rng.integers(0, 3, N)
    data, x, q = tmp_path / "d.npz", tmp_path / "x.npy", tmp_path / "q.nir"
    np.savez(data, x=xs, y=ys)
    np.save(x, xs[:2])
    code, out, err = run_cli(monkeypatch, capsys, "quantize", path, "--data", data, "--out", q,
                             "--bits", "4", "--percentiles", "max,p99")
    assert code == 0, err
    want = resolve(sq.read_graph(q))
    assert (want.bits, want.graph_scales, want.convention, want.reset) == (4, True, "snntorch",
                                                                           "subtract")
    j = tmp_path / "s.json"
    for cmd, args, key in (("deploy", ("--input", x, "--out", tmp_path / "o.npz",
                                       "--summary", j), "settings"),
                           ("energy", ("--input", x, "--json", j), "settings"),
                           ("evaluate", ("--data", data, "--json", j), "settings")):
        code, out, err = run_cli(monkeypatch, capsys, cmd, q, *args)
        assert code == 0, err
        assert json.loads(j.read_text())[key] == want.to_dict(), cmd
        assert want.line() in out
    code, out, err = run_cli(monkeypatch, capsys, "export", q, "--out", tmp_path / "e.nir")
    assert code == 0 and want.line() in out
    assert sq.read_graph(tmp_path / "e.nir").metadata["spinnq.bits"] == 4
    # a sweep's default trial runs it the same way: its bits, its scales
    problem = GraphProblem.from_files(q, data)
    assert problem.default()["bits"] == 4 and problem.default()["weight_scale"] == "graph"
    rec = run_trial(problem, problem.default(), seed=0)
    assert rec["error"] == "" and rec["run_settings"] == want.to_dict()
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", q, "--data", data, "--batch", N,
                             "--json", j)
    ev = json.loads(j.read_text())["chip"]
    assert code == 0 and (ev["accuracy"], ev["energy_j"]) == (rec["accuracy"], rec["energy_j"])


def test_quantize_and_evaluate_take_the_delayed_reset_they_suggest(monkeypatch, capsys,
                                                                   tmp_path):
    rng = np.random.default_rng(2)
    path = sq.write_graph(dense_lif_graph(rng, stamp({}, convention="snntorch")), tmp_path / "g.nir")
    data, q, j = tmp_path / "d.npz", tmp_path / "q.nir", tmp_path / "q.json"
    np.savez(data, x=spikes(rng, N, (4,)).astype(np.uint8), y=rng.integers(0, 3, N))
    code, out, err = run_cli(monkeypatch, capsys, "quantize", path, "--data", data, "--out", q,
                             "--percentiles", "max", "--delayed-reset", "--json", j)
    assert code == 0, err
    assert json.loads(j.read_text())["settings"]["delayed_reset"] is True
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", q, "--data", data,
                             "--delayed-reset", "--json", j)
    assert code == 0, err
    got = json.loads(j.read_text())["settings"]
    assert got["delayed_reset"] and got["graph_scales"]


def test_the_api_takes_the_commands_settings_as_keywords_or_one_object():
    rng = np.random.default_rng(4)
    g = _graph()
    data = (spikes(rng, 12, (4,)), rng.integers(0, 3, 12))
    cal = sq.calibrate(g, data, percentiles=("max",), convention="norse", reset="subtract")
    md = cal.graph.metadata
    assert (md["spinnq.convention"], md["spinnq.reset"], md["spinnq.dt"]) == ("norse",
                                                                            "subtract", 1e-3)
    rs = sq.resolve(cal.graph, tick_s="shortest")
    assert rs.graph_scales and rs.convention == "norse" and rs.tick_s is None
    ft = sq.finetune(cal.graph, data, epochs=0, settings=rs)
    assert ft.graph.metadata["spinnq.convention"] == "norse"
    res = sq.evaluate(cal.graph, data, settings=rs, operating_point="0.5V")
    assert res.settings == rs.with_(operating_point="0.5V")
    assert res.chip.cost.tick_requested_s is None and res.chip.cost.operating_point == "0.5V"
    with pytest.raises(InputError, match="unknown run setting"):
        sq.evaluate(g, data, convnetion="norse")
