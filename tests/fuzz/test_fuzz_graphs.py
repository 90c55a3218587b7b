"""Fuzzing: random valid graphs run end to end; random corruptions end in a SpinnqError.

Valid graphs (chains and small DAGs, `graphs.valid_graphs`) must simulate under every
convention and, when drawn from the chip subset, compile, place and emulate, without error.
Corrupted graphs, files and input arrays must raise a `SpinnqError` that names the node or
file (or, for input arrays, the expected shape) - never another exception. Hangs: every
test has a pytest timeout.

Default run: a few hundred cases. `pytest -m slow tests/fuzz`: >= 10,000 cases.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinnq.cli.common import load_input
from spinnq.errors import CompileError, InputError, SpinnqError
from spinnq.graph import SimConfig, from_nir, model, read_graph, simulate, write_graph
from spinnq.pipeline import deploy
from spinnq.s2.compile import S2Config
from tests.fuzz.graphs import MAY_STAY_VALID, MUTATIONS, valid_graphs

# Counts per test: (default run, slow run). Slow total: 3000+1500+5000+1000+500 = 11,000.
COUNTS = {"valid_chip": (60, 3000), "valid_any": (40, 1500), "mutation": (150, 5000),
          "file": (40, 1000), "input": (40, 500)}
GRAPH_LEVEL = {"empty", "only_io", "no_output", "two_inputs"}  # errors about the whole graph


def fuzz(name: str, slow: bool = False):
    """Hypothesis settings: no example database on disk. No per-example deadline: the first
    example pays the emulator's one-off numba compilation (~15-25 s on a fresh clone); hangs
    are caught by each test's pytest timeout instead."""
    return settings(max_examples=COUNTS[name][slow], deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much],
                    derandomize=not slow)


def spikes_for(shape: tuple, seed: int, b: int = 2, t: int = 6) -> np.ndarray:
    return (np.random.default_rng(seed).random((b, t, *shape)) < 0.4).astype(np.float32)


def run_valid(gs, data, chip: bool) -> None:
    graph, shape = gs
    torch.set_num_threads(1)
    g = from_nir(graph)
    x = spikes_for(shape, data.draw(st.integers(0, 1000)))
    conv = data.draw(st.sampled_from(["nir", "snntorch", "norse"]))
    integ = "forward" if conv != "nir" else data.draw(st.sampled_from(["forward", "exponential"]))
    cfg = SimConfig(convention=conv, integrator=integ,
                    reset=data.draw(st.sampled_from(["zero", "subtract"])),
                    record=tuple(n for n in g.order if n != g.input))
    tr = simulate(g, x, cfg)
    for k, arr in {**tr.spikes, **tr.v, **tr.out}.items():
        assert tuple(arr.shape) == (2, 6, *g.shapes[k]), k
        assert torch.isfinite(arr).all(), k
    if data.draw(st.integers(0, 9)) == 0:  # write and read back through a real file
        with tempfile.TemporaryDirectory() as d:
            back = read_graph(write_graph(g, Path(d) / "g.nir"))
        assert back.order == g.order and back.shapes == g.shapes
    try:
        _, placement, run = deploy(g, x, S2Config(reset=cfg.reset))
    except CompileError:
        if chip:
            raise
        return
    for name, s in run.spikes.items():
        assert s.shape[0] == 2 and tuple(s.shape[2:]) == g.shapes[name]


@pytest.mark.timeout(300)
@fuzz("valid_chip")
@given(valid_graphs(chip=True), st.data())
def test_random_chip_graphs_simulate_compile_and_emulate(gs, data):
    run_valid(gs, data, chip=True)


@pytest.mark.timeout(300)
@fuzz("valid_any")
@given(valid_graphs(chip=False), st.data())
def test_random_graphs_simulate_and_compile_or_refuse_clearly(gs, data):
    run_valid(gs, data, chip=False)


