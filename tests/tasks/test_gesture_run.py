"""`spinnq run gesture --quick`: the whole pipeline end to end (synthetic and the real
DVS128 layout), --resume, --set, and one-line errors for a missing data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from spinnq import settings
from spinnq.cli.run import RunOptions
from spinnq.errors import InputError
from spinnq.graph.model import read_graph
from spinnq.quant import evaluate
from spinnq.resolver import resolve
from spinnq.settings import apply_sets as apply_overrides
from spinnq.tasks.gesture.config import GestureConfig
from spinnq.tasks.gesture.data import write_dvs_layout
from spinnq.tasks.gesture.runner import load_data, run_task
from spinnq.tasks.gesture.synthetic import SynthConfig, generate_sample
from tests.conftest import run_cli

FAST = {"cache_dir": "", "qat_layers": "spinnq", "frames.steps": "6", "n_test": "11",
        "percentiles": "p99.9,max"}


def _opts(tmp_path, **kw):
    sets = {**FAST, **kw.pop("sets", {})}
    return RunOptions("gesture", quick=True, out=tmp_path / "run", quiet=True,
                      overrides=sets, **kw)


def test_quick_run_reports_every_stage(tmp_path, monkeypatch, capsys):
    rep = run_task(_opts(tmp_path))
    run = tmp_path / "run"
    for f in ("report.json", "report.md", "summary.json", "psnn_float.nir", "qsnn_qat.nir",
              "float.csv", "qat.csv", "config.json", "checkpoints/float.pt",
              "checkpoints/qat.pt"):
        assert (run / f).exists(), f
    a = rep["accuracy"]
    # the reported on-chip accuracy is what an independent evaluation of the written QAT
    # graph on the same test split gives (the run's own config rebuilds the split)
    saved = json.loads((run / "config.json").read_text())
    saved.pop("task", None)
    cfg = settings.from_json(GestureConfig, saved)
    test = load_data(cfg)["test"]
    again = evaluate(run / "qsnn_qat.nir", (test.x, test.y), target="chip")
    assert again.chip.accuracy == a["qat_chip"]
    # each chip stage ran with what the resolver gives its exported NIR (no flags but the
    # PTQ choice), and `spinnq evaluate` on the NIR, no flags, reproduces the QAT stage
    assert rep["settings"]["qat_chip"] == resolve(read_graph(run / "qsnn_qat.nir")).to_dict()
    assert rep["settings"]["ptq_chip"] == resolve(read_graph(run / "psnn_float.nir"),
                                                  weight_scale=rep["ptq"]["chosen"]).to_dict()
    np.savez(tmp_path / "test.npz", x=test.x, y=test.y)
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", run / "qsnn_qat.nir", "--data",
                             tmp_path / "test.npz", "--json", tmp_path / "ev.json")
    assert code == 0, err
    ev = json.loads((tmp_path / "ev.json").read_text())
    assert ev["settings"] == rep["settings"]["qat_chip"]
    assert ev["chip"]["accuracy"] == a["qat_chip"]
    assert ev["chip"]["energy_j"] == pytest.approx(rep["chip"]["energy_j_seed_point"],
                                                           rel=1e-12)
    assert len(test.y) == 11 and a["qat_chip"] * 11 == round(a["qat_chip"] * 11)
    assert rep["memory"] == {"weights": 25504, "fp32_bytes": 102016, "int8_bytes": 25504,
                             "reduction": 0.75, "kind": "measured"}
    assert rep["qat"]["integers_equal_on_chip"]["equal"] is True
    assert rep["software_check"]["counts_equal"] is True
    chip = rep["chip"]
    assert chip["pes"] > 0 and chip["chips"] == 1 and chip["energy_j_seed_point"] > 0
    assert chip["steps_per_gesture"] == 6 + chip["depth"] and chip["depth"] == 5
    assert chip["energy_j_best"] <= chip["energy_j_seed_point"]
    assert rep["ptq"]["chosen"] in ("p99.9", "max")
    assert rep["emulator"]["samples_per_s"] > 0
    report = json.loads((run / "report.json").read_text())
    kinds = {s["name"]: s["kind"] for s in report["stages"]}
    assert kinds["seed QAT on chip"] == "published"
    assert kinds["QAT on chip (emulated)"] == "emulated"
    assert report["chip"]["kind"] == "modelled"
    # the seed workload's modelled energy stands beside the published 0.459 J, base + dynamic
    sw = rep["seed_workload"]
    assert sw["pes"] == 147 and sw["steps"] == 605 and sw["samples"] == 2
    assert sw["base_j"] + sw["dynamic_j"] == pytest.approx(sw["energy_j"])
    assert sw["published_j"] == 0.459 and sw["kind"] == "modelled"
    assert chip["base_j_seed_point"] + chip["dynamic_j_seed_point"] == \
        pytest.approx(chip["energy_j_seed_point"])
    # other workload than the published rows: they stand without a ratio
    assert {r["baseline"] for r in report["ratios"]} <= {"cpu"}
    assert not any(b["compared"] for b in report["baselines"] if b["kind"] == "published")

    # --resume: training is complete, so it reloads the checkpoints and reports the same
    again = run_task(RunOptions("gesture", resume=run, quiet=True,
                                overrides={"plots": "false", "baseline": "false"}))
    assert again["accuracy"] == rep["accuracy"]


def test_quick_run_on_the_real_dvs128_layout(tmp_path):
    small = SynthConfig(duration_ms=120)
    write_dvs_layout(tmp_path / "data", [
        (split, user, "led", label, generate_sample(label, 10 * user + label, small))
        for split, user in (("train", 1), ("train", 2), ("test", 24)) for label in range(11)])
    rep = run_task(_opts(tmp_path, data_dir=tmp_path / "data",
                         sets={"plots": "false", "baseline": "false"}))
    assert rep["data"] == {"source": str(tmp_path / "data"), "train": 11, "val": 11,
                           "test": 11}
    assert rep["qat"]["integers_equal_on_chip"]["equal"] is True


def test_missing_data_dir_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "DVSGesture" / "ibmGestureTrain").mkdir(parents=True)
    r = subprocess.run([sys.executable, "-c", "from spinnq.cli import main; main()", "run",
                        "gesture", "--quick", "--data-dir", str(tmp_path), "--out",
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "500"})
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "ibmGestureTest" in err and "missing" in err


def test_overrides_reach_nested_settings_and_refuse_unknown_keys():
    cfg = apply_overrides(GestureConfig(), {"train.epochs": "3", "frames.bin_ms": "10",
                                            "percentiles": "p99,max", "limit": "5"})
    assert cfg.train.epochs == 3 and cfg.frames.bin_ms == 10.0
    assert cfg.percentiles == ("p99", "max") and cfg.limit == 5
    with pytest.raises(InputError, match="unknown setting 'epoch'"):
        apply_overrides(GestureConfig(), {"train.epoch": "3"})
    with pytest.raises(InputError, match="train.epochs=x: expected an integer"):
        apply_overrides(GestureConfig(), {"train.epochs": "x"})


def test_seed_preset_quick_runs_the_seed_placement_through_the_cli(tmp_path, monkeypatch,
                                                                    capsys):
    from tests.conftest import run_cli
    sets = [f"--set={k}={v}" for k, v in {**FAST, "plots": "false", "baseline": "false",
                                          "n_train": "11", "n_val": "11"}.items()]
    code, out, err = run_cli(monkeypatch, capsys, "run", "gesture", "--preset", "seed",
                             "--quick", "--quiet", "--out", tmp_path / "run", *sets)
    assert code == 0, err
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["preset"] == "seed" and cfg["placement"] == "seed"
    assert cfg["frames"]["bin_ms"] == 1.0
    assert s["chip"]["pes"] == 147 and s["chip"]["placement"] == "seed"
    assert s["seed_workload"]["pes"] == 147
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["chip"]["pes"] == 147 and "base_j" in report["chip"]


def test_unknown_preset_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from tests.conftest import run_cli
    code, out, err = run_cli(monkeypatch, capsys, "run", "gesture", "--preset", "huge",
                             "--quick", "--out", tmp_path / "run")
    assert code == 2 and "--preset must be one of fast, seed" in err
