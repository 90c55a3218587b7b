"""Spike inputs are checked where they are stored: no float copy of the whole input, one pass
over the values, the same one-line errors as before, and files mapped rather than read."""

from __future__ import annotations

import sys

import nir
import numpy as np
import pytest
import torch

from spinnq.cli.common import load_input
from spinnq.errors import InputError
from spinnq.files import map_npz
from spinnq.graph.model import from_nir
from spinnq.graph.simulate import as_batch
from spinnq.s2 import S2Config, compile, emulate
from spinnq.s2.inputs import bad_value, check_spikes, spike_batch


def _graph():
    return from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc": nir.Linear(np.eye(3, dtype=np.float32) * 2),
        "lif": nir.IF(r=np.ones(3, np.float32), v_threshold=np.ones(3, np.float32)),
        "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False))


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.float32])
def test_engine_dtypes_reach_the_engine_without_a_copy(dtype):
    x = (np.random.default_rng(0).random((2, 7, 3)) < 0.5).astype(dtype)
    xb = spike_batch(x, (3,))
    assert np.shares_memory(xb, x) and xb.dtype in (np.uint8, np.float32)
    assert np.array_equal(xb.astype(bool), x.astype(bool))


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.int64, np.uint16, ">f4"])
def test_other_dtypes_become_engine_dtypes_in_one_checked_pass(dtype):
    x = (np.random.default_rng(1).random((7, 3)) < 0.5).astype(dtype)
    xb = spike_batch(x, (3,))
    assert xb.dtype == (np.float32 if dtype == ">f4" else np.uint8) and xb.shape == (1, 7, 3)
    assert np.array_equal(xb[0], x.astype(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint8, np.float16])
def test_a_value_other_than_0_or_1_names_itself(dtype):
    x = np.zeros((4, 3), dtype)
    x[2, 1] = 2
    with pytest.raises(InputError, match=r"input values must be 0 or 1, found 2$"):
        spike_batch(x, (3,), check=True)
    assert bad_value(x) == 2
    with pytest.raises(InputError, match="found 2"):
        check_spikes(torch.as_tensor(x.astype(np.float32)))


@pytest.mark.parametrize("engine", ["events", "torch"])
@pytest.mark.parametrize("bad", [0.5, np.nan, 3])
def test_emulate_refuses_bad_values_on_both_engines(engine, bad):
    prog = compile(_graph(), S2Config(engine=engine))
    x = np.zeros((5, 3), np.float32)
    x[3, 2] = bad
    with pytest.raises(InputError, match="must be 0 or 1, found"):
        emulate(prog, x)
    x8 = np.zeros((5, 3), np.uint8)
    x8[1, 0] = 7
    with pytest.raises(InputError, match="found 7"):
        emulate(prog, x8)


def test_emulate_gives_the_same_run_for_every_input_dtype():
    prog = compile(_graph(), S2Config())
    x = (np.random.default_rng(2).random((3, 20, 3)) < 0.4)
    runs = [emulate(prog, x.astype(d)) for d in (np.float32, np.uint8, bool, np.float64)]
    runs.append(emulate(prog, torch.from_numpy(x.astype(np.float32))))
    for r in runs[1:]:
        assert torch.equal(r.spikes["lif"], runs[0].spikes["lif"])


def test_as_batch_keeps_the_dtype_and_memory_and_names_non_finite_values():
    x = np.ones((6, 3), np.uint8)
    xb = as_batch(x, (3,))
    assert xb.dtype == torch.uint8 and xb.shape == (1, 6, 3)
    assert np.shares_memory(xb.numpy(), x)
    for bad in (np.nan, np.inf):
        with pytest.raises(InputError, match="NaN, infinite or complex"):
            as_batch(np.array([[0.0, bad, 1.0]]), (3,))


def test_load_input_maps_the_file_copy_on_write(tmp_path):
    p = tmp_path / "x.npy"
    x = (np.random.default_rng(3).random((4, 5, 3)) < 0.5).astype(np.float32)
    np.save(p, x)
    a = load_input(p)
    assert type(a) is np.ndarray and np.array_equal(a, x) and a.flags.writeable
    a[:] = 7  # changes the mapping, never the file
    assert np.array_equal(np.load(p), x)


def test_stored_npz_arrays_are_mapped_and_deflated_ones_are_not(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.savez(tmp_path / "s.npz", x=x, y=np.arange(2))
    np.savez_compressed(tmp_path / "c.npz", x=x)
    m = map_npz(tmp_path / "s.npz", "x")
    assert m is not None and np.array_equal(m, x)
    assert map_npz(tmp_path / "c.npz", "x") is None
    assert map_npz(tmp_path / "s.npz", "nope") is None


def test_deploy_names_nan_before_compiling_and_other_values_after(tmp_path, monkeypatch, capsys):
    from spinnq.cli import main
    from spinnq.graph.model import write_graph

    write_graph(_graph(), tmp_path / "g.nir")
    for bad, message in ((np.nan, "NaN, infinite or complex"), (0.5, "0 or 1, found 0.5")):
        x = np.zeros((5, 3), np.float32)
        x[2, 2] = bad
        np.save(tmp_path / "x.npy", x)
        monkeypatch.setattr(sys, "argv", ["spinnq", "deploy", str(tmp_path / "g.nir"), "--input",
                                          str(tmp_path / "x.npy"), "--out",
                                          str(tmp_path / "o.npz")])
        with pytest.raises(SystemExit) as e:
            main()
        out, err = capsys.readouterr()
        assert e.value.code == 2 and message in err, err
        assert ("PEs" in out) == (bad == 0.5)  # NaN: refused before the compile