def pipeline(graph: nir.NIRGraph, shape: tuple) -> None:
    """Everything a user does with a graph: validate, simulate, compile/place/emulate."""
    g = from_nir(graph)
    x = spikes_for(g.input_shape if g.input_shape else shape, 0, b=1, t=4)
    simulate(g, x)
    deploy(g, x)


def check_mutation(gs, mutation, data) -> None:
    graph, shape = gs
    torch.set_num_threads(1)
    culprit = MUTATIONS[mutation](graph, data.draw)
    try:
        pipeline(graph, shape)
    except SpinnqError as e:
        assert str(e)
        assert (e.node or e.file or mutation in GRAPH_LEVEL or (culprit and culprit in str(e))
                or isinstance(e, CompileError | InputError)), (mutation, str(e))
        return
    # Not refused: allowed only where the mutation may leave a valid graph.
    assert mutation in MAY_STAY_VALID or culprit is None, f"{mutation} on {culprit} ran"


@pytest.mark.timeout(300)
@fuzz("mutation")
@given(valid_graphs(chip=False), st.sampled_from(sorted(MUTATIONS)), st.data())
def test_corrupted_graphs_end_in_a_spinnq_error(gs, mutation, data):
    check_mutation(gs, mutation, data)


# ------------------------------------------------------------------------------- files
def corrupt_file(path: Path, how: str, data) -> None:
    raw = path.read_bytes()
    if how == "truncate":
        path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif how == "garbage":
        path.write_bytes(data.draw(st.binary(max_size=2000)))
    elif how == "hdf5-magic-then-garbage":
        path.write_bytes(raw[:8] + data.draw(st.binary(max_size=2000)))
    elif how == "flip-bytes":  # overwrite a few bytes after the superblock
        buf = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(64, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
        path.write_bytes(bytes(buf))
    elif how == "hdf5-not-nir":
        path.unlink()
        with h5py.File(path, "w") as f:
            f.create_dataset(data.draw(st.sampled_from(["type", "nodes", "x", "edges"])),
                             data=np.arange(data.draw(st.integers(0, 5))))
            if data.draw(st.booleans()):
                grp = f.create_group("node")
                grp.create_dataset("type", data=data.draw(st.sampled_from(
                    [b"NIRGraph", b"LIF", b"Mystery", b""])))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "folder":
        path.unlink()
        path.mkdir()


@pytest.mark.timeout(300)
@fuzz("file")
@given(valid_graphs(chip=False), st.sampled_from(["truncate", "garbage", "flip-bytes",
                                                  "hdf5-magic-then-garbage", "hdf5-not-nir",
                                                  "empty", "folder"]), st.data())
def test_corrupted_files_end_in_a_graph_error_naming_the_file(gs, how, data):
    graph, shape = gs
    torch.set_num_threads(1)
    saved, model.READ_TIMEOUT_S = model.READ_TIMEOUT_S, 5.0  # a flipped byte can make
    try:  # HDF5 loop forever: give up sooner than a user would
        read_corrupted(graph, how, data)
    finally:
        model.READ_TIMEOUT_S = saved


def read_corrupted(graph: nir.NIRGraph, how: str, data) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "g.nir"
        write_graph(graph, path)
        corrupt_file(path, how, data)
        try:
            g = read_graph(path)
        except SpinnqError as e:
            assert e.file == str(path), str(e)
            return
        # A flipped byte may land where HDF5 does not look: the graph must then still run
        # or be refused clearly.
        assert how == "flip-bytes", how
        try:
            simulate(g, spikes_for(g.input_shape, 0, b=1, t=3))
            deploy(g, spikes_for(g.input_shape, 0, b=1, t=3))
        except SpinnqError:
            pass


# ------------------------------------------------------------------------------ inputs
BAD_INPUTS = {
    "wrong-feature-shape": lambda s, r: np.zeros((4, *[d + 1 for d in s]), np.float32),
    "missing-time-axis": lambda s, r: np.zeros(s, np.float32) if len(s) > 1 else np.zeros(()),
    "too-many-axes": lambda s, r: np.zeros((1, 1, 2, *s), np.float32),
    "no-timesteps": lambda s, r: np.zeros((0, *s), np.float32),
    "no-samples": lambda s, r: np.zeros((0, 3, *s), np.float32),
    "nan": lambda s, r: np.where(r.random((3, *s)) < 0.5, np.nan, 0.0),
    "inf": lambda s, r: np.full((3, *s), -np.inf),
    "complex": lambda s, r: np.zeros((3, *s), np.complex64),
    "strings": lambda s, r: np.full((3, *s), "a"),
    "objects": lambda s, r: np.array([None] * 3, dtype=object),
}


@pytest.mark.timeout(300)
@fuzz("input")
@given(valid_graphs(chip=True), st.sampled_from(sorted(BAD_INPUTS)), st.data())
def test_wrong_input_arrays_end_in_an_input_error(gs, kind, data):
    graph, _ = gs
    torch.set_num_threads(1)
    g = from_nir(graph)
    x = BAD_INPUTS[kind](g.input_shape, np.random.default_rng(0))
    with pytest.raises(InputError):
        simulate(g, x)
    with pytest.raises(InputError):
        deploy(g, x)
    with tempfile.TemporaryDirectory() as d:  # the CLI's loader: arrays and non-arrays
        p = Path(d) / "x.npy"
        if kind == "objects":
            p.write_bytes(os.urandom(data.draw(st.integers(0, 64))))
        else:
            np.save(p, x)
        try:
            arr = load_input(p)
        except InputError as e:
            assert e.file == str(p)
            return
        with pytest.raises(InputError):
            simulate(g, arr)


def test_binary_only_input_for_the_chip_and_bad_configs_are_input_errors():
    g = from_nir(nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([2])}),
        "fc": nir.Linear(np.ones((2, 2), np.float32)),
        "lif": nir.IF(r=np.ones(2, np.float32), v_threshold=np.ones(2, np.float32)),
        "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")], type_check=False))
    with pytest.raises(InputError, match="0 or 1"):
        deploy(g, np.full((3, 2), 0.5, np.float32))
    for bad in ({"dt": float("nan")}, {"dt": -1.0}, {"dt": 0}, {"dt": "1e-4"},
                {"reset": "sideways"}, {"integrator": "rk4"}, {"convention": "brian2"}):
        with pytest.raises(InputError):
            SimConfig(**bad)
    with pytest.raises(InputError, match="cannot record"):
        simulate(g, np.zeros((2, 2), np.float32), SimConfig(record=("nope",)))


