"""The D.npz data contract: good files load, every bad one is one line naming file and key."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.graph import from_nir
from spinnq.quant import load_data
from tests.conftest import run_cli


def small_graph() -> nir.NIRGraph:
    w1 = np.full((5, 6), 0.5, np.float32)
    w2 = np.full((3, 5), 0.5, np.float32)
    ones = np.ones(5, np.float32)
    return nir.NIRGraph(nodes={
        "input": nir.Input(np.array([6])), "fc1": nir.Linear(w1),
        "lif1": nir.LIF(tau=ones * 1e-3, r=ones * 10, v_leak=0 * ones, v_threshold=ones),
        "fc2": nir.Linear(w2),
        "lif2": nir.LIF(tau=np.full(3, 1e-3), r=np.full(3, 10.0), v_leak=np.zeros(3),
                        v_threshold=np.ones(3)),
        "output": nir.Output(np.array([3]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
               ("lif2", "output")], type_check=False)


def good(n: int = 4, t: int = 5) -> dict:
    rng = np.random.default_rng(0)
    return {"x": (rng.random((n, t, 6)) < 0.5).astype(np.uint8), "y": np.arange(n) % 3}


def test_good_file_loads_spikes_in_their_dtype_and_int64_labels(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, **good())
    x, y = load_data(p, from_nir(small_graph()))
    assert x.dtype == np.uint8 and x.shape == (4, 5, 6)  # large data sets are not copied
    assert y.dtype == np.int64 and list(y) == [0, 1, 2, 0]
    xf, _ = load_data({"x": good()["x"].astype(np.float64), "y": good()["y"]})
    assert xf.dtype == np.float32


BAD = {
    "missing x": ({"y": good()["y"]}, "key 'x' is missing"),
    "missing y": ({"x": good()["x"]}, "key 'y' is missing"),
    "label out of range": ({**good(), "y": np.array([0, 1, 2, 3])}, "key 'y' has label 3 out "
                           "of range"),
    "negative label": ({**good(), "y": np.array([0, -1, 2, 0])}, "key 'y' has label -1"),
    "shape mismatch": ({"x": np.zeros((4, 5, 7)), "y": good()["y"]}, "key 'x' has samples "
                       "of shape (7,)"),
    "not 0/1": ({"x": good()["x"] * 0.5, "y": good()["y"]}, "key 'x' must hold 0/1 spikes"),
    "labels per sample": ({**good(), "y": np.array([0, 1])}, "key 'y' has shape (2,)"),
    "float labels": ({**good(), "y": np.array([0.5, 1, 2, 0])}, "key 'y' must be integer"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_file_is_one_line_naming_file_and_key_exit_2(monkeypatch, capsys, tmp_path,
                                                              case):
    arrays, message = BAD[case]
    g, d = tmp_path / "g.nir", tmp_path / "bad.npz"
    nir.write(g, small_graph())
    np.savez(d, **arrays)
    code, out, err = run_cli(monkeypatch, capsys, "evaluate", g, "--data", d)
    assert code == 2, (out, err)
    line = " ".join(err.split())
    assert message in line and "bad.npz" in line
    assert "Traceback" not in err and err.count("error:") == 1  # one message (rich wraps it)


def test_missing_and_unreadable_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_data(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(InputError, match="junk.npz"):
        load_data(tmp_path / "junk.npz")


def test_data_without_labels_is_accepted_only_when_labels_are_not_needed():
    x = good()["x"]
    assert load_data(x, labels=False)[1] is None
    with pytest.raises(InputError, match="labels"):
        load_data(x)
