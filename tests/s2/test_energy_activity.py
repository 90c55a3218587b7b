"""Activity counts in the energy model: energy never falls as activity rises (any level, the
dvfs policy, any tick policy), sparsity matters on the seed network, and the PE-to-PE routes
stay sparse at sizes a dense PE x PE matrix could not hold."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinnq.s2 import chip
from spinnq.s2.energy import OP_CHOICES, energy, pe_routes
from spinnq.s2.program import PESlot, Placement, Population, Program, Projection
from spinnq.s2.published_fit import place_per_pe, rate_run
from tests.conftest import benchmark

ROOT = Path(__file__).resolve().parents[2]


def chain(sizes: tuple[int, ...], density: float, seed: int) -> Program:
    """input -> dense LIF layers of `sizes`, weights nonzero with probability `density`."""
    rng = np.random.default_rng(seed)
    names = ["input"] + [f"h{i}" for i in range(len(sizes) - 1)]
    pops = {"input": Population("input", "spike_list", (sizes[0],))}
    projs = []
    for i, n in enumerate(sizes[1:]):
        pops[names[i + 1]] = Population(names[i + 1], "lif_no_delay", (n,))
        w = (rng.random((n, sizes[i])) < density).astype(np.int8)
        projs.append(Projection(names[i], names[i + 1], "dense", w, 1.0))
    return Program(pops, projs, input="input", outputs=[names[-1]], depth=len(projs))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(4, 300), min_size=2, max_size=4),
       density=st.floats(0.05, 1.0), per_pe=st.integers(8, 256),
       rates=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
       more=st.floats(1.0, 3.0), bump=st.floats(0.0, 0.3),
       op=st.sampled_from(OP_CHOICES), tick=st.sampled_from([None, 1e-3, 1e-4]),
       threshold=st.integers(0, 40), seed=st.integers(0, 9))
def test_energy_never_falls_as_activity_rises(sizes, density, per_pe, rates, more, bump, op,
                                             tick, threshold, seed):
    """Every population's rate scaled up (x `more`, + `bump`): the energy, its range and its
    dynamic part never fall, at every level, the dvfs policy (any threshold) and both tick
    policies (fixed, or the shortest the level/policy meets)."""
    prog = chain(tuple(sizes), density, seed)
    pl = place_per_pe(prog, per_pe)
    names = list(prog.populations)
    lo = {n: rates[i] for i, n in enumerate(names)}
    hi = {n: min(1.0, r * more + bump) for n, r in lo.items()}
    model = chip.ChipModel.default()
    model.dvfs_threshold_packets = {"default": float(threshold)}
    steps = 6 + prog.depth
    a = energy(pl, rate_run(prog, lo, steps), prog, op=op, tick_s=tick, model=model) \
        if any(lo.values()) or tick else None
    b = energy(pl, rate_run(prog, hi, steps), prog, op=op, tick_s=tick, model=model) \
        if any(hi.values()) or tick else None
    if a is None or b is None:
        return
    tol = 1 + 1e-9
    assert a.energy_j <= b.energy_j * tol
    assert a.dynamic_j <= b.dynamic_j * tol
    assert a.energy_low_j <= b.energy_low_j * tol and a.energy_high_j <= b.energy_high_j * tol


def seed_program():
    seed_network = benchmark("seed_net").seed_network
    from spinnq.graph import from_nir
    from spinnq.s2.compile import S2Config, compile
    from spinnq.s2.place import place
    prog = compile(from_nir(seed_network()), S2Config(reset="subtract"))
    return prog, place(prog)


def test_on_the_seed_network_input_activity_moves_dynamic_energy_at_least_3x():
    """Seed DVS network (random seeded weights), emulated on 1 % and 30 % input spikes, at a
    fixed operating point and tick: the dynamic energy at 30 % is >= 3x that at 1 %."""
    from spinnq.s2.emulate import emulate
    prog, pl = seed_program()
    rng = np.random.default_rng(0)
    dyn = {}
    for rate in (0.01, 0.30):
        x = (rng.random((2, 30, 2, 32, 32)) < rate).astype(np.float32)
        run = emulate(prog, x)
        dyn[rate] = {op: energy(pl, run, prog, op=op, tick_s=1e-3).dynamic_j
                     for op in ("0.8V", "0.5V")}
    for op in ("0.8V", "0.5V"):
        assert dyn[0.30][op] >= 3 * dyn[0.01][op], (op, dyn)


def test_routes_stay_sparse_where_a_dense_pe_matrix_would_not_fit():
    """40,001 PEs (a 40,000-neuron dense layer at 1 neuron per PE behind a 100-neuron input):
    a dense PE x PE matrix would be 1.6 GB of booleans; the routes and the energy take a few
    MB and a few seconds."""
    n = 40_000
    pops = {"input": Population("input", "spike_list", (100,)),
            "h": Population("h", "lif_no_delay", (n,))}
    w = np.ones((n, 100), np.int8)
    w[:, 50:] = 0  # half the inputs unused: the routes must see the zeros
    prog = Program(pops, [Projection("input", "h", "dense", w, 1.0)], "input", ["h"], depth=1)
    slots = [PESlot(0, 0, "input", 0, 100)] + [
        PESlot(1 + k // 148, k % 148, "h", k, k + 1) for k in range(n)]
    pl = Placement(slots, chips=1 + n // 148 + 1, pes_per_chip=148,
                   memory_budget=chip.PE_DATA_BYTES)
    tracemalloc.start()
    routes = pe_routes(prog, pl)
    cost = energy(pl, rate_run(prog, {"input": 0.1, "h": 0.01}, 4), prog, op="dvfs",
                  tick_s=1e-3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(routes.src) == n and routes.table_entries[1:].tolist() == [1] * n
    assert routes.qpes[0] == len({(s.chip, s.pe // 4) for s in slots[1:]})
    assert routes.syn_share[1:].sum() == pytest.approx(1.0)
    assert cost.pes == n + 1 and cost.energy_j > 0
    assert peak < 400e6, peak  # the dense matrix alone: 1.6e9 bytes
