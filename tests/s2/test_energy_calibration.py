"""The energy model against every published SpiNNaker2 figure (spinnq.s2.published_fit):
every constant from its source inside its sourced range, and every published comparison
recomputed and printed with its basis, its assumption and its error. Where the model does not
reach a published figure at the assumed activity, the test checks what the comparison needs
(fitted openly), not the figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from spinnq import published
from spinnq.s2 import chip
from spinnq.s2 import published_fit as cal
from spinnq.s2.energy import CycleCosts, energy
from spinnq.s2.program import PESlot, Placement, Population, Program, Run
from tests.conftest import benchmark


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    return {r["point"]: r for r in cal.points()}


def test_the_dvs_network_has_the_seed_papers_size_and_pe_count():
    prog = cal.dvs_program()
    pl = cal.place_per_pe(prog, cal.SEED_NEURONS_PER_PE)
    assert pl.pes == published.PUBLISHED_DVS_GESTURE_PES
    weights = 16 * 2 * 25 + 16 * 16 * 9 + 8 * 16 * 9 + 256 * 72 + 11 * 256
    assert weights == 25_504
    dense = sum(int(np.count_nonzero(p.weight)) for p in prog.projections if p.kind == "dense")
    assert dense == 256 * 72 * 4 + 11 * 256  # the 2x2 sum-pool folded into f1's rows


def test_every_constant_lies_inside_its_sourced_range_and_none_on_a_bound():
    m = chip.ChipModel.default()
    for name, c in {**m.cycles, "energy_per_cycle_scale": m.energy_per_cycle_scale}.items():
        assert c.low < c.value < c.high, name
        assert c.source.startswith("["), name
    # the two constants the old fit pushed onto their upper bounds are tens / thousands now
    assert chip.CYCLES_PER_NEURON_UPDATE < 100 and chip.TICK_OVERHEAD_CYCLES <= 2_000
    # the unmodelled static power is a named term, off by default
    assert m.unmodelled_static_w.value == 0 and m.unmodelled_static_w.high > 0


def test_every_constant_of_the_chip_table_names_its_source():
    """Each module-level assignment of s2/chip.py carries [paper], [code], [trace], [quote],
    [derived], [fitted: ...] or [assumed] on its lines or in the comment block above it."""
    import ast
    import re

    path = Path(chip.__file__)
    lines = path.read_text().splitlines()
    label = re.compile(r"\[(paper|code|trace|quote|derived|assumed|fitted: [^\]]+)")
    unlabelled = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        first = node.lineno - 1
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        if not any(label.search(x) for x in lines[first:node.end_lineno]):
            unlabelled.append(lines[node.lineno - 1])
    assert unlabelled == []


def test_the_synapse_loop_meets_the_published_event_rates():
    per_event = CycleCosts().per_syn_event()  # 12 M events/s per core: 25 cycles all in
    assert per_event == pytest.approx(chip.CYCLES_PER_SYN_EVENT_ALL_IN, rel=0.05)
    chip_rate = chip.USABLE_PES_PER_CHIP * chip.CLOCK_HZ[0.8] / per_event
    assert chip_rate == pytest.approx(chip.SYN_EVENTS_PER_S_PER_CHIP, rel=0.05)


def test_every_published_comparison_is_recomputed_with_its_basis_assumption_and_error(rows):
    for r in rows.values():
        print(f"\n{r['point']}: published {r['published_j']:.4g} ({r['basis']}) vs modelled "
              f"{r['model_j']:.4g} [{r['model_low_j']:.4g}, {r['model_high_j']:.4g}], error "
              f"{r['error']:+.0%}\n  assumption: {r['assumption']}")
        assert r["basis"] in cal.BASES and r["assumption"] and math.isfinite(r["error"])
        assert r["model_low_j"] <= r["model_j"] <= r["model_high_j"]
    seed = rows["seed DVS gesture"]
    assert seed["realtime"] and seed["steps"] == 605 and seed["pes"] == 147
    assert abs(seed["error"]) <= 0.25 and seed["base_j"] + seed["dynamic_j"] == \
        pytest.approx(seed["model_j"])


def test_the_seed_runs_dynamic_part_needs_more_activity_fitted_openly(rows):
    """Published: 0.459 J minus its asleep floor = 0.117-0.127 J dynamic. At the assumed
    activity the model spends less; the row says at what activity it would match (and that
    the run stays real time there) or how much unmodelled power would close the gap."""
    r = rows["seed DVS gesture, dynamic part"]
    assert 0.117 <= r["published_j"] <= 0.127 and r["error"] < 0
    k = r["fitted"]["activity_factor"]
    assert 1 < k < 40 and r["fitted"]["realtime_at_factor"]
    assert cal.seed_dvs_cost(scale=k).dynamic_j == pytest.approx(r["published_j"], rel=0.01)
    assert 0 < r["fitted"]["unmodelled_w_at_assumed_activity"] < chip.UNMODELLED_STATIC_W.high


def test_dvfs_trio_keeps_dvfs_below_high_and_says_what_fixed_low_needs(rows):
    dv, hi = rows["DVFS trio: automatic DVFS"], rows["DVFS trio: fixed high, 0.8 V"]
    low = rows["DVFS trio: fixed low, 0.5 V"]
    assert dv["realtime"] and hi["realtime"] and dv["model_j"] < hi["model_j"]
    assert dv["fitted"]["dvfs_threshold_packets"] > 0
    assert cal.order_matches(list(rows.values()))["dvfs < high"]
    assert hi["error"] == pytest.approx(0, abs=0.01)  # the run length is fitted to it
    # in real time at 1 ms the low level cannot carry this work: reported, never stretched;
    # the published 2.010 J needs the run to last several times as long
    assert not low["realtime"] and low["run_s"] == pytest.approx(hi["run_s"])
    assert low["fitted"]["tick_needed_s"] > 1e-3 and low["fitted"]["stretch_needed"] > 1


def test_cartpole_6_mJ_cannot_be_dynamic_but_fits_the_whole_chip_at_0_5_V(rows):
    """Seed A's 6 mJ: as dynamic energy of the CartPole network it is out of reach (every PE
    busy all the time spends far less); as the whole chip's total at 0.5 V it needs a run of
    the order of the quoted 18 ms, at a power near the quoted 0.333 W."""
    dyn = rows["seed A CartPole, read as dynamic"]
    assert dyn["fitted"]["max_dynamic_j"] < published.PUBLISHED_CARTPOLE_CHIP_J / 10
    whole = rows["seed A CartPole, read as whole chip total at 0.5 V"]
    assert whole["basis"] == cal.ASLEEP
    assert abs(whole["power_error"]) < 0.35
    assert 9e-3 < whole["fitted"]["run_s_needed"] < 36e-3


def test_published_rows_say_their_basis_and_scope():
    for task, rs in published.PUBLISHED.items():
        for r in rs:
            assert r["energy_basis"] in ("dynamic", "total", "unknown"), (task, r["device"])
            assert r.get("energy_scope"), (task, r["device"])
    cp = {r["device"]: r for r in published.PUBLISHED["cartpole"]}
    assert cp["SpiNNaker2 chip"]["energy_basis"] == "unknown"
    assert cp["GTX 1650 GPU"]["energy_scope"] == "GPU board"


def test_idle_chip_power_matches_the_published_asleep_figures():
    pops = {"p": Population("p", "lif_no_delay", (chip.PES_PER_CHIP,))}
    prog = Program(pops, [], input="p", outputs=[], depth=0)
    pl = Placement([PESlot(0, i, "p", i, i + 1) for i in range(chip.PES_PER_CHIP)], chips=1,
                   pes_per_chip=chip.PES_PER_CHIP, memory_budget=chip.PE_DATA_BYTES)
    idle = CycleCosts(tick_overhead=0.0)
    zero = Run({}, {}, {"p": {}}, steps=100)
    for op, volts in (("0.5V", 0.5), ("0.5V/75MHz", 0.5), ("0.8V", 0.8)):
        cost = energy(pl, zero, prog, op=op, tick_s=1e-3, costs=idle)
        assert cost.power_w == pytest.approx(chip.CHIP_ASLEEP_W[volts], rel=1e-9)
        assert cost.dynamic_j == 0


def test_every_pe_busy_all_the_time_draws_the_published_coremark_power():
    pops = {"p": Population("p", "lif_no_delay", (chip.PES_PER_CHIP,))}
    prog = Program(pops, [], input="p", outputs=[], depth=0)
    pl = Placement([PESlot(0, i, "p", i, i + 1) for i in range(chip.PES_PER_CHIP)], chips=1,
                   pes_per_chip=chip.PES_PER_CHIP, memory_budget=chip.PE_DATA_BYTES)
    for op, volts in (("0.5V", 0.5), ("0.8V", 0.8)):
        full = CycleCosts(tick_overhead=chip.OPERATING_POINTS[op].clock_hz * 1e-3)
        cost = energy(pl, Run({}, {}, {"p": {}}, steps=10), prog, op=op, tick_s=1e-3,
                      costs=full)
        assert cost.realtime and cost.power_w == pytest.approx(chip.CHIP_COREMARK_W[volts])


def test_committed_calibration_json_and_readme_section_are_current(rows):
    """benchmarks/results/energy_calibration.json holds today's model numbers and the README's
    energy section is rendered from it (regenerate: benchmarks/energy_calibration.py
    --readme README.md)."""
    root = Path(__file__).resolve().parents[2]
    readme_section = benchmark("energy_calibration").readme_section
    saved = json.loads((root / "benchmarks" / "results" / "energy_calibration.json").read_text())
    assert {r["point"] for r in saved["points"]} == set(rows)
    for r in saved["points"]:
        assert r["model_j"] == pytest.approx(rows[r["point"]]["model_j"], rel=1e-9), r["point"]
    assert readme_section(saved) in (root / "README.md").read_text()
