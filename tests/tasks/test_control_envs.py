"""The control tasks past CartPole run the whole pipeline on a fresh install: Acrobot,
MountainCar and LunarLander (Box2D from the project's own set-up) through `spinnq run --quick`
(training, NIR, PTQ, QAT, the emulated chip, the report)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spinnq.cli import app


@pytest.mark.parametrize("task,gym_id,n_obs,n_actions", [
    ("acrobot", "Acrobot-v1", 6, 3),
    ("mountaincar", "MountainCar-v0", 2, 3),
    ("lunarlander", "LunarLander-v3", 8, 4),
])
def test_quick_run_of_each_control_task_reaches_the_chip(tmp_path, task, gym_id, n_obs,
                                                         n_actions):
    r = CliRunner().invoke(app, ["run", task, "--quick", "--quiet", "--out",
                                 str(tmp_path / task)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    rep = json.loads((tmp_path / task / "report.json").read_text())
    assert rep["env"] == gym_id
    assert [s["name"] for s in rep["stages"]] == ["float", "PTQ", "QAT", "chip", "chip PTQ"]
    chip = rep["stages"][3]
    assert chip["metric"] == "return" and chip["episodes"] == 3
    assert 0 <= chip["actions_equal_float"] <= 1
    assert rep["chip"]["kind"] == "modelled" and rep["chip"]["pes"] >= 3
    net = rep["network"]  # quick: 6 encoder neurons per observation dimension
    assert net["inputs"] == 6 * n_obs and net["actions"] == n_actions
    for f in ("float.nir", "qat.nir", "report.md", "report.html"):
        assert (tmp_path / task / f).exists(), f
