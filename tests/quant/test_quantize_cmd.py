"""`spinnq quantize`'s fine-tuning and calibration options as a user meets them: validation
data chooses the epoch and the keep decision, the curve is in the JSON and the report, the
calibration can use the training data, and bad options are one line, exit 2."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from spinnq.quant import evaluate
from tests.conftest import run_cli
from tests.quant import digits_models as dm

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    xtr, ytr = digits[0][:, :10], digits[1]
    net = dm.train(dm.mlp(16), xtr[:300], ytr[:300], epochs=2)
    tmp = tmp_path_factory.mktemp("qcmd")
    nir.write(tmp / "g.nir", dm.export(net, (64,)))
    np.savez(tmp / "train.npz", x=xtr[:300], y=ytr[:300])
    np.savez(tmp / "val.npz", x=xtr[300:420], y=ytr[300:420])
    np.savez(tmp / "calib.npz", x=xtr[420:480], y=ytr[420:480])
    return tmp


def quantize(monkeypatch, capsys, tmp, *extra):
    args = ["quantize", tmp / "g.nir", "--data", tmp / "calib.npz", "--out", tmp / "q.nir",
            "--bits", 4, "--convention", "snntorch", "--percentiles", "max,p99", *extra]
    return run_cli(monkeypatch, capsys, *args)


def test_finetuning_is_chosen_on_val_and_its_curve_is_reported(monkeypatch, capsys, files):
    tmp = files
    code, out, err = quantize(monkeypatch, capsys, tmp, "--finetune", tmp / "train.npz",
                              "--val", tmp / "val.npz", "--epochs", 3, "--patience", 2,
                              "--lr", 0.1, "--batch", 16, "--json", tmp / "q.json",
                              "--report", tmp / "rep")
    assert code == 0, err
    js = json.loads((tmp / "q.json").read_text())
    ft = js["finetune"]
    assert ft["validation"] == {"source": "--val data", "samples": 120, "kind": "emulated"}
    assert 1 <= len(ft["history"]) <= 3
    assert all({"epoch", "loss", "score"} <= set(h) for h in ft["history"])
    assert ft["options"]["lr"] == 0.1 and ft["options"]["batch"] == 16
    scores = [h["score"] for h in ft["history"]]
    if ft["improved"]:  # the best epoch by validation accuracy, strictly above PTQ
        assert ft["score"] == max(scores) > ft["score_start"]
        assert scores[ft["best_epoch"] - 1] == ft["score"]
    else:
        assert ft["score"] == ft["score_start"] and ft["best_epoch"] == 0
    # the validation score is the chip's accuracy of the written graph on the val data
    res = evaluate(tmp / "q.nir", tmp / "val.npz", target="chip")
    assert res.chip.accuracy == pytest.approx(ft["score"])
    names = [(s["name"], s["data"]) for s in js["stages"]]
    assert ("PTQ on chip", "validation") in names and js["calibration"]["samples"] == 60
    assert any("per candidate" in w for w in js["warnings"])  # 60 samples, 2 candidates
    assert "fine-tuning per epoch" in out and "warning:" in out
    assert (tmp / "rep" / "plots" / "training_curves.png").exists()


def test_calibration_can_use_the_training_data(monkeypatch, capsys, files):
    tmp = files
    code, _, err = quantize(monkeypatch, capsys, tmp, "--finetune", tmp / "train.npz",
                            "--calib-from", "train", "--epochs", 1, "--json", tmp / "c.json")
    assert code == 0, err
    js = json.loads((tmp / "c.json").read_text())
    assert js["calibration"]["samples"] == 300
    assert js["finetune"]["validation"]["samples"] == 60  # --data validates without --val
    assert not any("per candidate" in w for w in js["warnings"])


@pytest.mark.parametrize("extra, message", [
    (("--calib-from", "bogus"), "calib-from must be one of data, train"),
    (("--calib-from", "train"), "give it (--finetune TRAIN.npz)"),
    (("--finetune", "TRAIN", "--lr", "0"), "learning rate must be a positive number"),
    (("--finetune", "TRAIN", "--batch", "0"), "batch must be >= 1"),
    (("--finetune", "TRAIN", "--patience", "-1"), "patience must be >= 0")])
def test_bad_fine_tuning_options_are_one_line_exit_2(monkeypatch, capsys, files, extra,
                                                    message):
    extra = [str(files / "train.npz") if e == "TRAIN" else e for e in extra]
    code, out, err = quantize(monkeypatch, capsys, files, *extra)
    assert code == 2, (out, err)
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_the_api_returns_the_commands_stage_table(files):
    from spinnq.quant import quantize

    q = quantize(files / "g.nir", files / "calib.npz", bits=4, percentiles=("max", "p99"))
    assert q.finetune is None and q.graph is q.calibration.graph
    names = [r["name"] for r in q.stages]
    assert names[:3] == ["float reference", "PTQ max on chip", "PTQ p99 on chip"]
    assert names[3].startswith("chosen: ") and q.stages[3]["value"] == q.calibration.score
    assert {r["kind"] for r in q.stages} == {"measured", "emulated"}
    assert q.warnings == q.calibration.warnings and q.to_dict()["stages"] == q.stages
