"""Run and sweep folders are spinnq's only when they hold its marker: `--force` deletes only
spinnq's files, `--resume` refuses an edited config, another task, a swapped graph or
checkpoint; the lock has no stale-lock race; every file read back is checked like user input;
sweep folders are owned, locked and identified; sweep settings are refused before Ray starts.
Each case: one line, exit 2 (or 130), nothing deleted, mixed or left behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from spinnq.errors import CheckpointError, RunFolderError
from spinnq.tasks.common import (
    LOCK_NAME,
    MARKER,
    MetricLogger,
    RunDir,
    save_checkpoint,
)
from spinnq.tasks.control.run import build_agent, default_config
from tests.conftest import run_cli


def tree(p: Path) -> dict:
    return {str(x.relative_to(p)): (x.read_bytes() if x.is_file() else None)
            for x in sorted(p.rglob("*"))}


def one_line(code: int, err: str, want: str, status: int = 2) -> None:
    assert code == status and want in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


# ------------------------------------------------------------------------- run folders
def run_folder(d: Path, *, graphs: bool = False, stages=None) -> Path:
    """A cartpole run folder as spinnq leaves it after training (float.pt recorded) and,
    with `graphs`, after quantization (ptq/qat.nir and quant.pt recorded); no training."""
    from spinnq.graph.model import write_graph
    from spinnq.tasks.control import model as qnet

    cfg = default_config("cartpole", quick=True)
    _, enc, model, _ = build_agent(cfg)
    run = RunDir.create("cartpole", d)
    run.save_config(cfg)
    save_checkpoint(run.ckpt("float"), {"model": model.state_dict(), "train": {}})
    if graphs:
        for name in ("ptq", "qat"):
            write_graph(qnet.export(model, enc.n_inputs, cfg.dt), d / f"{name}.nir")
            run.record(d / f"{name}.nir")
        save_checkpoint(run.ckpt("quant"), {"mode": "max", "scores": {}, "qat_hist": []})
    if stages is not None:
        run.write_json(d / "stages.json", stages)
    run.release()
    return d


@pytest.mark.parametrize("content", ["config", "checkpoints"])
def test_force_refuses_a_folder_that_merely_looks_like_a_run(monkeypatch, capsys, tmp_path,
                                                             content):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    if content == "config":
        (d / "config.json").write_text("{}")
    else:
        (d / "checkpoints").mkdir()
    before = tree(d)
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick", "--out", d,
                           "--force")
    one_line(code, err, "not empty and not a spinnq run folder")
    assert tree(d) == before


def test_force_on_a_spinnq_run_folder_deletes_only_spinnq_files(tmp_path):
    d = run_folder(tmp_path / "D")
    (d / "notes.txt").write_text("mine")
    (d / "checkpoints" / "my_model.bin").write_bytes(b"mine too")
    run = RunDir.create("cartpole", d, force=True)
    run.release()
    left = sorted(str(p.relative_to(d)) for p in d.rglob("*"))
    assert left == [MARKER, "checkpoints", "checkpoints/my_model.bin", "notes.txt"], left
    assert (d / "notes.txt").read_text() == "mine"


def test_resume_refuses_an_edited_config_naming_the_settings(monkeypatch, capsys, tmp_path):
    d = run_folder(tmp_path / "D")
    cfg = json.loads((d / "config.json").read_text())
    cfg["eval_episodes"], cfg["dt"], cfg["seed"] = 5, 2e-4, 7
    (d / "config.json").write_text(json.dumps(cfg))
    before = tree(d)
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "recorded at its start (dt, eval_episodes, seed)")
    assert tree(d) == before


def test_resume_refuses_a_folder_of_another_task(monkeypatch, capsys, tmp_path):
    from spinnq.tasks.gesture.config import GestureConfig

    d = tmp_path / "G"
    run = RunDir.create("gesture", d)
    run.save_config(GestureConfig())
    run.release()
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "holds a gesture run")
    cfg = json.loads((d / "config.json").read_text())  # config.json says cartpole: edited
    cfg["task"] = "cartpole"
    (d / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "holds a gesture run")


def test_resume_refuses_a_swapped_checkpoint(monkeypatch, capsys, tmp_path):
    d = run_folder(tmp_path / "D")
    other = run_folder(tmp_path / "E")  # the same config, the same shapes: a loadable file
    save_checkpoint(tmp_path / "x.pt", {"model": {}, "train": {"foreign": True}})
    (d / "checkpoints" / "float.pt").write_bytes((tmp_path / "x.pt").read_bytes())
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "float.pt: changed since this run wrote it")
    assert other.exists()


def test_resume_refuses_a_swapped_graph(monkeypatch, capsys, tmp_path):
    d = run_folder(tmp_path / "D", graphs=True)
    import nir

    g = nir.read(d / "ptq.nir")
    g.nodes["fc1"].weight = g.nodes["fc1"].weight * 0  # another network, same shapes
    nir.write(d / "ptq.nir", g)
    before = tree(d)
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "ptq.nir: changed since this run wrote it")
    rewritten = ("float.nir", MARKER)  # the float graph is re-exported (and recorded) first
    assert {k: v for k, v in tree(d).items() if k not in rewritten} == {
        k: v for k, v in before.items() if k not in rewritten}


@pytest.mark.parametrize("stages", [[1, 2], 3, {"float": [1]}])
def test_stages_json_of_the_wrong_shape_is_one_line(monkeypatch, capsys, tmp_path, stages):
    d = run_folder(tmp_path / "D", graphs=True, stages=stages)  # recorded: shape checked
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "stages.json: not a stages record")


def test_a_binary_train_csv_is_one_line(monkeypatch, capsys, tmp_path):
    d = tmp_path / "D"
    run = RunDir.create("cartpole", d)
    run.save_config(default_config("cartpole", quick=True))
    run.release()
    (d / "train.csv").write_bytes(bytes(range(256)) * 4)
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "train.csv: not a readable log")
    with pytest.raises(CheckpointError, match="not a readable log"):
        MetricLogger(d, "train", tensorboard=False)


def test_a_folder_as_run_lock_is_one_line(monkeypatch, capsys, tmp_path):
    d = run_folder(tmp_path / "D")
    (d / LOCK_NAME).mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    one_line(code, err, "run.lock is not a regular file")


def test_a_stale_lock_whose_pid_was_reused_is_taken_over(tmp_path):
    """The lock is an flock: a file left by a killed run is free whatever pid it names
    (pid 1 is alive and not a run): never "stop pid 1"."""
    d = run_folder(tmp_path / "D")
    (d / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))
    run = RunDir.open(d)
    assert json.loads((d / LOCK_NAME).read_text())["pid"] == os.getpid()
    run.release()
    assert not (d / LOCK_NAME).exists()


OUTCOME = {10: "refused", 11: "held", 12: "two holders", 13: "other error"}


def _contender(folder: str, sentinel: str, barrier) -> None:
    """One resume: exit 11 when it held the lock alone, 12 when another held it too."""
    barrier.wait()
    try:
        run = RunDir.open(folder)
    except RunFolderError:
        os._exit(10)
    except Exception:  # noqa: BLE001
        os._exit(13)
    try:
        fd = os.open(sentinel, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        os._exit(12)
    time.sleep(0.005)
    os.close(fd)
    os.unlink(sentinel)
    run.release()
    os._exit(11)


def test_concurrent_resumes_of_a_killed_run_never_share_the_lock(tmp_path):
    """8 resumes at once of a run whose owner died (its lock file left behind), 50 trials:
    never two holders, and at least one resume gets it each time."""
    d = run_folder(tmp_path / "D")
    ctx = multiprocessing.get_context("fork")
    for _ in range(50):
        (d / LOCK_NAME).write_text(json.dumps({"pid": 999_999_999, "host": "x"}))  # stale
        barrier = ctx.Barrier(8)
        procs = [ctx.Process(target=_contender, args=(str(d), str(tmp_path / "held"),
                                                      barrier)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        got = [OUTCOME.get(p.exitcode, p.exitcode) for p in procs]
        assert "two holders" not in got and "other error" not in got, got
        assert got.count("held") >= 1 and set(got) <= {"held", "refused"}, got


def test_bad_dt_is_refused_before_any_run_folder(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick", "--set",
                           "dt=1e-300", "--out", tmp_path / "R")
    one_line(code, err, "dt=1e-300")
    assert os.listdir(tmp_path) == []


def test_a_refused_data_dir_leaves_no_run_folder(monkeypatch, capsys, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "readme.txt").write_text("no recordings here")
    code, _, err = run_cli(monkeypatch, capsys, "run", "gesture", "--quick", "--data-dir",
                           tmp_path / "data", "--out", tmp_path / "R", "--quiet")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "R").exists()


def test_gesture_frames_cache_goes_inside_the_run_folder(monkeypatch, capsys, tmp_path):
    import spinnq.tasks.gesture.runner as runner

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "_run", stop)
    code, _, err = run_cli(monkeypatch, capsys, "run", "gesture", "--quick", "--out",
                           tmp_path / "R", "--quiet")
    assert code == 130, err
    assert sorted(os.listdir(tmp_path)) == ["R"]  # no ./runs/cache beside it
    assert list((tmp_path / "R" / "cache").glob("gesture-*.npz"))


# ----------------------------------------------------------------------- sweep folders
@pytest.fixture(scope="module")
def graph_data(tmp_path_factory):
    """A tiny NIR graph (8 inputs -> 3 LIF outputs) and labelled spikes for it."""
    import nir

    d = tmp_path_factory.mktemp("g")
    rng = np.random.default_rng(0)
    n = 3
    lif = nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n),
                  v_threshold=np.ones(n))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([8])),
                            "fc": nir.Linear(weight=rng.normal(size=(n, 8)).astype(np.float32)),
                            "lif": lif, "output": nir.Output(output_type=np.array([n]))},
                     edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    nir.write(d / "g.nir", g)
    x = (rng.random((20, 6, 8)) < 0.3).astype(np.uint8)
    np.savez(d / "d.npz", x=x, y=rng.integers(0, n, 20))
    np.savez(d / "d2.npz", x=x[:10], y=rng.integers(0, n, 10))
    return d / "g.nir", d / "d.npz", d / "d2.npz"


def sweep(monkeypatch, capsys, graph, data, out, *extra):
    return run_cli(monkeypatch, capsys, "sweep", graph, "--data", data, "--out", out,
                   "--space", "bits=8,4", "--quiet", *extra)


def fake_engine(monkeypatch, error: str = "", interrupt_after: int | None = None):
    """Trials without Ray: each record made here (no metric: an error) or a Ctrl-C."""
    import spinnq.sweep.engine as engine

    def run(problem, todo, out, seed, opts, on_record, *a, **k):
        for i, s in enumerate(todo):
            if interrupt_after is not None and i == interrupt_after:
                raise KeyboardInterrupt
            rec = {"settings": s, "seed": seed, "error": error, "wall_s": 0.0}
            if not error:
                rec |= {"accuracy": 0.5, "energy_j": 1e-3 * (i + 1), "dynamic_j": 1e-4,
                        "base_j": 1e-4, "latency_s": 1e-3, "tick_s": 1e-3, "realtime": True,
                        "pes": 1, "chips": 1}
            on_record(rec)

    monkeypatch.setattr(engine, "run", run)


def test_sweep_refuses_a_foreign_folder_and_writes_nothing(monkeypatch, capsys, tmp_path,
                                                           graph_data):
    g, data, _ = graph_data
    (tmp_path / "mine.txt").write_text("x")
    code, _, err = sweep(monkeypatch, capsys, g, data, tmp_path)
    one_line(code, err, "not empty and not a spinnq sweep folder")
    assert os.listdir(tmp_path) == ["mine.txt"]


@pytest.mark.parametrize("change, named", [
    ("data", "data_sha256"), ("graph", "graph_sha256"), ("convention", "convention"),
    ("seed", "seed")])
def test_sweep_resume_refuses_another_sweep_naming_what_differs(monkeypatch, capsys, tmp_path,
                                                                graph_data, change, named):
    g, data, data2 = graph_data
    fake_engine(monkeypatch)
    g2 = tmp_path / "g.nir"
    g2.write_bytes(g.read_bytes())
    out = tmp_path / "S"
    code, _, err = sweep(monkeypatch, capsys, g2, data, out)
    assert code == 0, err
    before = tree(out)
    extra: list = []
    if change == "data":
        data = data2
    elif change == "graph":  # another graph at the same path
        import nir

        gr = nir.read(g2)
        gr.nodes["fc"].weight = gr.nodes["fc"].weight * 2
        nir.write(g2, gr)
    elif change == "convention":
        extra = ["--convention", "snntorch"]
    else:
        extra = ["--seed", "1"]
    code, _, err = sweep(monkeypatch, capsys, g2, data, out, "--resume", *extra)
    one_line(code, err, f"holds another sweep: {named}")
    assert tree(out) == before


def test_two_sweeps_on_one_folder_never_mix(monkeypatch, capsys, tmp_path, graph_data):
    g, data, _ = graph_data
    fake_engine(monkeypatch)
    out = tmp_path / "S"
    assert sweep(monkeypatch, capsys, g, data, out)[0] == 0
    code, _, err = sweep(monkeypatch, capsys, g, data, out, "--seed", "1")
    one_line(code, err, "holds another sweep: seed 0 -> 1")
    code, _, err = sweep(monkeypatch, capsys, g, data, out)
    one_line(code, err, "holds a sweep already: pass --resume")
    held = RunDir.open(out, kind="sweep")  # a sweep running on it right now
    try:
        code, _, err = sweep(monkeypatch, capsys, g, data, out, "--resume")
    finally:
        held.release()
    assert code == 0 or "in use" in err  # same process: re-entrant; another: refused


@pytest.mark.parametrize("shape, want", [
    ([1, 2], "changed since this sweep wrote it"),
    ({"settings": {}}, "changed since this sweep wrote it")])
def test_tampered_trial_records_are_one_line(monkeypatch, capsys, tmp_path, graph_data,
                                             shape, want):
    g, data, _ = graph_data
    fake_engine(monkeypatch)
    out = tmp_path / "S"
    assert sweep(monkeypatch, capsys, g, data, out)[0] == 0
    (out / "sweep.json").write_text("[1, 2]")
    rec = sorted((out / "trials").glob("*.json"))[0]
    rec.write_text(json.dumps(shape))
    code, _, err = sweep(monkeypatch, capsys, g, data, out, "--resume")
    one_line(code, err, want)


def test_trial_record_shapes_are_checked(tmp_path):
    from spinnq.sweep.results import Store

    (tmp_path / "trials").mkdir()
    for i, rec in enumerate([[1], {"settings": {"bits": 8}, "seed": 0}, 5]):
        p = tmp_path / "trials" / f"r{i}.json"
        p.write_text(json.dumps(rec))
        with pytest.raises(CheckpointError, match=p.name):
            Store(tmp_path).records()
        p.unlink()


@pytest.mark.parametrize("args, want", [
    (["--space", "tick_ms=1e300"], "--space tick_ms 1e+300: must be > 0 and <= 10_000"),
    (["--space", "neurons_per_pe=100000000"], "--space neurons_per_pe 100000000: must be"),
    (["--episodes", "5"], "--episodes is for control tasks"),
    (["--min-accuracy", "2"], "--min-accuracy 2.0: must be >= 0 and <= 1"),
    (["--min-accuracy", "nan"], "--min-accuracy nan: must be"),
    (["--seed", "-1"], "--seed -1: must be >= 0"),
    (["--space", "weight_scale=calibrate"], "needs training data"),
    (["--space", "finetune=1"], "needs training data"),
    (["--threads", "4096"], "--threads 4096"),
    (["--threads", "{cores_plus_one}"], "CPUs of the embedded Ray"),
    (["--cpus", "1", "--threads", "2"], "--threads 2 > the 1 CPUs of the embedded Ray"),
    (["--address", "ray://127.0.0.1:10001"], "Ray Client address"),
    (["--address", "http://127.0.0.1:8265"], "web (dashboard) address"),
    (["--address", "127.0.0.1:notaport"], "expected HOST:PORT"),
    (["--address", "[::1]:{port}"], "no Ray head at [::1]:"),
    (["--address", "127.0.0.1:{port}"], "no Ray head at 127.0.0.1:"),
    (["--address", "127.0.0.1:{silent}"], "answers, but not as a Ray head"),
])
def test_sweep_settings_are_refused_before_ray_or_any_file(monkeypatch, capsys, tmp_path,
                                                          graph_data, args, want):
    g, data, _ = graph_data
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()  # accepts, never answers: another service on a loopback port
    args = [a.format(port=port, silent=server.getsockname()[1],
                     cores_plus_one=(os.cpu_count() or 1) + 1) for a in args]
    t0 = time.monotonic()
    try:
        code, _, err = sweep(monkeypatch, capsys, g, data, tmp_path / "S", *args)
    finally:
        server.close()
    one_line(code, err, want)
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "S").exists()


def test_task_sweep_settings_are_refused_before_training(monkeypatch, capsys, tmp_path):
    for args, want in ((["--episodes", "0"], "--episodes 0: must be >= 1"),
                       (["--space", "finetune=1"], "finetune is for graph targets")):
        code, _, err = run_cli(monkeypatch, capsys, "sweep", "cartpole", "--out",
                               tmp_path / "S", "--space", "bits=8,4", *args)
        one_line(code, err, want)
        assert not (tmp_path / "S").exists()


def test_ray_address_in_the_environment_is_named(monkeypatch, capsys, tmp_path, graph_data):
    g, data, _ = graph_data
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    code, _, err = sweep(monkeypatch, capsys, g, data, tmp_path / "S")
    one_line(code, err, "RAY_ADDRESS=10.0.0.1:6379 is set in the environment")
    assert not (tmp_path / "S").exists()


def test_ctrl_c_on_a_sweep_exits_130_saying_how_many_finished(monkeypatch, capsys, tmp_path,
                                                              graph_data):
    g, data, _ = graph_data
    fake_engine(monkeypatch, interrupt_after=1)
    out = tmp_path / "S"
    code, _, err = sweep(monkeypatch, capsys, g, data, out)
    assert code == 130 and "interrupted: 1 of 2 trials finished" in err, err
    assert "--resume" in err and not (out / "report.html").exists()
    assert not (out / LOCK_NAME).exists()


def test_a_sweep_whose_every_trial_failed_exits_1(monkeypatch, capsys, tmp_path, graph_data):
    g, data, _ = graph_data
    fake_engine(monkeypatch, error="InputError: no")
    code, out, err = sweep(monkeypatch, capsys, g, data, tmp_path / "S")
    assert code == 1 and "every trial failed (2)" in err and "InputError: no" in err, err


def test_the_lock_is_held_for_the_life_of_the_sweep(monkeypatch, capsys, tmp_path, graph_data):
    """While trials run, the folder's run.lock is flocked by the sweep."""
    import fcntl

    g, data, _ = graph_data
    seen = []

    import spinnq.sweep.engine as engine

    def run(problem, todo, out, *a, **k):
        fd = os.open(out / LOCK_NAME, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append("free")
        except BlockingIOError:
            seen.append("held")
        finally:
            os.close(fd)

    monkeypatch.setattr(engine, "run", run)
    sweep(monkeypatch, capsys, g, data, tmp_path / "S")
    assert seen == ["held"]


# ------------------------------------------------------------------ slow: tamper fuzz
class Reported(Exception):
    """Raised in place of building the report: the resume got that far."""


def mutations(base: Path, f: Path) -> dict[str, object]:
    """truncate, swap (with another file of the folder of the same suffix), wrong type (a
    folder in its place), wrong JSON shape."""
    out: dict[str, object] = {"truncate": f.read_bytes()[:max(0, f.stat().st_size // 2)]}
    same = sorted(p for p in base.rglob(f"*{f.suffix}") if p.is_file() and p != f
                  and p.read_bytes() != f.read_bytes())
    if same:
        out["swap"] = same[0].read_bytes()
    out["wrong type"] = None  # a folder
    if f.suffix == ".json":
        out["wrong shape"] = b"[1, 2]"
    return out


def tamper(work: Path, rel: str, how: str, data) -> None:
    p = work / rel
    if data is None:
        p.unlink()
        p.mkdir()
    else:
        p.write_bytes(data)


def fuzz_folder(base: Path, tmp: Path, resume, read_back: set[str]) -> dict:
    """Tamper with every file of `base` (each mutation on a fresh copy), resume, and try
    --force: 0 tracebacks, 0 reports built on a tampered file the report reads, 0 user
    files deleted. Returns outcome counts."""
    import shutil

    counts = {"refused": 0, "reported": 0}
    files = sorted(str(p.relative_to(base)) for p in base.rglob("*")
                   if p.is_file() and not str(p.relative_to(base)).startswith("ray/"))
    for rel in files:
        for how, data in mutations(base, base / rel).items():
            work = tmp / "w"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base, work)
            tamper(work, rel, how, data)
            (work / "notes.txt").write_text("mine")
            try:
                code, err = resume(work)
            except Reported:
                assert rel not in read_back, f"report built on tampered {rel} ({how})"
                counts["reported"] += 1
            else:
                assert code in (0, 2) and "Traceback" not in err, (rel, how, err)
                assert code == 0 or len(err.strip().splitlines()) == 1, (rel, how, err)
                assert code == 2 or rel not in read_back, (rel, how)
                counts["refused" if code == 2 else "reported"] += 1
            assert (work / "notes.txt").read_text() == "mine"
    return counts | {"files": len(files)}


@pytest.mark.slow
def test_tampered_run_folders_resume_in_one_line_or_not_at_all(monkeypatch, capsys, tmp_path):
    import spinnq.tasks.control.run as control_run

    base = tmp_path / "base"
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick", "--quiet",
                           "--out", base)
    assert code == 0, err

    def no_report(*a, **k):
        raise Reported

    monkeypatch.setattr(control_run, "_report", no_report)

    def resume(work: Path):
        code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", work,
                               "--quiet")
        try:  # --force on the same tampered folder: a one-line refusal or spinnq's files
            RunDir.create("cartpole", work, force=True).release()
        except Exception as e:  # noqa: BLE001
            from spinnq.errors import SpinnqError
            assert isinstance(e, SpinnqError), repr(e)
        return code, err

    read_back = {MARKER, "config.json", "checkpoints/float.pt", "checkpoints/quant.pt",
                 "ptq.nir", "qat.nir", "stages.json", "train.csv"}
    counts = fuzz_folder(base, tmp_path, resume, read_back)
    print("tamper outcomes:", counts)
    assert counts["refused"] >= 2 * len(read_back), counts


@pytest.mark.slow
def test_tampered_sweep_folders_resume_in_one_line_or_not_at_all(monkeypatch, capsys,
                                                                  tmp_path, graph_data):
    pytest.importorskip("ray.tune")
    g, data, _ = graph_data
    base = tmp_path / "base"
    code, _, err = sweep(monkeypatch, capsys, g, data, base, "--cpus", "1")
    assert code == 0, err
    assert (base / "sweep.log").exists()

    import spinnq.sweep.report as report

    def no_report(*a, **k):
        raise Reported

    monkeypatch.setattr(report, "write", no_report)

    def resume(work: Path):
        code, _, err = sweep(monkeypatch, capsys, g, data, work, "--resume", "--cpus", "1")
        return code, err

    read_back = {MARKER} | {str(p.relative_to(base)) for p in (base / "trials").glob("*")}
    counts = fuzz_folder(base, tmp_path, resume, read_back)
    print("tamper outcomes:", counts)
    assert counts["refused"] >= 2 * len(read_back), counts


@pytest.mark.slow
def test_ctrl_c_on_a_real_sweep_exits_130(tmp_path, graph_data):
    """SIGINT to the sweep's process group (a terminal's Ctrl-C) once a trial finished:
    exit 130, the count of finished trials on stderr, no report, no Ray notice."""
    import signal
    import subprocess
    import sys

    pytest.importorskip("ray.tune")
    g, data, _ = graph_data
    out = tmp_path / "S"
    src = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from spinnq.cli import main; main()", "sweep", str(g),
         "--data", str(data), "--out", str(out), "--space", "bits=8,4",
         "--space", "operating_point=0.5V,0.8V,dvfs", "--space", "tick_ms=1,2,3,4",
         "--cpus", "1", "--quiet"],
        env={**os.environ, "PYTHONPATH": src}, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list((out / "trials").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "trials finished" in stderr and "--resume" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr and "Token authentication" not in stdout + stderr
    assert not (out / "report.html").exists()
