"""Run settings recorded in a graph's metadata: read back, checked, and ranked below flags."""

import nir
import numpy as np
import pytest

from spinnq.errors import GraphError, InputError
from spinnq.graph.meta import read_settings, resolve, run_settings, stamp


def test_stamped_settings_survive_a_nir_file(tmp_path):
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])),
                            "fc": nir.Linear(np.eye(2, dtype=np.float32)),
                            "output": nir.Output(np.array([2]))},
                     edges=[("input", "fc"), ("fc", "output")],
                     metadata=stamp({}, reset="subtract", convention="snntorch", dt=1e-3))
    nir.write(tmp_path / "g.nir", g)
    got = read_settings(nir.read(tmp_path / "g.nir").metadata)
    assert got == {"reset": "subtract", "convention": "snntorch", "dt": 1e-3}


def test_bad_metadata_value_names_the_key_and_file():
    with pytest.raises(GraphError, match=r"file g.nir: metadata 'spinnq.reset' must be one of"):
        read_settings({"spinnq.reset": "sometimes"}, source="g.nir")
    with pytest.raises(GraphError, match="positive number of seconds"):
        read_settings({"spinnq.dt": -1.0})


def test_flags_beat_metadata_which_beats_defaults():
    meta = stamp({}, reset="subtract", dt=1e-3)
    got = resolve({"reset": None, "dt": 5e-4}, meta, {"reset": "zero", "dt": 1e-4,
                                                      "convention": "nir"})
    assert got == {"reset": "subtract", "dt": 5e-4, "convention": "nir"}


@pytest.mark.parametrize("flags, meta, want", [
    ({}, {}, {"reset": "zero", "convention": "nir", "dt": 1e-4}),
    ({"convention": "snntorch"}, {}, {"reset": "subtract", "convention": "snntorch"}),
    ({"convention": "snntorch", "reset": "zero"}, {}, {"reset": "zero"}),  # flag > convention
    ({}, {"convention": "snntorch"}, {"reset": "subtract", "convention": "snntorch"}),
    ({}, {"convention": "snntorch", "reset": "zero"}, {"reset": "zero"}),  # file > convention
    ({"convention": "norse"}, {"convention": "snntorch"}, {"reset": "zero",
                                                           "convention": "norse"}),
    ({"dt": None}, {"dt": 1e-3}, {"dt": 1e-3}),
])
def test_run_settings_rank_flags_file_convention_defaults(flags, meta, want):
    got = run_settings(stamp({}, **meta), **flags)
    assert {k: got[k] for k in want} == want


def test_run_settings_refuses_an_unknown_convention_flag():
    with pytest.raises(InputError, match="convention must be one of"):
        run_settings({}, convention="brian2")
