"""Unit behaviour of the SpiNNaker2 energy model: the PE program's cycles, routes, tick,
DVFS levels, energy sums."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.energy import (
    OP_CHOICES,
    CycleCosts,
    energy,
    estimate_counters,
    lookup_steps,
    pe_routes,
    shortest_ticks,
)
from spinnq.s2.program import PESlot, Placement, Population, Program, Projection, Run

LOW, HIGH = chip.OPERATING_POINTS["0.5V"], chip.OPERATING_POINTS["0.8V"]
NO_OVERHEAD = CycleCosts(tick_overhead=0.0)
# only the neuron update costs: 1 cycle-unit per neuron, nothing else
UPDATE_ONLY = CycleCosts(tick_overhead=0.0, packet_rx=0.0, lookup_step=0.0, syn_word=0.0,
                         delay_buffer=0.0, neuron_update=30.0, recorded_neuron=0.0,
                         packet_sent=0.0)


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
    k = NO_OVERHEAD
    c = energy(pl, r, prog, op="0.8V", tick_s=1e-3, costs=k)
    # 2 spikes a tick, each one packet to the one target QPE; received the next tick (9 of
    # 10), one table entry (1 search step); 8 neuron updates; the read-out h is recorded
    cycles = (10 * 2 * k.packet_sent + 9 * 2 * (k.packet_rx + k.lookup_step)
              + 10 * 8 * k.per_neuron() + 10 * 8 * k.recorded_neuron)
    expected = (chip.CHIP_OFF_W + 2 * HIGH.pe_sleep_w) * 10e-3 + cycles * HIGH.energy_per_cycle_j
    assert c.energy_j == pytest.approx(expected, rel=1e-12)
    assert c.busy_cycles == pytest.approx(cycles)
    assert c.power_w == pytest.approx(expected / 10e-3)
    assert c.base_j + c.dynamic_j == pytest.approx(c.energy_j)
    assert sum(p["energy_j"] for p in c.per_population.values()) + \
        c.chip_base_j == pytest.approx(c.energy_j)
    assert c.chip_base_j == pytest.approx(chip.CHIP_OFF_W * 10e-3)
    assert sum(c.cycles_by_work.values()) == pytest.approx(c.busy_cycles)
    assert c.memory_max_bytes == 200 and c.kind == "modelled"


def test_pes_get_their_neuron_share_of_the_population_counters():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 6), ("h", 6, 8))
    r = run({"in": {}, "h": {"neuron_updates": 8, "syn_events": 40}}, steps=5)
    c = energy(pl, r, prog, tick_s=1e-3, costs=replace(NO_OVERHEAD, recorded_neuron=0.0))
    a, b = c.per_pe[1]["busy_cycles"], c.per_pe[2]["busy_cycles"]
    assert a == pytest.approx(3 * b) and a > 0
    assert c.per_population["h"]["pes"] == 2 and c.per_population["h"]["neurons"] == 8


def test_every_spike_of_a_source_pe_reaches_every_pe_it_routes_to_and_costs_one_packet_per_qpe():
    prog = two_layer("dense")
    # h on PEs 4 and 8: two QPEs; the source PE 0 sends each spike twice
    pl = Placement([PESlot(0, 0, "in", 0, 4), PESlot(0, 4, "h", 0, 4), PESlot(0, 8, "h", 4, 8)],
                   1, 148, chip.PE_DATA_BYTES)
    routes = pe_routes(prog, pl)
    assert routes.dense()[0].tolist() == [False, True, True]
    assert routes.qpes.tolist() == [2, 0, 0] and routes.table_entries.tolist() == [0, 1, 1]
    r = run({"in": {"spikes": [3, 0]}, "h": {}}, steps=2)
    k = NO_OVERHEAD
    c = energy(pl, r, prog, tick_s=1e-3, costs=replace(k, recorded_neuron=0.0))
    assert c.per_pe[0]["busy_cycles"] == pytest.approx(3 * 2 * k.packet_sent)
    per_packet = k.packet_rx + k.lookup_step * lookup_steps(1)
    assert c.per_pe[1]["busy_cycles"] == pytest.approx(3 * per_packet)  # at the next tick
    assert c.per_pe[2]["busy_cycles"] == pytest.approx(3 * per_packet)
    assert lookup_steps(16) == 5 and lookup_steps(1) == 1


def test_a_conv_pe_receives_only_the_spikes_of_the_source_pes_whose_synapses_reach_it():
    from spinnq.s2.published_fit import SEED_NEURONS_PER_PE, dvs_program, place_per_pe
    prog = dvs_program()
    pl = place_per_pe(prog, SEED_NEURONS_PER_PE)
    routes = pe_routes(prog, pl)
    c1 = [i for i, s in enumerate(pl.slots) if s.population == "c1"]
    inputs = [i for i, s in enumerate(pl.slots) if s.population == "input"]
    fan_in = routes.dense()[np.ix_(inputs, c1)].sum(axis=0)
    assert 0 < fan_in.min() and fan_in.max() < len(inputs)  # local receptive fields
    f1 = [i for i, s in enumerate(pl.slots) if s.population == "f1"]
    # dense: every c3 PE but the last, whose 8 neurons (row and column 6) the 2x2 pool drops
    assert routes.table_entries[f1].tolist() == [6] * len(f1)
    assert abs(routes.syn_share[c1].sum() - 1) < 1e-9


def test_conv_synaptic_work_is_charged_on_the_accelerator_not_twice():
    prog = two_layer("conv", "lif_conv2d")
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {}, "h": {"syn_events": 1000, "macs": 1000}}, steps=1)
    c = energy(pl, r, prog, tick_s=1e-3, costs=replace(NO_OVERHEAD, recorded_neuron=0.0))
    assert c.per_pe[1]["busy_cycles"] == pytest.approx(1000 / chip.MACS_PER_CYCLE)
    assert c.dynamic_j == pytest.approx(1000 * chip.ENERGY_PER_MAC_J[0.8])


def test_shortest_tick_is_the_busiest_pe_at_its_clock_and_latency_adds_the_depth():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    upd = np.array([8, 8, 80, 8, 8, 8.0])
    r = run({"in": {}, "h": {"neuron_updates": upd}}, steps=6)
    c = energy(pl, r, prog, op="0.8V", costs=UPDATE_ONLY)
    assert c.tick_s == pytest.approx(80 * 30 / HIGH.clock_hz)
    assert c.peak_load == pytest.approx(1.0)
    assert c.latency_s == pytest.approx(6 * c.tick_s)  # (6 - depth) input steps + depth
    assert energy(pl, r, prog, op="0.8V", costs=UPDATE_ONLY, input_steps=6).latency_s == \
        pytest.approx(7 * c.tick_s)
    low = energy(pl, r, prog, op="0.5V", costs=UPDATE_ONLY)
    assert low.tick_s == pytest.approx(2 * c.tick_s)
    ticks = shortest_ticks(pl, r, prog, costs=UPDATE_ONLY)
    assert ticks == pytest.approx({"0.5V/75MHz": 4 * c.tick_s, "0.5V": 2 * c.tick_s,
                                   "0.8V/150MHz": 2 * c.tick_s, "0.8V": c.tick_s})


def test_a_tick_too_short_for_the_load_is_reported_not_real_time_and_never_stretched():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {}, "h": {"neuron_updates": [8, 20_000, 8]}}, steps=3)  # 600k cycles
    c = energy(pl, r, prog, op="0.8V", tick_s=1e-3, costs=UPDATE_ONLY)
    assert not c.realtime and c.overrun_steps == 1
    assert c.tick_s == 1e-3 and c.run_s == pytest.approx(3e-3)  # the run keeps its ticks
    assert c.tick_needed_s == pytest.approx(20_000 * 30 / HIGH.clock_hz)  # 2 ms, reported
    assert c.peak_load == pytest.approx(2.0)
    ok = energy(pl, r, prog, op="0.8V", tick_s=5e-3, costs=UPDATE_ONLY)
    assert ok.realtime and ok.tick_s == 5e-3


def test_dvfs_is_the_chip_softwares_two_level_packet_threshold_policy():
    """py-spinnaker2's DVFS demo: per PE and tick the high level (2x the low clock) from a
    number of received packets on, the low level below it; the threshold is a setting."""
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {"spikes": [0, 5, 1, 0]}, "h": {"neuron_updates": 8}}, steps=4)
    model = chip.ChipModel.default()
    model.dvfs_threshold_packets = {"default": 3}
    d = energy(pl, r, prog, op="dvfs", tick_s=1e-3, model=model)
    # h receives [0, 0, 5, 1] packets: high only at step 2; the source PE never receives
    assert d.per_pe[1]["low_fraction"] == pytest.approx(0.75) and d.per_pe[0]["low_fraction"] == 1
    assert d.levels["0.8V"] == pytest.approx(1 / 8) and d.levels["0.5V"] == pytest.approx(7 / 8)
    assert d.dvfs_thresholds == {"in": 3, "h": 3} and d.realtime
    low = energy(pl, r, prog, op="0.5V", tick_s=1e-3, model=model)
    high = energy(pl, r, prog, op="0.8V", tick_s=1e-3, model=model)
    assert low.energy_j < d.energy_j < high.energy_j
    # the per-PE-tick optimum is only a lower bound, never above the policy's energy
    assert d.dvfs_lower_bound_j <= d.energy_j
    model.dvfs_threshold_packets = {"default": 0}  # always high
    assert energy(pl, r, prog, op="dvfs", tick_s=1e-3, model=model).energy_j == \
        pytest.approx(high.energy_j)


def test_a_pe_the_policy_leaves_low_that_cannot_finish_makes_the_run_not_real_time():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    heavy = 1.5 * LOW.clock_hz * 1e-3 / 30  # 1.5x the capacity of 0.5 V at 150 MHz
    r = run({"in": {}, "h": {"neuron_updates": [8.0, heavy, 8.0]}}, steps=3)
    d = energy(pl, r, prog, op="dvfs", tick_s=1e-3, costs=UPDATE_ONLY)  # no packets: low
    assert not d.realtime and d.overrun_steps == 1 and d.run_s == pytest.approx(3e-3)
    # without a tick, dvfs takes the low level's shortest: every PE meets it
    auto = energy(pl, r, prog, op="dvfs", costs=UPDATE_ONLY)
    assert auto.realtime and auto.tick_s == pytest.approx(heavy * 30 / LOW.clock_hz)


def test_every_figure_has_a_range_from_the_constants_sourced_ranges():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {"spikes": 2}, "h": {"neuron_updates": 8, "syn_events": 16}}, steps=10)
    for op in OP_CHOICES:
        for tick in (1e-3, None):
            c = energy(pl, r, prog, op=op, tick_s=tick)
            assert c.energy_low_j < c.energy_j < c.energy_high_j, (op, tick)
            assert c.dynamic_low_j < c.dynamic_j < c.dynamic_high_j
    m = chip.ChipModel.default()
    lo = energy(pl, r, prog, tick_s=1e-3, costs=CycleCosts.of(m, "low"))
    c = energy(pl, r, prog, tick_s=1e-3)
    assert c.dynamic_low_j == pytest.approx(lo.dynamic_j * m.energy_per_cycle_scale.low, rel=0.01)
    # explicit costs: no range claimed
    k = energy(pl, r, prog, tick_s=1e-3, costs=NO_OVERHEAD)
    assert k.energy_low_j == k.energy_j == k.energy_high_j


def test_unmodelled_static_power_is_a_named_term_off_by_default():
    prog = two_layer()
    pl = placement(("in", 0, 4), ("h", 0, 8))
    r = run({"in": {}, "h": {"neuron_updates": 8}}, steps=10)
    off = energy(pl, r, prog, tick_s=1e-3)
    assert off.unmodelled_j == 0 and off.base_j + off.dynamic_j == pytest.approx(off.energy_j)
    m = chip.ChipModel.default().with_values({"unmodelled_static_w": 0.1})
    on = energy(pl, r, prog, tick_s=1e-3, model=m)
    assert on.unmodelled_j == pytest.approx(0.1 * 10e-3)
    assert on.energy_j == pytest.approx(off.energy_j + on.unmodelled_j)


def test_four_named_levels_two_voltages_and_the_old_names_are_accepted():
    assert OP_CHOICES == ("0.5V/75MHz", "0.5V", "0.8V/150MHz", "0.8V", "dvfs")
    pts = chip.OPERATING_POINTS
    assert pts["0.5V/75MHz"].clock_hz == 75e6 and pts["0.8V/150MHz"].clock_hz == 150e6
    assert pts["0.5V/75MHz"].pe_sleep_w == pts["0.5V"].pe_sleep_w
    assert HIGH.energy_per_cycle_j == pytest.approx((1.2479 - 0.5647) / 152 / 300e6)


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
    # 2 spikes x 8 targets, from step 1 on (spikes arrive the step after they are sent)
    assert c["h"]["syn_events"].tolist() == [0, 16, 16]
    assert c["h"]["packets_in"].tolist() == [0, 2, 2]
    assert c["h"]["neuron_updates"].tolist() == [8, 8, 8] and c["in"]["neuron_updates"].sum() == 0
    conv = estimate_counters(two_layer("conv", "lif_conv2d"), {"in": 1.0}, steps=2)
    assert conv["h"]["syn_events"][1] == 4 * (8 * 9 / 4)  # 4 spikes x frame synapses / inputs
    assert conv["h"]["macs"][1] == 8 * 1 * 9  # the whole frame: 8 outputs x (1 x 3 x 3)
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
               costs=UPDATE_ONLY)


def test_sweep_says_which_front_points_keep_their_order_across_the_range():
    from spinnq.sweep.results import order_kept
    front = [{"key": "a", "energy_low_j": 1.0, "energy_j": 2.0, "energy_high_j": 3.0},
             {"key": "b", "energy_low_j": 1.5, "energy_j": 2.5, "energy_high_j": 2.8},
             {"key": "c", "energy_low_j": 4.0, "energy_j": 5.0, "energy_high_j": 6.0}]
    assert order_kept(front) == {"a": False, "b": False, "c": True}  # a, b swap at high
    assert order_kept([{"key": "x", "energy_j": 1.0}]) == {"x": None}
