"""Unit behaviour of the SpiNNaker2 energy model: cycles, shares, tick, DVFS, energy sums."""

from __future__ import annotations

import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.energy import CycleCosts, energy, estimate_counters
from spinnq.s2.program import PESlot, Placement, Population, Program, Projection, Run

LOW, HIGH = chip.OPERATING_POINTS["0.5V"], chip.OPERATING_POINTS["0.8V"]
NO_OVERHEAD = CycleCosts(tick_overhead=0.0)


def two_layer(kind: str = "dense", model: str = "lif_no_delay") -> Program:
    pops = {"in": Population("in", "spike_list", (4,)), "h": Population("h", model, (8,))}
    w = np.ones((8, 4), np.int8) if kind == "dense" else np.ones((2, 1, 3, 3), np.int8)
    return Program(pops, [Projection("in", "h", kind, w, 1.0)], "in", ["h"], depth=1)


def placement(*slots: tuple[str, int, int], chips: int = 1) -> Placement:
    return Placement([PESlot(0, i, p, a, b, {"weights": 100 * (i + 1)})
                      for i, (p, a, b) in enumerate(slots)], chips, 148, chip.PE_DATA_BYTES)


def run(counters: dict, steps: int) -> Run:
    return Run({}, {}, {p: {k: np.full(steps, float(v)) if np.isscalar(v) else np.asarray(v)
                            for k, v in c.items()} for p, c in counters.items()}, steps)


def test_energy_is_sleep_times_tick_plus_cycles_times_energy_per_cycle():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {"spikes": 2}, "h": {"neuron_updates": 8}}, steps=10)
    c = energy(pl, r, prog, op="0.8V", tick_s=1e-3, costs=NO_OVERHEAD)
    cycles = 10 * (2 * chip.CYCLES_PER_SPIKE_OUT + 8 * chip.CYCLES_PER_NEURON_UPDATE)
    expected = (chip.CHIP_OFF_W + 2 * HIGH.pe_sleep_w) * 10e-3 + cycles * HIGH.energy_per_cycle_j
    assert c.energy_j == pytest.approx(expected, rel=1e-12)
    assert c.busy_cycles == pytest.approx(cycles)
    assert c.power_w == pytest.approx(expected / 10e-3)
    assert c.base_j + c.dynamic_j == pytest.approx(c.energy_j)
    assert sum(p["energy_j"] for p in c.per_population.values()) + \
        chip.CHIP_OFF_W * 10e-3 == pytest.approx(c.energy_j)
    assert c.memory_max_bytes == 200 and c.kind == "modelled"


def test_pes_get_their_neuron_share_of_the_population_counters():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 6), ("h", 6, 8))
    r = run({"in": {}, "h": {"neuron_updates": 8, "syn_events": 40}}, steps=5)
    c = energy(pl, r, prog, tick_s=1e-3, costs=NO_OVERHEAD)
    a, b = c.per_pe[1]["busy_cycles"], c.per_pe[2]["busy_cycles"]
    assert a == pytest.approx(3 * b) and a > 0
    assert c.per_population["h"]["pes"] == 2 and c.per_population["h"]["neurons"] == 8


def test_packets_into_a_dense_projection_reach_every_pe_of_the_target():
    pl = placement(("in", 0, 4), ("h", 0, 4), ("h", 4, 8))
    r = run({"in": {}, "h": {"packets_in": 10}}, steps=1)
    dense = energy(pl, r, two_layer("dense"), tick_s=1e-3, costs=NO_OVERHEAD)
    conv = energy(pl, r, two_layer("conv", "lif_conv2d"), tick_s=1e-3, costs=NO_OVERHEAD)
    per_packet = chip.CYCLES_PER_PACKET_IN
    assert dense.per_pe[1]["busy_cycles"] == pytest.approx(10 * per_packet)
    assert conv.per_pe[1]["busy_cycles"] == pytest.approx(5 * per_packet)


def test_conv_synaptic_work_is_charged_on_the_accelerator_not_twice():
    prog = two_layer("conv", "lif_conv2d")
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {}, "h": {"syn_events": 1000, "macs": 1000}}, steps=1)
    c = energy(pl, r, prog, tick_s=1e-3, costs=NO_OVERHEAD)
    assert c.per_pe[1]["busy_cycles"] == pytest.approx(1000 / chip.MACS_PER_CYCLE)
    assert c.dynamic_j == pytest.approx(1000 * chip.ENERGY_PER_MAC_J[0.8])


def test_shortest_tick_is_the_busiest_pe_at_its_clock_and_latency_adds_the_depth():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    upd = np.array([8, 8, 80, 8, 8, 8.0])
    r = run({"in": {}, "h": {"neuron_updates": upd}}, steps=6)
    c = energy(pl, r, prog, op="0.8V", costs=NO_OVERHEAD)
    assert c.tick_s == pytest.approx(80 * chip.CYCLES_PER_NEURON_UPDATE / HIGH.clock_hz)
    assert c.peak_load == pytest.approx(1.0)
    assert c.latency_s == pytest.approx(6 * c.tick_s)  # (6 - depth) input steps + depth
    assert energy(pl, r, prog, op="0.8V", costs=NO_OVERHEAD, input_steps=6).latency_s == \
        pytest.approx(7 * c.tick_s)
    low = energy(pl, r, prog, op="0.5V", costs=NO_OVERHEAD)
    assert low.tick_s == pytest.approx(2 * c.tick_s)