# ------------------------------------------------------------------------ slow: >= 10k
@pytest.mark.slow
@pytest.mark.timeout(3600)
@fuzz("valid_chip", slow=True)
@given(valid_graphs(chip=True), st.data())
def test_slow_random_chip_graphs(gs, data):
    run_valid(gs, data, chip=True)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@fuzz("valid_any", slow=True)
@given(valid_graphs(chip=False), st.data())
def test_slow_random_graphs(gs, data):
    run_valid(gs, data, chip=False)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@fuzz("mutation", slow=True)
@given(valid_graphs(chip=False), st.sampled_from(sorted(MUTATIONS)), st.data())
def test_slow_corrupted_graphs(gs, mutation, data):
    check_mutation(gs, mutation, data)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@fuzz("file", slow=True)
@given(valid_graphs(chip=False), st.sampled_from(["truncate", "garbage", "flip-bytes",
                                                  "hdf5-magic-then-garbage", "hdf5-not-nir",
                                                  "empty", "folder"]), st.data())
def test_slow_corrupted_files(gs, how, data):
    test_corrupted_files_end_in_a_graph_error_naming_the_file.hypothesis.inner_test(
        gs, how, data)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@fuzz("input", slow=True)
@given(valid_graphs(chip=True), st.sampled_from(sorted(BAD_INPUTS)), st.data())
def test_slow_wrong_input_arrays(gs, kind, data):
    test_wrong_input_arrays_end_in_an_input_error.hypothesis.inner_test(gs, kind, data)
