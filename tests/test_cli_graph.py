"""`spinnq inspect` / `spinnq simulate`: the command contract, and one-line errors."""


import numpy as np
import pytest

from tests.conftest import load_trace, run_cli


def test_help_lists_commands(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "--help")
    assert code == 0 and "inspect" in out and "simulate" in out


def test_inspect_shows_counts(monkeypatch, capsys, nir_paper):
    code, out, _ = run_cli(monkeypatch, capsys, "inspect", nir_paper / "cnn_sinabs.nir")
    assert code == 0
    assert "neurons 8,970" in out and "weights 39,584" in out and "SumPool2d" in out


def test_simulate_reproduces_norse_trace(monkeypatch, capsys, nir_paper, tmp_path):
    ref = load_trace(nir_paper / "lif_norse.csv")
    np.save(tmp_path / "x.npy", ref[:, :1].astype(np.float32))
    code, out, err = run_cli(monkeypatch, capsys, "simulate", nir_paper / "lif_norse.nir",
                             "--input", tmp_path / "x.npy", "--out", tmp_path / "o.npz",
                             "--reset", "zero", "--dt", "1e-4")
    assert code == 0, err
    res = np.load(tmp_path / "o.npz")
    assert res["spikes/1"].dtype == np.uint8 and res["spikes/1"].shape == (1, 1000, 1)
    assert np.array_equal(res["spikes/1"][0, :, 0], ref[:, 2])
    assert np.abs(res["v/1"][0, :, 0] - ref[:, 1]).max() < 1e-5


@pytest.mark.parametrize("setup, args, message", [
    (None, ["inspect", "{tmp}/missing.nir"], "no such file"),
    ("text", ["inspect", "{tmp}/bad.nir"], "not an HDF5 file"),
    ("npy_wrong", ["simulate", "{paper}/lif_norse.nir", "--input", "{tmp}/x.npy", "--out",
                   "{tmp}/o.npz"], "expected (T, 1)"),
    ("npy_ok", ["simulate", "{paper}/lif_norse.nir", "--input", "{tmp}/x.npy", "--out",
                "{tmp}/o.npz", "--dt", "0"], "dt must be a positive"),
    ("npy_ok", ["simulate", "{paper}/lif_norse.nir", "--input", "{tmp}/nope.npy", "--out",
                "{tmp}/o.npz"], "no such file"),
])
def test_bad_input_gives_one_line_error_no_traceback(monkeypatch, capsys, tmp_path, nir_paper,
                                                     setup, args, message):
    if setup == "text":
        (tmp_path / "bad.nir").write_text("not hdf5")
    elif setup == "npy_wrong":
        np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    elif setup == "npy_ok":
        np.save(tmp_path / "x.npy", np.zeros((10, 1), np.float32))
    args = [a.format(tmp=tmp_path, paper=nir_paper) for a in args]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert message in " ".join(err.split()) and "Traceback" not in err + out
