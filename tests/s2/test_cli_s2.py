"""`spinnq deploy` and `spinnq export` as a user runs them."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from spinnq.cli import app
from tests.conftest import load_trace

runner = CliRunner()


def test_deploy_lif_trace_writes_npz_and_summary(tmp_path, nir_paper):
    import nir

    g = nir.read(str(nir_paper / "lif_norse.nir"))
    for attr, node in (("weight", "0"), ("bias", "0"), ("v_threshold", "1")):
        setattr(g.nodes[node], attr, getattr(g.nodes[node], attr) * 102.02)
    nir.write(str(tmp_path / "lif.nir"), g)
    trace = load_trace(nir_paper / "lif_spinnaker2.csv")
    np.save(tmp_path / "x.npy", trace[:, :1])
    r = runner.invoke(app, ["deploy", str(tmp_path / "lif.nir"), "--input", str(tmp_path / "x.npy"),
                            "--out", str(tmp_path / "o.npz"), "--weight-scale", "none",
                            "--reset", "zero", "--summary", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert "PEs 2, chips 1" in r.output and "largest consumer" in r.output
    out = np.load(tmp_path / "o.npz")
    assert out["spikes/1"].shape == (1, 1001, 1) and out["spikes/1"].dtype == np.uint8
    assert np.array_equal(out["spikes/1"][0, 1:, 0], trace[:, 2])
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["pes"] == 2 and s["chips"] == 1 and s["steps"] == 1001
    assert s["populations"]["1"]["weight_range"] == [102, 102]
    assert s["counters"]["1"]["spikes"] == 4


def test_deploy_options_and_export_roundtrip(tmp_path, nir_paper):
    x = (np.random.default_rng(0).random((1, 6, 2, 34, 34)) < 0.1).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    r = runner.invoke(app, ["export", str(nir_paper / "cnn_sinabs.nir"), "--out",
                            str(tmp_path / "q.nir"), "--weight-scale", "p99"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["deploy", str(tmp_path / "q.nir"), "--input", str(tmp_path / "x.npy"),
                            "--out", str(tmp_path / "o.npz"), "--weight-scale", "none",
                            "--neurons-per-pe", "64", "--neurons-per-pe", "12=5",
                            "--record", "3", "--record", "12", "--steps", "8"])
    assert r.exit_code == 0, r.output
    out = np.load(tmp_path / "o.npz")
    assert out["spikes/3"].shape == (1, 8, 16, 16, 16)
    assert out["v/12"].shape == (1, 8, 10)


def _main(monkeypatch, capsys, args):
    from spinnq.cli import main

    monkeypatch.setattr(sys, "argv", ["spinnq", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


def test_deploy_errors_are_one_line(tmp_path, nir_paper, monkeypatch, capsys):
    np.save(tmp_path / "x.npy", np.full((3, 2, 34, 34), 0.5))
    base = ["deploy", str(nir_paper / "cnn_sinabs.nir"), "--input", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "o.npz")]
    code, err = _main(monkeypatch, capsys, base)
    assert code == 2 and "0 or 1" in err and "Traceback" not in err
    monkeypatch.setitem(sys.modules, "spinnaker2", None)
    code, err = _main(monkeypatch, capsys, [*base, "--backend", "spinnaker2", "--eth-ip", "1.2.3.4"])
    assert code == 2 and "py-spinnaker2" in err
    code, err = _main(monkeypatch, capsys, [*base, "--neurons-per-pe", "a=b"])
    assert code == 2 and "NAME=N" in err
    code, err = _main(monkeypatch, capsys, [*base, "--neurons-per-pe", "nope=3"])
    assert code == 2 and "unknown population" in err


def test_deploy_command_runs_through_pipeline_deploy(tmp_path, nir_paper, monkeypatch, capsys):
    """The command only parses, calls the library and prints: its run is `pipeline.deploy`'s
    (the API users get the same compile, placement and run)."""
    import spinnq.pipeline as pipeline

    calls = []
    real = pipeline.deploy

    def spy(*a, **kw):
        calls.append(kw.get("backend"))
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "deploy", spy)
    np.save(tmp_path / "x.npy", np.zeros((3, 2, 34, 34), np.uint8))
    from spinnq.cli import main

    monkeypatch.setattr(sys, "argv", ["spinnq", "deploy", str(nir_paper / "cnn_sinabs.nir"),
                                      "--input", str(tmp_path / "x.npy"),
                                      "--out", str(tmp_path / "o.npz")])
    try:
        main()
    except SystemExit as e:  # typer may end a successful command with exit 0
        assert e.code in (0, None), capsys.readouterr().err
    assert calls == ["emulator"] and (tmp_path / "o.npz").exists()
