"""Placement: neurons per PE, memory per PE from real storage, several chips, refusals."""

import nir
import numpy as np
import pytest

from spinnq.errors import CompileError
from spinnq.graph.model import from_nir
from spinnq.s2 import S2Config, compile, place, summarize
from spinnq.s2.place import memory
from spinnq.s2.program import ChipArithmetic, EngineConfig, PlaceConfig


def _chain(sizes):
    nodes = {"in": nir.Input(np.array([sizes[0]]))}
    edges = []
    prev = "in"
    rng = np.random.default_rng(0)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        nodes[f"fc{i}"] = nir.Linear(rng.normal(size=(b, a)))
        nodes[f"lif{i}"] = nir.LIF(np.full(b, 1e-3), np.ones(b), np.zeros(b), np.ones(b),
                                   np.zeros(b))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["out"] = nir.Output(np.array([sizes[-1]]))
    edges.append((prev, "out"))
    return from_nir(nir.NIRGraph(nodes=nodes, edges=edges))


def test_neurons_per_pe_default_override_and_memory_accounting():
    g = _chain([100, 1000, 10])
    prog = compile(g)
    pl = place(prog)
    s = summarize(prog, pl)
    assert s["populations"]["lif0"]["pes"] == 4  # 1000 / 250 (lif_no_delay default)
    assert s["populations"]["in"]["pes"] == 1
    slot = next(x for x in pl.slots if x.population == "lif0")
    assert slot.memory["weights"] == 250 * 100  # int8 dense rows: neurons x fan-in
    assert slot.memory == memory(prog, "lif0", 250)
    pl2 = place(compile(g, S2Config(neurons_per_pe={"lif0": 100}, neurons_per_pe_default=5)))
    assert sum(x.population == "lif0" for x in pl2.slots) == 10
    assert sum(x.population == "lif1" for x in pl2.slots) == 2
    four = compile(g, S2Config(bits=4))
    assert memory(four, "lif0", 250)["weights"] == 250 * 100 // 2


def test_large_network_spans_several_chips_and_routes():
    g = _chain([64, 30000, 10])
    prog = compile(g, S2Config(neurons_per_pe={"lif0": 100}))
    pl = place(prog)
    # 30000 / 100 = 300 PEs; the 10 read-outs with 30000 inputs each: 3 per PE -> 4 PEs
    assert pl.pes == 1 + 300 + 4
    assert pl.chips == 3  # 148 usable PEs per chip
    assert {s.chip for s in pl.slots} == {0, 1, 2}
    assert all(s.pe < 148 for s in pl.slots)
    assert all(s.bytes <= pl.memory_budget for s in pl.slots)
    assert pl.routing_entries > 0


def test_explicit_neurons_per_pe_that_do_not_fit_are_refused_with_name_and_limit():
    prog = compile(_chain([2000, 300]), S2Config(neurons_per_pe={"lif0": 250}))
    with pytest.raises(CompileError, match=r"'lif0'.*98,304 bytes per PE"):
        place(prog)


def test_default_neurons_per_pe_shrink_to_fit_the_budget():
    prog = compile(_chain([2000, 300]))
    pl = place(prog)
    per = [s.stop - s.start for s in pl.slots if s.population == "lif0"]
    assert max(per) < 250 and sum(per) == 300
    assert all(s.bytes <= 98_304 for s in pl.slots)


def test_population_that_cannot_fit_any_pe_is_refused():
    prog = compile(_chain([120_000, 2]))  # one neuron's int8 row alone is 120 kB
    with pytest.raises(CompileError, match=r"population 'lif0'.*cannot fit any PE.*98,304"):
        place(prog)


def test_too_many_chips_is_refused():
    cfg = S2Config(neurons_per_pe={"lif0": 10}, max_chips=2)
    prog = compile(_chain([64, 20000, 10]), cfg)
    with pytest.raises(CompileError, match="over the limit of 2 chips"):
        place(prog, cfg)
    with pytest.raises(CompileError, match="over the limit of 2 chips"):
        place(prog, PlaceConfig(max_chips=2))  # the placement stage's own config


def test_a_program_is_plain_data_carrying_only_what_the_chip_computes():
    cfg = S2Config(reset="subtract", fma=True, engine="torch", max_chips=2)
    prog = compile(_chain([8, 4]), cfg)
    assert prog.arithmetic == ChipArithmetic(reset="subtract", fma=True)
    assert prog.engine == EngineConfig(engine="torch")
    assert not hasattr(prog, "config")
    assert place(prog).chips == 1  # placement limits are place()'s, not the program's
