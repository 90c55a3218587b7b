"""Large networks in little memory: weights go straight to int8 (no float64 copy of a layer),
dense weights are stored so that the event engine's spike tables are views of them, and the
chunked conversion gives exactly the integers of the one-shot formula."""

import nir
import numpy as np
import pytest

from spinnq.graph.model import from_nir
from spinnq.s2 import S2Config, compile, emulate, formats
from spinnq.s2.events import dense_table
from spinnq.s2.formats import population_scale, to_int


def _one_shot(w, scale, bits, rounding):
    """to_int as it was before chunking (the reference)."""
    q = formats.qmax(bits)
    x = np.asarray(w, dtype=np.float64) * scale
    near = np.round(x)
    x = np.where(np.abs(x - near) <= 1e-6 * np.maximum(1.0, np.abs(x)), near, x)
    r = np.trunc(x) if rounding == "trunc" else np.round(x)
    return np.clip(r, -q, q).astype(np.int32), int(np.count_nonzero(np.abs(r) > q))


@pytest.mark.parametrize("rounding", ["nearest", "trunc"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_chunked_to_int_equals_the_one_shot_formula(rounding, order):
    rng = np.random.default_rng(0)
    w = np.asarray(rng.normal(size=(700, 300)).astype(np.float32), order=order)
    w[0, :5] = [0.5, -0.5, 1.5, 2.5, 127.4999]  # ties and the edge of the range
    scale = population_scale([w], "p99")  # some weights saturate
    got, sat = to_int(w, scale, 8, rounding)
    ref, ref_sat = _one_shot(w, scale, 8, rounding)
    assert w.size > formats.CHUNK  # more than one chunk
    assert got.dtype == np.int8 and sat == ref_sat > 0
    assert np.array_equal(got, ref)


def test_max_scale_is_computed_chunkwise_without_changing_it():
    w = np.random.default_rng(1).normal(size=(400, 400)).astype(np.float32)
    w[3, 7] = np.nan  # ignored, as before
    finite = np.abs(w[np.isfinite(w)].astype(np.float64))
    assert population_scale([w], "max") == 127 / finite.max()


def test_dense_weights_are_int8_column_major_and_the_engine_tables_are_views():
    rng = np.random.default_rng(2)
    g = from_nir(nir.NIRGraph(
        nodes={"in": nir.Input(np.array([50])),
               "fc": nir.Linear(rng.normal(size=(300, 50)).astype(np.float32)),
               "lif": nir.LIF(np.full(300, 1e-3), np.ones(300), np.zeros(300), np.ones(300),
                              np.zeros(300)),
               "out": nir.Output(np.array([300]))},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")]))
    prog = compile(g, S2Config(engine="events"))
    (proj,) = prog.projections
    assert proj.weight.dtype == np.int8 and proj.weight.shape == (300, 50)
    assert proj.weight.flags.f_contiguous  # each pre neuron's fan-out is contiguous
    table = dense_table(proj, (50,), (300,))
    assert np.shares_memory(table, proj.weight)  # no copy for the engine
    x = (rng.random((1, 20, 50)) < 0.3).astype(np.float32)
    a = emulate(prog, x, record=["lif"])
    b = emulate(compile(g, S2Config(engine="torch")), x, record=["lif"])
    assert np.array_equal(a.v["lif"].numpy(), b.v["lif"].numpy())
