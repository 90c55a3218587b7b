"""`spinnq sweep` over the tasks (quick-sized, slow) and the optuna search."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import run_cli

pytest.importorskip("ray.tune")


def test_tasks_refuse_settings_only_graphs_have(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "sweep", "cartpole", "--out", tmp_path / "c",
                           "--space", "weight_scale=max,calibrate")
    assert code == 2 and "calibrate is for graph targets" in err
    code, _, err = run_cli(monkeypatch, capsys, "sweep", "gesture", "--out", tmp_path / "g",
                           "--space", "bits=8", "--episodes", "3")
    assert code == 2 and "--episodes is for control tasks" in err


@pytest.mark.slow
def test_cartpole_sweep_trains_one_network_per_t_and_reuses_it(monkeypatch, capsys, tmp_path):
    out = tmp_path / "cp"
    args = ["sweep", "cartpole", "--out", out, "--quick", "--episodes", "2", "--quiet",
            "--space", "timesteps=5,10", "--space", "bits=8,4"]
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert {r["timesteps"] for r in rows} == {"5", "10", "20"}  # + the seed paper's T = 20
    assert all(not r["error"] and float(r["return"]) > 0 for r in rows)
    for t in (5, 10, 20):
        assert (out / "tasks" / f"cartpole-T{t}" / "checkpoints" / "float.pt").exists()
    mtime = (out / "tasks" / "cartpole-T5" / "checkpoints" / "float.pt").stat().st_mtime
    code, stdout, err = run_cli(monkeypatch, capsys, *args, "--resume")
    assert code == 0, err
    assert "(0 run now" in " ".join(stdout.split())
    assert (out / "tasks" / "cartpole-T5" / "checkpoints" / "float.pt").stat().st_mtime == mtime


@pytest.mark.slow
def test_optuna_search_is_seeded_and_resume_runs_nothing_new(monkeypatch, capsys, tmp_path,
                                                             digits_net):
    graph, data, _ = digits_net
    args = ["sweep", graph, "--data", data, "--search", "optuna", "--samples", "4", "--quiet",
            "--space", "bits=8,4", "--space", "timesteps=4,8,12",
            "--space", "operating_point=0.5V,0.8V"]
    for name in ("a", "b"):
        code, _, err = run_cli(monkeypatch, capsys, *args, "--out", tmp_path / name)
        assert code == 0, err
    keys = [sorted(r["key"] for r in csv.DictReader(open(tmp_path / n / "trials.csv")))
            for n in ("a", "b")]
    assert keys[0] == keys[1] and len(keys[0]) >= 3
    code, stdout, err = run_cli(monkeypatch, capsys, *args, "--out", tmp_path / "a", "--resume")
    assert code == 0, err
    assert "(0 run now" in " ".join(stdout.split())


@pytest.mark.slow
def test_gesture_sweep_trains_per_frame_bin_and_scores_the_test_split(monkeypatch, capsys,
                                                                      tmp_path):
    out = tmp_path / "g"
    code, _, err = run_cli(monkeypatch, capsys, "sweep", "gesture", "--out", out, "--quick",
                           "--quiet", "--space", "timesteps=6", "--space", "bits=8,4")
    assert code == 0, err
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert {(r["timesteps"], r["bits"]) for r in rows} == {("12", "8"), ("6", "8"), ("6", "4")}
    assert all(not r["error"] and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert (out / "tasks" / "gesture-T6" / "psnn_float.nir").exists()
    assert "bin = 240 ms / T" in (out / "report.md").read_text()
