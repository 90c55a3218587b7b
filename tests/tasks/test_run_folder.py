"""Run folders are never mixed: a non-empty --out is refused (or emptied by --force), one run
at a time holds a folder's lock, --resume validates config.json like --set, Ctrl-C says how to
continue."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spinnq.errors import RunFolderError
from spinnq.tasks.common import LOCK_NAME, MARKER, RunDir
from spinnq.tasks.control.run import default_config
from tests.conftest import run_cli

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _tree(p: Path) -> dict:
    return {str(x.relative_to(p)): x.read_bytes() for x in sorted(p.rglob("*")) if x.is_file()}


def _held_run(folder: Path, seed: int = 0) -> Path:
    """A folder holding a (seed-`seed`) cartpole run: config.json and a checkpoint."""
    run = RunDir.create("cartpole", folder)
    run.save_config(default_config("cartpole", seed=seed, quick=True))
    run.ckpt("float").write_bytes(b"seed 0's weights")
    run.release()
    return folder


def test_second_run_into_a_run_folder_is_refused_and_the_folder_unchanged(monkeypatch, capsys,
                                                                         tmp_path):
    d = _held_run(tmp_path / "D")
    before = _tree(d)
    code, out, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick", "--seed", "1",
                             "--out", d)
    assert code == 2 and f"{d}: holds a run; continue it with --resume {d}" in err, err
    assert len(err.strip().splitlines()) == 1 and _tree(d) == before


def test_a_non_empty_foreign_folder_is_refused_even_with_force(tmp_path):
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "thesis.tex").write_text("keep me")
    for force in (False, True):
        with pytest.raises(RunFolderError, match="not a spinnq run folder"):
            RunDir.create("cartpole", tmp_path / "D", force=force)
    assert _tree(tmp_path / "D") == {"thesis.tex": b"keep me"}


def test_force_empties_a_run_folder_before_starting_over(tmp_path):
    d = _held_run(tmp_path / "D")
    run = RunDir.create("cartpole", d, force=True)
    assert sorted(os.listdir(d)) == [MARKER, "checkpoints", LOCK_NAME]
    assert not any((d / "checkpoints").iterdir())
    run.release()
    assert not (d / LOCK_NAME).exists()


def test_two_runs_at_once_the_second_is_refused_and_a_dead_owner_is_stale(monkeypatch, capsys,
                                                                          tmp_path):
    d = tmp_path / "D"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from spinnq.tasks.common import RunDir; "
         f"RunDir.create('cartpole', {str(d)!r}); print('locked', flush=True); time.sleep(60)"],
        env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick", "--out",
                               tmp_path / "D")
        assert code == 2 and f"in use by another run (pid {holder.pid}" in err, err
        with pytest.raises(RunFolderError, match="in use"):
            RunDir.open(d) if (d / "config.json").exists() else RunDir.create("x", d)
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((d / LOCK_NAME).read_text())["pid"] == holder.pid  # left by SIGKILL
    run = RunDir(d)
    run.lock()  # stale: its process is gone, so the lock is taken over
    assert json.loads((d / LOCK_NAME).read_text())["pid"] == os.getpid()
    run.release()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["net"].update(hidden="abc"), "recorded at its start (net.hidden)"),
    (lambda d: d["net"].update(hidden=[1e9, 16]), "recorded at its start (net.hidden)"),
    (lambda d: d["dqn"].update(lr=None), "recorded at its start (dqn.lr)"),
    (lambda d: d.update(seed="zero"), "recorded at its start (seed)"),
    (lambda d: d.update(dt=0, eval_episodes=5), "recorded at its start (dt, eval_episodes)"),
    (lambda d: d.clear(), "differs from the config this run recorded"),
])
def test_tampered_config_json_on_resume_is_refused_before_any_work(monkeypatch, capsys,
                                                                   tmp_path, edit, message):
    d = _held_run(tmp_path / "D")
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    before = _tree(d)
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    assert code == 2 and message in err and "config.json" in err, err
    assert _tree(d) == before and not (d / LOCK_NAME).exists()


def test_resume_under_another_task_is_refused(monkeypatch, capsys, tmp_path):
    d = tmp_path / "D"
    run = RunDir.create("acrobot", d)
    run.save_config(default_config("acrobot", quick=True))
    run.release()
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--resume", d)
    assert code == 2 and "holds a run of acrobot, not cartpole" in err, err
    code, _, err = run_cli(monkeypatch, capsys, "run", "gesture", "--resume", d)
    assert code == 2 and "holds a run of acrobot, not gesture" in err, err


@pytest.mark.parametrize("args, message", [
    (["--set", "dqn.lr=abc"], "--set dqn.lr=abc: expected a number"),
    (["--set", "dqn.lr=nan"], "--set dqn.lr=nan: must be > 0"),
    (["--set", "net.hidden=-5"], "--set net.hidden=-5: must be >= 1"),
    (["--set", "dt=0"], "--set dt=0: must be > 0"),
    (["--set", "dqn.total_steps=-5"], "--set dqn.total_steps=-5: must be >= 1"),
    (["--seed", "-1"], "--seed -1: must be >= 0"),
    (["--seed", str(10**30)], "--seed 1000000000000000000000000000000: must be"),
    (["--steps", "0"], "--steps 0: must be >= 1"),
    (["--episodes", "0"], "--episodes 0: must be >= 1"),
    (["--out", "/proc/x"], "cannot write in /proc"),
    (["--out", "{t}/afile"], "--out must be a folder"),
])
def test_bad_run_settings_never_start_work_or_make_a_folder(monkeypatch, capsys, tmp_path,
                                                            args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    code, out, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick",
                             *[a.format(t=tmp_path) for a in args])
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # no runs/, no half-made folder


def test_ctrl_c_during_a_run_says_how_to_continue(monkeypatch, capsys, tmp_path):
    import spinnq.tasks.control.run as control_run

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(control_run, "_run", interrupted)
    d = tmp_path / "D"
    code, _, err = run_cli(monkeypatch, capsys, "run", "cartpole", "--quick", "--out", d)
    assert code == 130
    assert f"interrupted; continue with spinnq run cartpole --resume {d}" in err
    assert not (d / LOCK_NAME).exists()  # released: the resume is not refused


def test_resumed_config_is_the_saved_one_with_its_task(tmp_path):
    cfg = default_config("cartpole", seed=5, quick=True)
    run = RunDir.create("cartpole", tmp_path / "D")
    run.save_config(cfg)
    run.release()
    saved = json.loads((tmp_path / "D" / "config.json").read_text())
    assert saved["task"] == "cartpole" and saved["seed"] == 5
    opened = RunDir.open(tmp_path / "D")
    d = opened.load_config()
    opened.release()
    assert opened.task == "cartpole" and d == json.loads(json.dumps(dataclasses.asdict(cfg)))


def test_lock_wait_is_short(tmp_path):
    """A refused start is immediate (no polling for a live owner): the lock is an flock
    held by another open file (here this process's own, outside spinnq)."""
    import fcntl

    run = RunDir.create("t", tmp_path / "D")
    run.release()
    with open(tmp_path / "D" / LOCK_NAME, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps({"pid": os.getppid()}))
        fh.flush()
        t0 = time.perf_counter()
        with pytest.raises(RunFolderError, match=f"pid {os.getppid()}"):
            RunDir(tmp_path / "D").lock()
        assert time.perf_counter() - t0 < 1


@pytest.mark.parametrize("how", ["pickle", "truncated", "text", "empty"])
def test_bad_checkpoints_never_suggest_unsafe_loading(tmp_path, how):
    import torch

    from spinnq.errors import CheckpointError
    from spinnq.tasks.common import load_checkpoint, save_checkpoint

    p = tmp_path / "c.pt"
    if how == "pickle":
        torch.save({"spinnq_checkpoint": 1, "obj": RunDir(tmp_path)}, p)
    elif how == "truncated":
        save_checkpoint(p, {"w": torch.randn(50, 50)})
        p.write_bytes(p.read_bytes()[:3000])
    elif how == "text":
        p.write_text("model weights\n")
    else:
        p.write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    msg = str(e.value)
    assert str(p) in msg and "\n" not in msg
    assert "weights_only" not in msg and "Errno" not in msg and "pickle" not in msg.lower()
    if how == "pickle":
        assert "could run code" in msg


@pytest.mark.slow
def test_sigint_during_a_real_run_exits_130_with_the_resume_command(tmp_path):
    """A real `spinnq run` process, Ctrl-C (SIGINT) while it trains: exit 130, one line saying
    how to continue, the lock released (the resume is not refused as 'in use')."""
    import signal

    d = tmp_path / "D"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from spinnq.cli import main; main()", "run", "cartpole",
         "--quick", "--quiet", "--out", str(d)],
        env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while not (d / "train.csv").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the quick run finished before the signal arrived")
    assert proc.returncode == 130, err
    assert f"interrupted; continue with spinnq run cartpole --resume {d}" in err
    assert "Traceback" not in err and not (d / LOCK_NAME).exists()
