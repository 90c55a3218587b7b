"""Every user error of the graph/chip commands is one line at 80 columns (exit 2), checked
before any work, and leaves no file behind."""

import nir
import numpy as np
import pytest

from spinnq.errors import GraphError
from spinnq.graph.model import from_nir
from tests.conftest import run_cli


def tiny_graph(path, n_in=3, n_out=2):
    """Input(3) -> Affine -> LIF(2) -> Output, written with nir.write."""
    rng = np.random.default_rng(0)
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc": nir.Affine(weight=rng.normal(0, 1, (n_out, n_in)).astype(np.float32),
                         bias=np.zeros(n_out, np.float32)),
        "lif": nir.LIF(tau=np.full(n_out, 0.02), r=np.ones(n_out), v_leak=np.zeros(n_out),
                       v_threshold=np.ones(n_out)),
        "output": nir.Output(output_type={"output": np.array([n_out])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(str(path), g)
    return path


@pytest.fixture
def files(tmp_path):
    tiny_graph(tmp_path / "g.nir")
    np.save(tmp_path / "x.npy", (np.random.default_rng(1).random((20, 3)) < 0.3).astype(
        np.float32))
    (tmp_path / "existing").mkdir()
    (tmp_path / "afile").write_text("x")
    return tmp_path


def _tree(p):
    return sorted(str(x.relative_to(p)) for x in p.rglob("*"))


BASE = {"simulate": ["simulate", "{t}/g.nir", "--input", "{t}/x.npy"],
        "deploy": ["deploy", "{t}/g.nir", "--input", "{t}/x.npy"],
        "export": ["export", "{t}/g.nir"],
        "energy": ["energy", "{t}/g.nir", "--input", "{t}/x.npy"]}


@pytest.mark.parametrize("cmd, extra, message", [
    ("simulate", ["--out", "{t}/existing"], "--out is a folder"),
    ("deploy", ["--out", "{t}/existing"], "--out is a folder"),
    ("export", ["--out", "{t}/existing"], "--out is a folder"),
    ("simulate", ["--out", ""], "--out is empty"),
    ("deploy", ["--out", "/proc/x"], "cannot write in /proc"),
    ("export", ["--out", "/proc/x"], "cannot write in /proc"),
    ("deploy", ["--out", "{t}/o.npz", "--summary", "{t}/existing"], "--summary is a folder"),
    ("deploy", ["--out", "{t}/o.npz", "--report", "{t}/afile"], "--report must be a folder"),
    ("energy", ["--json", "{t}/existing"], "--json is a folder"),
    ("energy", ["--report", "{t}/afile"], "--report must be a folder"),
    ("simulate", ["--out", "{t}/afile/o.npz"], "is a file, not a folder"),
])
def test_bad_output_paths_are_one_line_exit_2_nothing_left(monkeypatch, capsys, files, cmd,
                                                           extra, message):
    before = _tree(files)
    args = [a.format(t=files) for a in BASE[cmd] + extra]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert _tree(files) == before


@pytest.mark.parametrize("extra, message", [
    (["--steps", "-5"], "--steps must be >= 1"),
    (["--record", "nosuch"], "--record nosuch: no such node"),
    (["--backend", "spinnaker2"], "needs --eth-ip"),
    (["--input", "{t}/bad.npy"], "input has shape (20, 4)"),
])
def test_deploy_checks_flags_and_input_before_compiling(monkeypatch, capsys, files, extra,
                                                        message):
    np.save(files / "bad.npy", np.zeros((20, 4), np.float32))
    args = [a.format(t=files) for a in BASE["deploy"] + ["--out", "{t}/o.npz"] + extra]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and message in err, err
    assert "placement" not in out and "PEs" not in out  # nothing compiled or printed first
    assert not (files / "o.npz").exists()


def test_long_errors_stay_on_one_line_at_80_columns(monkeypatch, capsys, files):
    deep = files / ("a-very-long-folder-name-" * 4) / "x.npy"
    code, _, err = run_cli(monkeypatch, capsys, *[a.format(t=files) for a in BASE["simulate"]],
                           "--input", deep, "--out", files / "o.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1 and len(err) > 80
    assert str(deep) in err


def test_shape_errors_show_the_users_own_shape(monkeypatch, capsys, files):
    np.save(files / "one.npy", np.zeros(5, np.float32))  # (5,) would be reshaped to (1, 5)
    code, _, err = run_cli(monkeypatch, capsys, "simulate", files / "g.nir", "--input",
                           files / "one.npy", "--out", files / "o.npz")
    assert code == 2 and "input has shape (5,)" in err, err


@pytest.mark.parametrize("content, message", [
    (b"1,2,3\n4,5,6\n", "not a .npy array"),
    (None, ".npy file holds Python objects"),
    (b"\x93NUMPY\x01\x00garbage", "truncated or corrupt"),
])
def test_bad_input_files_never_suggest_unsafe_loading(monkeypatch, capsys, files, content,
                                                      message):
    p = files / "in.npy"
    if content is None:
        np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        p.write_bytes(content)
    code, _, err = run_cli(monkeypatch, capsys, "simulate", files / "g.nir", "--input", p,
                           "--out", files / "o.npz")
    assert code == 2 and message in err and "allow_pickle" not in err, err
    assert "Errno" not in err and not (files / "o.npz").exists()


def test_energy_huge_tick_says_feasible_not_real_time(monkeypatch, capsys, files):
    code, out, err = run_cli(monkeypatch, capsys, "energy", files / "g.nir", "--input",
                             files / "x.npy", "--tick-ms", "1e9")
    assert code == 0, err
    text = " ".join(out.split())
    assert "feasible" in text and "real time met" not in text
    assert "faster than real time" not in text and "real time: one tick" not in text


def test_memory_estimate_refuses_recordings_over_the_memory_budget(monkeypatch, capsys,
                                                                    files):
    code, out, err = run_cli(monkeypatch, capsys, *[a.format(t=files) for a in BASE["deploy"]],
                             "--out", files / "o.npz", "--steps", str(10**12))
    assert code == 2 and "over the memory budget" in err and "GiB" in err, err


def test_algebraic_loop_error_names_only_the_cycle():
    """a -> b -> a is the loop; c hangs off it and d off c: neither is on the cycle."""
    w = np.eye(2, dtype=np.float32)
    g = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "a": nir.Linear(weight=w), "b": nir.Linear(weight=w), "c": nir.Linear(weight=w),
        "d": nir.Linear(weight=w), "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "output")])
    with pytest.raises(GraphError, match="algebraic loop") as e:
        from_nir(g)
    cycle = str(e.value).rsplit("on it: ", 1)[1].split(" -> ")
    assert sorted(set(cycle)) == ["a", "b"] and cycle[0] == cycle[-1]


@pytest.mark.parametrize("args, message", [
    (["run", "cartpole", "--seed", "abc"], "Invalid value for '--seed'"),
    (["deploy"], "Missing argument 'graph'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["run", "cartpole", "--nosuch"], "No such option: --nosuch"),
])
def test_usage_errors_are_one_line_too(monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err and not list(tmp_path.iterdir())


def test_long_simulations_show_progress(monkeypatch, capsys, files):
    import spinnq.cli.graph as cli_graph
    from spinnq.graph import read_graph, simulate

    seen = []
    simulate(read_graph(files / "g.nir"), np.load(files / "x.npy"), on_step=seen.append)
    assert seen == list(range(20))
    monkeypatch.setattr(cli_graph, "PROGRESS_MIN_STEPS", 10)
    code, out, err = run_cli(monkeypatch, capsys, "simulate", files / "g.nir", "--input",
                             files / "x.npy", "--out", files / "o.npz")
    assert code == 0 and "simulate" in out and "20/20" in out, out


def test_long_deploys_show_progress(monkeypatch, capsys, files):
    import spinnq.cli.s2 as cli_s2

    monkeypatch.setattr(cli_s2, "PROGRESS_MIN_STEPS", 10)
    code, out, err = run_cli(monkeypatch, capsys, "deploy", files / "g.nir", "--input",
                             files / "x.npy", "--out", files / "o.npz", "--steps", "30")
    assert code == 0 and "emulate (sample-steps)" in out and "30/30" in out, out


@pytest.mark.parametrize("args, message", [
    (["evaluate", "{t}/g.nir", "--data", "{t}/d.npz", "--json", "{t}/existing"],
     "--json is a folder"),
    (["quantize", "{t}/g.nir", "--data", "{t}/d.npz", "--out", "/proc/x"], "cannot write in"),
    (["quantize", "{t}/g.nir", "--data", "{t}/d.npz", "--out", "{t}/q.nir", "--report",
      "{t}/afile"], "--report must be a folder"),
])
def test_quant_commands_check_outputs_before_any_work(monkeypatch, capsys, files, args,
                                                      message):
    before = _tree(files)
    code, out, err = run_cli(monkeypatch, capsys, *[a.format(t=files) for a in args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert _tree(files) == before


@pytest.mark.parametrize("args", [
    ["deploy", "{t}/g.nir", "--input", "{t}/x.npy", "--out", "{t}/new", "--report", "{t}/new"],
    ["deploy", "{t}/g.nir", "--input", "{t}/x.npy", "--out", "{t}/o.npz", "--summary",
     "{t}/o.npz"],
    ["energy", "{t}/g.nir", "--input", "{t}/x.npy", "--json", "{t}/new", "--report",
     "{t}/new"],
    ["quantize", "{t}/g.nir", "--data", "{t}/d.npz", "--out", "{t}/q.nir", "--json",
     "{t}/q.nir"],
    ["evaluate", "{t}/g.nir", "--data", "{t}/d.npz", "--json", "{t}/new", "--report",
     "{t}/new"],
])
def test_two_outputs_on_one_path_are_refused_before_any_work(monkeypatch, capsys, files, args):
    """Found by the slow fuzz suite: `deploy --out P --report P` wrote P, then failed on the
    report and left P behind."""
    before = _tree(files)
    code, out, err = run_cli(monkeypatch, capsys, *[a.format(t=files) for a in args])
    assert code == 2 and "are the same path" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(files) == before
