"""`spinnq simulate --convention`: a framework's exported file, run from the command line,
gives that framework's spikes; a bad convention is one readable line and exit code 2."""

from __future__ import annotations

import nir
import norse.torch as norse
import numpy as np
import pytest
import torch
from snntorch.export_nir import export_to_nir

from tests.conftest import run_cli
from tests.interop.test_norse_import import run_norse
from tests.interop.test_snntorch_import import build as build_snntorch
from tests.interop.test_snntorch_import import run_snntorch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_cli_snntorch_convention_matches_snntorch(monkeypatch, capsys, tmp_path):
    net, shape, reset = build_snntorch("linear-leaky-x2")
    nir.write(tmp_path / "net.nir", export_to_nir(net, torch.randn(1, *shape), ignore_dims=[0]))
    x = (torch.rand(2, 60, *shape) < 0.3).float()
    np.save(tmp_path / "x.npy", x.numpy())
    ref = run_snntorch(net, x)
    code, out, err = run_cli(monkeypatch, capsys, "simulate", tmp_path / "net.nir", "--input",
                             tmp_path / "x.npy", "--out", tmp_path / "o.npz", "--convention",
                             "snntorch", "--reset", reset, "--record", "1", "--record", "3")
    assert code == 0, err
    got = np.load(tmp_path / "o.npz")
    for k, r in ref.items():
        assert np.array_equal(got[f"spikes/{k}"], r.numpy().astype(np.uint8)), k
    assert sum(int(r.sum()) for r in ref.values()) > 0


def test_cli_norse_convention_matches_norse(monkeypatch, capsys, tmp_path):
    # nir.write cannot store Norse's default 0-d parameters ("Scalar datasets don't support
    # chunk/filter options"): a file needs per-neuron parameters.
    def cell(n: int, **kw) -> norse.LIFCell:
        return norse.LIFCell(norse.LIFParameters(
            tau_syn_inv=torch.full((n,), 200.0), tau_mem_inv=torch.full((n,), 100.0),
            v_leak=torch.zeros(n), v_th=torch.full((n,), kw.get("v_th", 1.0))))
    shape = (6,)
    net = norse.SequentialState(torch.nn.Linear(6, 20), cell(20), torch.nn.Linear(20, 5),
                                cell(5, v_th=0.5))
    for m in (net[0], net[2]):
        m.weight.data *= 6
        m.bias.data += 1.0
    nir.write(tmp_path / "net.nir", norse.to_nir(net, torch.randn(*shape), dt=1.0))
    x = (torch.rand(2, 60, *shape) < 0.3).float()
    np.save(tmp_path / "x.npy", x.numpy())
    ref = run_norse(net, x)
    code, _, err = run_cli(monkeypatch, capsys, "simulate", tmp_path / "net.nir", "--input",
                           tmp_path / "x.npy", "--out", tmp_path / "o.npz", "--convention",
                           "norse", "--dt", "1e-3", "--record", "1", "--record", "3")
    assert code == 0, err
    got = np.load(tmp_path / "o.npz")
    for k, r in ref.items():
        assert np.array_equal(got[f"spikes/{k}"], r.numpy().astype(np.uint8)), k
    assert all(int(r.sum()) > 0 for r in ref.values())


@pytest.mark.parametrize("extra, match", [
    (["--convention", "brian2"], "convention must be one of"),
    (["--convention", "snntorch", "--integrator", "exponential"], "forward Euler only"),
])
def test_cli_bad_convention_is_one_line_exit_2(monkeypatch, capsys, tmp_path, nir_paper, extra,
                                               match):
    np.save(tmp_path / "x.npy", np.zeros((5, 1), np.float32))
    code, out, err = run_cli(monkeypatch, capsys, "simulate", nir_paper / "lif_norse.nir",
                             "--input", tmp_path / "x.npy", "--out", tmp_path / "o.npz", *extra)
    assert code == 2 and match in err and "Traceback" not in err + out
    assert len(err.strip().splitlines()) <= 2  # rich may wrap one long line
