"""The gesture trainer's `device` setting: cpu trains (and leaves the model on the CPU for the
chip stages), cuda is refused by name where torch sees no GPU, anything else is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spinnq.errors import InputError
from spinnq.tasks.common import RunDir
from spinnq.tasks.gesture.data import Frames
from spinnq.tasks.gesture.model import ModelConfig, build_model
from spinnq.tasks.gesture.train import TrainConfig, train, train_device


def _data(n: int = 6, steps: int = 5) -> dict[str, Frames]:
    rng = np.random.default_rng(0)
    f = Frames((rng.random((n, steps, 2, 16, 16)) < 0.1).astype(np.uint8),
               rng.integers(0, 11, n))
    return {"train": f, "val": f}


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="torch sees no CUDA GPU here"))])
def test_training_on_a_device_runs_and_returns_the_model_on_the_cpu(tmp_path, device):
    torch.manual_seed(0)
    model = build_model(ModelConfig(size=16))
    cfg = TrainConfig(epochs=1, batch=3, device=device)
    run = RunDir.create("gesture", tmp_path / "run")
    hist = train(model, _data(), cfg, run, "float", quiet=True)
    assert len(hist["history"]) == 1 and np.isfinite(hist["history"][0]["loss"])
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_unknown_or_missing_devices_are_input_errors(monkeypatch):
    with pytest.raises(InputError, match="device must be one of"):
        train_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU"):
        train_device("cuda")
    assert dataclasses.replace(TrainConfig(), device="cpu").device == "cpu"