def test_a_tick_too_short_for_the_load_stretches_the_run_and_says_so():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {}, "h": {"neuron_updates": [8, 20_000, 8]}}, steps=3)  # 600k cycles
    c = energy(pl, r, prog, op="0.8V", tick_s=1e-3, costs=NO_OVERHEAD)
    assert not c.realtime and c.overrun_steps == 1
    assert c.tick_s == pytest.approx(20_000 * chip.CYCLES_PER_NEURON_UPDATE / HIGH.clock_hz)
    ok = energy(pl, r, prog, op="0.8V", tick_s=5e-3, costs=NO_OVERHEAD)
    assert ok.realtime and ok.tick_s == 5e-3


def test_dvfs_uses_the_low_point_where_the_load_fits_and_the_high_one_where_not():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    light = 8.0
    heavy = 1.5 * LOW.clock_hz * 1e-3 / chip.CYCLES_PER_NEURON_UPDATE  # 1.5x low capacity
    r = run({"in": {}, "h": {"neuron_updates": [light, heavy, light, light]}}, steps=4)
    d = energy(pl, r, prog, op="dvfs", tick_s=1e-3, costs=NO_OVERHEAD)
    assert d.realtime
    assert d.per_pe[1]["low_fraction"] == pytest.approx(0.75)
    assert d.per_pe[0]["low_fraction"] == 1.0
    assert d.energy_j < energy(pl, r, prog, op="0.8V", tick_s=1e-3, costs=NO_OVERHEAD).energy_j
    # when everything fits the low point, dvfs is fixed low
    r2 = run({"in": {}, "h": {"neuron_updates": light}}, steps=4)
    assert energy(pl, r2, prog, op="dvfs", tick_s=1e-3).energy_j == \
        pytest.approx(energy(pl, r2, prog, op="0.5V", tick_s=1e-3).energy_j)


def test_every_chip_pays_its_off_power():
    prog = two_layer()
    r = run({"in": {}, "h": {"neuron_updates": 8}}, steps=10)
    one = energy(placement(("in", 0, 4), ("h", 0, 8)), r, prog, tick_s=1e-3)
    two = energy(placement(("in", 0, 4), ("h", 0, 8), chips=2), r, prog, tick_s=1e-3)
    assert two.energy_j - one.energy_j == pytest.approx(chip.CHIP_OFF_W * 10e-3)


def test_estimated_counters_follow_fan_out():
    prog = two_layer("dense")
    c = estimate_counters(prog, {"in": 0.5, "h": 0.25}, steps=3)
    assert c["in"]["spikes"].tolist() == [2, 2, 2]
    assert c["h"]["syn_events"].tolist() == [16, 16, 16]  # 2 spikes x 8 targets
    assert c["h"]["packets_in"].tolist() == [2, 2, 2]
    assert c["h"]["neuron_updates"].tolist() == [8, 8, 8] and c["in"]["neuron_updates"].sum() == 0
    conv = estimate_counters(two_layer("conv", "lif_conv2d"), {"in": 1.0}, steps=1)
    assert conv["h"]["syn_events"][0] == 4 * (8 * 9 / 4)  # 4 spikes x frame synapses / inputs
    assert conv["h"]["macs"][0] == 8 * 1 * 9  # the whole frame: 8 outputs x (1 x 3 x 3)
    with pytest.raises(InputError, match="firing rate"):
        estimate_counters(prog, {"in": 2.0}, steps=1)


@pytest.mark.parametrize("bad, match", [
    (dict(op="1.2V"), "operating point"),
    (dict(tick_s=-1.0), "positive"),
    (dict(counters={"in": {}}), "no counters for population 'h'"),
    (dict(counters={"in": {}, "h": {"neuron_updates": np.ones(3)}}), "has 3 steps"),
    (dict(counters={"in": {}, "h": {"joules": np.ones(4)}}), "unknown counter 'joules'"),
    (dict(slot=("h", 4, 12)), "do not fit population 'h'"),
])
def test_bad_input_is_refused_with_the_reason(bad, match):
    prog = two_layer()
    pl = placement(("in", 0, 4), bad.get("slot", ("h", 0, 8)))
    counters = bad.get("counters", {"in": {}, "h": {"neuron_updates": np.ones(4)}})
    with pytest.raises(InputError, match=match):
        energy(pl, Run({}, {}, counters, 4), prog, op=bad.get("op", "0.8V"),
               tick_s=bad.get("tick_s", 1e-3))


def test_no_work_and_no_tick_is_refused():
    prog = two_layer()
    with pytest.raises(InputError, match="no work"):
        energy(placement(("in", 0, 4), ("h", 0, 8)), run({"in": {}, "h": {}}, 3), prog,
               costs=NO_OVERHEAD)
