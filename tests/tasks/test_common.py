"""tasks.common and spinnq.helpers: atomic files, checkpoints that load safely or fail clearly, RNG resume,
CSV logs that survive a resume."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import torch
from rich.console import Console

from spinnq.errors import CheckpointError
from spinnq.helpers import progress, read_json, seed_everything
from spinnq.tasks.common import (
    MetricLogger,
    RunDir,
    atomic_write,
    load_checkpoint,
    load_state_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    write_json(p, {"x": 1})
    write_json(p, {"x": np.float32(2.5), "t": torch.tensor([1, 2])})
    assert read_json(p) == {"t": [1, 2], "x": 2.5}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "r.txt"
    atomic_write(p, "old")

    with pytest.raises(TypeError):
        atomic_write(p, 123)  # type: ignore[arg-type]  # fails mid-write, before the rename
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.txt"]


def test_checkpoint_roundtrip_with_rng_state_continues_same_streams(tmp_path):
    rng = seed_everything(3)
    m = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "c.pt", {"model": m.state_dict(), "rng": rng_state(rng)})
    a = (random.random(), np.random.rand(), torch.rand(1).item(), rng.random())
    seed_everything(99)
    rng2 = np.random.default_rng(99)
    st = load_checkpoint(tmp_path / "c.pt", required=("model", "rng"))
    set_rng_state(st["rng"], rng2)
    b = (random.random(), np.random.rand(), torch.rand(1).item(), rng2.random())
    assert a == b
    m2 = torch.nn.Linear(3, 2)
    load_state_dict(m2, st["model"])
    assert torch.equal(m2.weight, m.weight)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"PK\x03\x04broken zip"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(p)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint(p, {"w": torch.randn(100, 100)})
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(p)


def test_foreign_checkpoint_and_missing_keys_refused(tmp_path):
    p = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="not a spinnq checkpoint"):
        load_checkpoint(p)
    save_checkpoint(p, {"w": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="lacks"):
        load_checkpoint(p, required=("model",))
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope.pt")


def test_checkpoint_with_code_is_refused(tmp_path):
    """weights_only=True: a pickle that would construct arbitrary objects does not load."""
    p = tmp_path / "evil.pt"
    torch.save({"spinnq_checkpoint": 1, "obj": RunDir(tmp_path)}, p)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_state_dict_mismatch_is_checkpoint_error():
    with pytest.raises(CheckpointError, match="does not fit"):
        load_state_dict(torch.nn.Linear(3, 2), torch.nn.Linear(4, 2).state_dict())


def test_run_dir_create_open(tmp_path):
    r = RunDir.create("t", root=tmp_path)
    r2 = RunDir.create("t", root=tmp_path)
    assert r.path != r2.path and (r.path / "checkpoints").is_dir()
    with pytest.raises(CheckpointError, match="config.json"):
        RunDir.open(r.path)
    r.save_config({"seed": 1})
    assert RunDir.open(r.path).load_config() == {"seed": 1}
    with pytest.raises(CheckpointError, match="no such run folder"):
        RunDir.open(tmp_path / "missing")


def test_metric_logger_truncate_drops_rows_after_checkpoint(tmp_path):
    log = MetricLogger(tmp_path, "train", tensorboard=False)
    for s in range(5):
        log.log(s, loss=s * 0.5, ret=None if s % 2 else float(s))
    log.truncate(2)
    log2 = MetricLogger(tmp_path, "train", tensorboard=False)
    log2.log(3, loss=9.0)
    cols = log2.read()
    assert cols["step"].tolist() == [0, 1, 2, 3]
    assert cols["loss"].tolist() == [0.0, 0.5, 1.0, 9.0]
    assert np.isnan(cols["ret"][1]) and cols["ret"][2] == 2.0


def test_progress_shows_the_info_field_and_defaults_it_to_empty():
    with progress(disable=True) as bar:
        fresh = bar.add_task("y", total=2)  # no info given: the column must not fail
        assert bar.tasks[fresh].fields["info"] == ""
        t = bar.add_task("x", total=3)
        bar.update(t, advance=1, info="return 10")
        assert bar.tasks[t].fields["info"] == "return 10" and bar.tasks[t].completed == 1
        out = io.StringIO()
        Console(file=out, width=120).print(bar.make_tasks_table(bar.tasks))  # as it is drawn
    line = out.getvalue().splitlines()[1]
    assert line.split()[0] == "x" and "1/3" in line and line.rstrip().endswith("return 10")
