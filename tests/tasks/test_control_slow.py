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
