"""An input checked and decoded once (`prepare_input`) runs exactly as the array it came from,
on every program with that input population: calibration emulates all its candidates on one
decoded copy of its samples."""

from __future__ import annotations

import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.graph.model import read_graph
from spinnq.s2 import S2Config, compile, emulate
from spinnq.s2.emulate import prepare_input
from spinnq.s2.events import decode_input, perm
from spinnq.s2.inputs import SpikeInput, spike_batch
from tests.conftest import assert_same_run


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.float64])
def test_every_program_runs_the_prepared_input_as_the_array(nir_paper, dtype):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    x = (np.random.default_rng(0).random((3, 25, *g.input_shape)) < 0.2).astype(dtype)
    prep = prepare_input(x, g.input_shape)
    rec = ["input", "1", "3", "12"]
    for cfg in (S2Config(engine="events"), S2Config(engine="events", weight_scale="p99"),
                S2Config(engine="events", reset="zero"), S2Config(engine="torch")):
        prog = compile(g, cfg)
        a, b = emulate(prog, x, record=rec), emulate(prog, prep, record=rec)
        assert a.spikes["3"].sum() > 0
        assert_same_run(a, b)


@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 2, 5), (1, 4, 4), (7,)])
def test_decoded_lists_are_the_spikes_of_every_step_in_ascending_engine_order(shape):
    x = (np.random.default_rng(1).random((2, 6, *shape)) < 0.5).astype(np.float32)
    d = decode_input(spike_batch(x, shape), shape)
    back = np.argsort(perm(shape))  # NIR flat index -> engine index
    for b in range(2):
        for t in range(6):
            got = d.idx[d.ptr[b * 6 + t]:d.ptr[b * 6 + t + 1]]
            assert list(got) == sorted(back[np.flatnonzero(x[b, t].ravel())])
    assert d.ptr[-1] == np.count_nonzero(x)


def test_dense_inputs_outgrow_the_first_guess_of_room():
    shape = (40,)
    x = np.ones((3, 50, *shape), np.uint8)  # every value a spike: 16 x the room guessed
    d = decode_input(spike_batch(x, shape), shape)
    assert d.ptr[-1] == x.size and np.array_equal(d.idx[:40], np.arange(40))


@pytest.mark.parametrize("bad", [0.5, np.nan, 3])
def test_a_bad_value_is_an_input_error_when_prepared(bad):
    x = np.zeros((2, 5, 3), np.float32)
    x[1, 4, 2] = bad
    with pytest.raises(InputError, match="input values must be 0 or 1"):
        prepare_input(x, (3,))


def test_a_prepared_input_of_another_shape_is_refused(nir_paper):
    g = read_graph(nir_paper / "cnn_sinabs.nir")
    prog = compile(g, S2Config(engine="events"))
    wrong = SpikeInput(np.zeros((1, 3, 5), np.uint8), (5,))
    with pytest.raises(InputError, match="prepared input is for an input of shape"):
        emulate(prog, wrong)
