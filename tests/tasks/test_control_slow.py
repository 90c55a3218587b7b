"""The issue's acceptance runs: `spinnq run cartpole` on defaults for 3 training seeds, each
with an on-chip mean return >= 475 over 100 episodes (slow: minutes each)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spinnq.cli import app


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cartpole_defaults_solve_on_chip(tmp_path, seed):
    r = CliRunner().invoke(app, ["run", "cartpole", "--seed", str(seed), "--quiet", "--out",
                                 str(tmp_path)])
    assert r.exit_code == 0, repr(r.exception)
    rep = json.loads((tmp_path / "report.json").read_text())
    chip = next(s for s in rep["stages"] if s["name"] == "chip")
    assert chip["episodes"] == 100
    assert chip["mean_return"] >= 475, chip


@pytest.mark.slow
def test_acrobot_defaults_on_chip(tmp_path):
    r = CliRunner().invoke(app, ["run", "acrobot", "--quiet", "--out", str(tmp_path)])
    assert r.exit_code == 0, repr(r.exception)
    rep = json.loads((tmp_path / "report.json").read_text())
    chip = next(s for s in rep["stages"] if s["name"] == "chip")
    assert chip["mean_return"] >= -100, chip


def _strip(rep: dict) -> dict:
    out = {k: v for k, v in rep.items()
           if k not in ("created", "wall_s", "baselines", "ratios", "run_dir")}
    out["stages"] = [{k: v for k, v in s.items() if k != "wall_s"} for s in rep["stages"]]
    out["training"] = {k: v for k, v in rep["training"].items() if k != "wall_s"}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.7, 3.0])  # while training / while evaluating stages
def test_sigkill_mid_run_then_resume_gives_the_same_report(tmp_path, after_s):
    """A real kill (SIGKILL, no cleanup) of `spinnq run cartpole --quick` `after_s` seconds
    after its config is written, then `--resume`: same report.json as an uninterrupted run,
    timings aside."""
    import os
    import signal
    import subprocess
    import sys
    import time

    exe = [sys.executable, "-c", "from spinnq.cli import main; main()"]
    subprocess.run([*exe, "run", "cartpole", "--quick", "--quiet", "--out",
                    str(tmp_path / "a")], check=True, capture_output=True)
    p = subprocess.Popen([*exe, "run", "cartpole", "--quick", "--quiet", "--out",
                          str(tmp_path / "b")], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    while not (tmp_path / "b" / "config.json").exists() and p.poll() is None:
        time.sleep(0.05)
    time.sleep(after_s)
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    for f in (tmp_path / "b").rglob("*"):  # no half-written file survived the kill
        if f.suffix == ".json":
            json.loads(f.read_text())
    r = subprocess.run([*exe, "run", "cartpole", "--resume", str(tmp_path / "b"), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert _strip(a) == _strip(b)
