"""Regressions found by the fuzz suite: each once escaped as a non-spinnq exception
(ZeroDivisionError, TypeError, AttributeError) or was silently accepted."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spinnq.errors import GraphError, InputError
from spinnq.graph import from_nir, simulate


def conv_graph(**conv_kw) -> nir.NIRGraph:
    kw = {"input_shape": (6, 6), "weight": np.ones((2, 1, 3, 3), np.float32), "stride": 1,
          "padding": 0, "dilation": 1, "groups": 1, "bias": np.zeros(2, np.float32)} | conv_kw
    conv = nir.Conv2d(input_shape=(6, 6), weight=np.ones((2, 1, 3, 3), np.float32), stride=1,
                      padding=0, dilation=1, groups=1, bias=np.zeros(2, np.float32))
    for k in ("weight", "padding", "stride", "dilation", "groups"):
        setattr(conv, k, kw[k])  # past nir's own checks, as a file could hold them
    shape = (2, 4, 4)
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}), "conv": conv,
        "lif": nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32)),
        "output": nir.Output(output_type={"output": np.array(shape)})},
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")], type_check=False)


@pytest.mark.parametrize("kw, match", [
    ({"stride": 0}, "stride"), ({"dilation": 0}, "dilation"), ({"padding": -2}, "padding"),
    ({"groups": 0}, "groups"), ({"groups": 3}, "groups"), ({"padding": "bogus"}, "bogus"),
    ({"weight": np.ones((2, 1, 3), np.float32)}, "4-D"),
    ({"weight": None}, "real numbers"), ({"weight": np.ones((2, 1, 3, 3)) * 1j}, "real numbers"),
])
def test_bad_conv_parameters_are_graph_errors_naming_the_node(kw, match):
    with pytest.raises(GraphError, match=f"node 'conv'.*{match}"):
        from_nir(conv_graph(**kw))


@pytest.mark.parametrize("attr, val", [("stride", np.array([0, 0])),
                                       ("kernel_size", np.array([0, 0])),
                                       ("padding", np.array([-1, -1]))])
def test_bad_pool_parameters_are_graph_errors(attr, val):
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                         padding=np.array([0, 0]))
    setattr(pool, attr, val)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
                            "pool": pool, "output": nir.Output(output_type={"output": np.array(
                                [1, 2, 2])})},
                     edges=[("input", "pool"), ("pool", "output")], type_check=False)
    with pytest.raises(GraphError, match="node 'pool'"):
        from_nir(g)


def dense_graph(threshold=None, start_dim=0) -> nir.NIRGraph:
    lif = nir.IF(r=np.ones(3, np.float32), v_threshold=np.ones(3, np.float32))
    if threshold is not None:
        lif.v_threshold = threshold  # past nir's own checks, as a file could hold it
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2, 2])}),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2])}, start_dim=start_dim),
        "fc": nir.Linear(np.ones((3, 4), np.float32)),
        "lif": lif,
        "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "output")],
        type_check=False)


@pytest.mark.parametrize("thr", ["abc", np.array(["x", "y", "z"]), np.ones(3) * (1 + 1j)])
def test_non_real_neuron_parameters_are_refused(thr):
    with pytest.raises(GraphError, match="node 'lif'.*v_threshold.*real numbers"):
        from_nir(dense_graph(threshold=thr))


@pytest.mark.parametrize("dim", [7, -9])
def test_flatten_dims_out_of_range_are_refused_not_wrapped(dim):
    with pytest.raises(GraphError, match="node 'flat'.*out of range"):
        from_nir(dense_graph(start_dim=dim))


@pytest.mark.parametrize("x", [np.full((3, 2, 2), "a"), np.array([None] * 3, dtype=object),
                               [[1, 2], [3]]])
def test_non_numeric_input_arrays_are_input_errors(x):
    with pytest.raises(InputError):
        simulate(from_nir(dense_graph()), x)


@pytest.mark.parametrize("x", [np.full((3, 2, 2), "a"), np.array([None] * 3, dtype=object),
                               [[1, 2], [3]]])
def test_non_numeric_input_arrays_are_input_errors_on_the_emulator(x):
    from spinnq.pipeline import deploy
    with pytest.raises(InputError):
        deploy(from_nir(dense_graph()), x)


def test_a_file_that_makes_hdf5_loop_forever_is_a_graph_error_after_the_timeout(monkeypatch):
    """`data/heap_loop.nir`: a .nir file with a few bytes overwritten (by the fuzz suite) so
    that HDF5 loops forever reading its edge list. read_graph reads in a child process and
    gives up after READ_TIMEOUT_S."""
    from pathlib import Path

    from spinnq.graph import model, read_graph
    monkeypatch.setattr(model, "READ_TIMEOUT_S", 2.0)
    path = Path(__file__).parent / "data" / "heap_loop.nir"
    with pytest.raises(GraphError, match="heap_loop.nir.*did not finish in 2 s"):
        read_graph(path)
