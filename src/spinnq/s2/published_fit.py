"""The energy model against every published SpiNNaker2 figure, each on the workload that
produced it, on the figure's basis, with the assumption the comparison needs.

    points() -> list[dict]   one entry per comparison: published figure and its basis
                             (dynamic; used PEs, total; whole chip, total), the model on that
                             basis with its range (every constant at the low / high end of its
                             sourced range), the error, and the assumption: the activity
                             assumed, or the unknown the comparison needs fitted openly (the
                             activity a published run must have had, a run length)

The model's constants are never fitted here: they come from their sources (`s2/chip.py`).
Where a published figure lies beyond the model at the assumed activity, the row says what the
run must have been like to match (more activity, a longer run, power the model leaves out).
Used by tests/s2/test_energy_calibration.py and benchmarks/energy_calibration.py. Every
model number is "modelled", every reference "published".
"""

from __future__ import annotations

import math

import numpy as np

from spinnq import published
from spinnq.config import REALTIME_TICK_S
from spinnq.s2 import chip
from spinnq.s2.chip import ChipModel
from spinnq.s2.energy import Cost, dynamic_share_bounds, energy, estimate_counters
from spinnq.s2.program import PESlot, Placement, Population, Program, Projection, Run

# Seed DVS network, activity per 1 ms tick [assumed]: input 3 % of the 2x32x32 pixels (DVS128
# events binned 4x4 and 1 ms), conv layers 5 %, the dense layer 10 %, the read-out 5 %.
SEED_RATES = {"input": 0.03, "c1": 0.05, "c2": 0.05, "c3": 0.05, "f1": 0.10, "f2": 0.05}
# 147 PEs as in the seed paper: 16 + 57 + 57 + 7 + 9 + 1 [paper: the count; the split assumed]
SEED_NEURONS_PER_PE = {"input": 128, "c1": 64, "c2": 64, "c3": 64, "f1": 29, "f2": 11}
# The DVFS trio's network (2026 chip paper) is not published: the same DVS-gesture network
# packed densely (256 neurons per PE, 42 PEs) and busier than the seed run (activity x 2,
# +-10 % over 100 ticks: a gesture in motion) [assumed]; its run length is fitted openly so
# that fixed high costs the published 1.023 J, so the other points test the model's ratios.
DVFS_NEURONS_PER_PE = 256
DVFS_ACTIVITY = 2.0
DVFS_SWING = 0.1
# Seed A's spiking Q-network on CartPole, taken as spinnq's own [assumed]: 4 observations x 16
# Gaussian receptive fields, 2 x 128 LIF, a non-spiking read-out of 2 actions, 10 input steps
# + 3 of depth per decision; rates per tick [assumed]: input 15 % (about 2.5 of 16 fields per
# observation active), hidden 15 % (the network's data-driven initial rate).
CARTPOLE_RATES = {"input": 0.15, "h1": 0.15, "h2": 0.15}
CARTPOLE_STEPS = 10


def _conv(stride: int, pad: int, pool: int, in_shape, out_shape) -> dict:
    return {"stride": (stride, stride), "padding": (pad, pad), "dilation": (1, 1),
            "groups": 1, "pool": pool, "in_shape": in_shape, "out_shape": out_shape}


def dvs_program() -> Program:
    """The seed paper's DVS-gesture network as the compiler builds it (2x32x32 -> conv 5x5/2
    16 -> conv 3x3 16 -> pool 2 + conv 3x3 8 -> pool 2 + linear 256 -> linear 11, 25,504
    weights; all weights 1: the energy model needs the synapses, not their values)."""
    pops = {
        "input": Population("input", "spike_list", (2, 32, 32)),
        "c1": Population("c1", "lif_conv2d", (16, 15, 15)),
        "c2": Population("c2", "lif_conv2d", (16, 15, 15)),
        "c3": Population("c3", "lif_conv2d", (8, 7, 7)),
        "f1": Population("f1", "lif_no_delay", (256,)),
        "f2": Population("f2", "lif_no_delay", (11,)),
    }
    one = np.ones
    c3_pool = np.zeros((256, 392), np.int8)  # SumPool 2 + Flatten + Linear(72 -> 256)
    for c in range(8):
        for y in range(6):
            for x in range(6):
                c3_pool[:, c * 49 + y * 7 + x] = 1
    projs = [
        Projection("input", "c1", "conv", one((16, 2, 5, 5), np.int8), 1.0,
                   conv=_conv(2, 1, 0, (2, 32, 32), (16, 15, 15))),
        Projection("c1", "c2", "conv", one((16, 16, 3, 3), np.int8), 1.0,
                   conv=_conv(1, 1, 0, (16, 15, 15), (16, 15, 15))),
        Projection("c2", "c3", "conv", one((8, 16, 3, 3), np.int8), 1.0,
                   conv=_conv(1, 1, 2, (16, 15, 15), (8, 7, 7))),
        Projection("c3", "f1", "dense", c3_pool, 1.0),
        Projection("f1", "f2", "dense", one((11, 256), np.int8), 1.0),
    ]
    return Program(pops, projs, input="input", outputs=["f2"], depth=len(projs))


def cartpole_program() -> Program:
    pops = {"input": Population("input", "spike_list", (64,)),
            "h1": Population("h1", "lif_no_delay", (128,)),
            "h2": Population("h2", "lif_no_delay", (128,)),
            "out": Population("out", "lif_no_delay", (2,), record_only=True)}
    one = np.ones
    projs = [Projection("input", "h1", "dense", one((128, 64), np.int8), 1.0),
             Projection("h1", "h2", "dense", one((128, 128), np.int8), 1.0),
             Projection("h2", "out", "dense", one((2, 128), np.int8), 1.0)]
    return Program(pops, projs, input="input", outputs=["out"], depth=len(projs))


def place_per_pe(program: Program, per_pe: dict[str, int] | int) -> Placement:
    """Cut every population into PEs of `per_pe` neurons, chip after chip."""
    slots, k = [], 0
    for name, pop in program.populations.items():
        n = per_pe if isinstance(per_pe, int) else per_pe[name]
        for start in range(0, pop.size, n):
            slots.append(PESlot(k // chip.USABLE_PES_PER_CHIP, k % chip.USABLE_PES_PER_CHIP,
                                name, start, min(start + n, pop.size)))
            k += 1
    return Placement(slots, chips=math.ceil(k / chip.USABLE_PES_PER_CHIP),
                     pes_per_chip=chip.USABLE_PES_PER_CHIP, memory_budget=chip.PE_DATA_BYTES)


def rate_run(program: Program, rates: dict, steps: int) -> Run:
    return Run({}, {}, estimate_counters(program, rates, steps), steps)


def seed_dvs_cost(op: str = "0.8V", rates: dict[str, float] | None = None,
                  scale: float = 1.0) -> Cost:
    """The seed DVS run: 147 PEs, 600 input ticks + depth of 1 ms; rates x `scale`."""
    prog = dvs_program()
    steps = published.PUBLISHED_DVS_GESTURE_STEPS + prog.depth
    r = {k: min(1.0, v * scale) for k, v in (rates or SEED_RATES).items()}
    return energy(place_per_pe(prog, SEED_NEURONS_PER_PE), rate_run(prog, r, steps), prog,
                  op=op, tick_s=REALTIME_TICK_S)


def _dvfs_rates(n: int) -> dict[str, np.ndarray]:
    wave = DVFS_ACTIVITY * (1 + DVFS_SWING * np.sin(np.arange(n) * 2 * np.pi / 100))
    return {k: np.minimum(1.0, wave * r) for k, r in SEED_RATES.items()}


def realtime_threshold(pl: Placement, run: Run, prog: Program, tick_s: float) -> float:
    """The highest packet threshold (one for every neuron model) at which the dvfs policy
    keeps the run real time: the published DVFS runs were real time, so their thresholds
    must have been at most this (bisection; a lower threshold only raises more PE-ticks)."""
    def ok(t: float) -> bool:
        m = ChipModel.default()
        m.dvfs_threshold_packets = {"default": t}
        return energy(pl, run, prog, op="dvfs", tick_s=tick_s, model=m).realtime
    lo, hi = 0.0, 1.0
    while ok(hi) and hi < 1e6:
        lo, hi = hi, hi * 2
    if not ok(lo):
        return 0.0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def dvfs_costs(steps: int | None = None) -> tuple[dict[str, Cost], int, float]:
    """The DVFS trio's assumed workload with the chip software's dvfs policy, fixed high
    (0.8 V) and fixed low (0.5 V, 150 MHz), 1 ms tick; `steps` None: fitted so that fixed
    high costs the published 1.023 J. The dvfs threshold: the highest that keeps the run real
    time (`realtime_threshold`), returned third."""
    prog = dvs_program()
    pl = place_per_pe(prog, DVFS_NEURONS_PER_PE)
    if steps is None:
        probe = energy(pl, rate_run(prog, _dvfs_rates(1000), 1000), prog, op="0.8V",
                       tick_s=REALTIME_TICK_S)
        steps = round(1000 * published.PUBLISHED_DVFS_RUN_J["0.8V"] / probe.energy_j)
    run = rate_run(prog, _dvfs_rates(steps), steps)
    thr = realtime_threshold(pl, run, prog, REALTIME_TICK_S)
    model = ChipModel.default()
    model.dvfs_threshold_packets = {"default": thr}
    return {op: energy(pl, run, prog, op=op, tick_s=REALTIME_TICK_S, model=model)
            for op in ("dvfs", "0.8V", "0.5V")}, steps, thr


def cartpole_cost(op: str = "0.8V", steps: int = CARTPOLE_STEPS) -> Cost:
    prog = cartpole_program()
    return energy(place_per_pe(prog, 250), rate_run(prog, CARTPOLE_RATES, steps + prog.depth),
                  prog, op=op, tick_s=REALTIME_TICK_S)


def max_dynamic_j(cost: Cost) -> float:
    """The most dynamic energy the run's PEs could spend in its ticks: every PE busy for the
    whole run at 0.8 V (chip CoreMark power minus asleep, per PE)."""
    per_pe = (chip.CHIP_COREMARK_W[0.8] - chip.CHIP_ASLEEP_W[0.8]) / chip.PES_PER_CHIP
    return cost.pes * per_pe * cost.run_s


def activity_to_match(target_dynamic_j: float, hi: float = 40.0) -> tuple[float, Cost]:
    """The factor on the seed run's assumed rates (each capped at 1 spike per step) at which
    its modelled dynamic energy reaches `target_dynamic_j` (bisection; `hi` if never)."""
    lo_k, hi_k = 1.0, hi
    if seed_dvs_cost(scale=hi_k).dynamic_j < target_dynamic_j:
        return hi_k, seed_dvs_cost(scale=hi_k)
    for _ in range(30):
        mid = (lo_k + hi_k) / 2
        if seed_dvs_cost(scale=mid).dynamic_j < target_dynamic_j:
            lo_k = mid
        else:
            hi_k = mid
    return hi_k, seed_dvs_cost(scale=hi_k)


# A chip's measured total covers the whole chip; what its unused PEs did (off or asleep) is
# not published: both readings are bases here.
OFF, ASLEEP = "total, unused PEs off", "total, unused PEs asleep"
BASES = {"dynamic": ("dynamic_j", "dynamic_low_j", "dynamic_high_j"),
         OFF: ("energy_j", "energy_low_j", "energy_high_j"),
         ASLEEP: ("whole_chip_j", "energy_low_j", "energy_high_j")}


def _model(cost: Cost, basis: str) -> tuple[float, float, float]:
    """(value, low, high) of a cost on a basis; the whole chip adds its unused PEs asleep."""
    v, lo, hi = (getattr(cost, k) for k in BASES[basis])
    extra = cost.whole_chip_j - cost.energy_j if basis == ASLEEP else 0.0
    return v, lo + extra, hi + extra


def _row(name: str, published_j: float, basis: str, cost: Cost, workload: str,
         assumption: str, fitted: dict | None = None) -> dict:
    v, lo, hi = _model(cost, basis)
    return {"point": name, "published_j": published_j, "basis": basis, "model_j": v,
            "model_low_j": lo, "model_high_j": hi, "error": v / published_j - 1,
            "published_in_range": lo <= published_j <= hi, "assumption": assumption,
            "fitted": fitted or {}, "workload": workload, "energy_j": cost.energy_j,
            "base_j": cost.base_j, "dynamic_j": cost.dynamic_j,
            "operating_point": cost.operating_point, "pes": cost.pes, "steps": cost.steps,
            "run_s": cost.run_s, "realtime": cost.realtime, "peak_load": cost.peak_load,
            "kind": {"model": "modelled", "published": "published"}}


def _seed_rows() -> list[dict]:
    rates = ", ".join(f"{k} {v:.0%}" for k, v in SEED_RATES.items())
    seed = seed_dvs_cost()
    work = "seed DVS-gesture network, 147 PEs, 600 + 5 ticks of 1 ms, 0.8 V"
    lo, hi = dynamic_share_bounds(published.PUBLISHED_DVS_GESTURE_J,
                                  published.PUBLISHED_DVS_GESTURE_PES,
                                  published.PUBLISHED_DVS_GESTURE_STEPS + 5)
    dyn = (lo + hi) / 2
    k, matched = activity_to_match(dyn)
    gap_w = (dyn - seed.dynamic_j) / seed.run_s
    return [
        _row("seed DVS gesture", published.PUBLISHED_DVS_GESTURE_J, OFF, seed,
             work, f"activity per tick {rates} [assumed]"),
        _row("seed DVS gesture, dynamic part", dyn, "dynamic", seed, work,
             f"published total minus its asleep floor ({lo * 1e3:.0f}-{hi * 1e3:.0f} mJ); at "
             f"the assumed activity the model falls short: it matches at {k:.2g}x that "
             f"activity ({'real time' if matched.realtime else 'NOT real time'} at 0.8 V), or "
             f"with {gap_w:.3g} W of power the model leaves out (router/NoC, always-on, IO)",
             {"activity_factor": k, "realtime_at_factor": matched.realtime,
              "unmodelled_w_at_assumed_activity": gap_w})]


def _dvfs_rows() -> list[dict]:
    trio, steps, thr = dvfs_costs()
    pub = published.PUBLISHED_DVFS_RUN_J
    work = (f"seed DVS-gesture network at {DVFS_NEURONS_PER_PE} neurons per PE "
            f"({trio['0.8V'].pes} PEs), {steps} ticks of 1 ms")
    act = (f"seed rates x {DVFS_ACTIVITY:g} [assumed]; run length fitted: fixed high = "
           f"{pub['0.8V']:g} J ({steps} ticks)")
    low = trio["0.5V"]
    # a low run costs more than a high one only by lasting longer: the stretch it needs
    stretch = (pub["0.5V"] - low.dynamic_j) / low.base_j
    rt = "real time" if low.realtime else "NOT real time"
    rows = [_row("DVFS trio: automatic DVFS", pub["dvfs"], OFF, trio["dvfs"],
                 work, act + f"; dvfs = the chip software's packet-threshold policy, threshold "
                 f"fitted: the highest that keeps the run real time, {thr:g} packets per tick",
                 {"dvfs_threshold_packets": thr}),
            _row("DVFS trio: fixed high, 0.8 V", pub["0.8V"], OFF, trio["0.8V"], work, act),
            _row("DVFS trio: fixed low, 0.5 V", pub["0.5V"], OFF, low, work,
                 act + f"; the model's low run is {rt} (its busiest PE-tick needs "
                 f"{low.tick_needed_s * 1e3:.3g} ms): the published figure needs the run to "
                 f"last {stretch:.2g}x as long", {"stretch_needed": stretch,
                                                  "tick_needed_s": low.tick_needed_s})]
    for name, num, den in (("DVFS trio: low / high", "0.5V", "0.8V"),
                           ("DVFS trio: high / dvfs", "0.8V", "dvfs")):
        r = _row(name, pub[num] / pub[den], OFF, trio[num], work, act)
        r["model_j"] = trio[num].energy_j / trio[den].energy_j
        r["model_low_j"] = r["model_high_j"] = r["model_j"]
        r["error"], r["unit"] = r["model_j"] / r["published_j"] - 1, "ratio"
        rows.append(r)
    return rows


def _cartpole_rows() -> list[dict]:
    """Seed A's 6 mJ per inference, basis not published: read as dynamic energy, and as the
    whole chip's total at 0.5 V (0.333 W quoted: 6 mJ / 0.333 W = 18 ms)."""
    pub = published.PUBLISHED_CARTPOLE_CHIP_J
    act = ", ".join(f"{k} {v:.0%}" for k, v in CARTPOLE_RATES.items()) + " per tick [assumed]"
    cp = cartpole_cost()
    cap = max_dynamic_j(cp)
    work = f"spinnq's CartPole network, {cp.pes} PEs, {cp.steps} ticks of 1 ms"
    dyn = _row("seed A CartPole, read as dynamic", pub, "dynamic", cp, work + ", 0.8 V",
               f"{act}; even every PE busy for the whole decision spends {cap * 1e3:.2g} mJ: "
               "this reading needs a larger or longer deployment than this network",
               {"max_dynamic_j": cap})
    low = cartpole_cost("0.5V")
    power = low.whole_chip_j / low.run_s
    t_needed = pub / power
    whole = _row("seed A CartPole, read as whole chip total at 0.5 V", pub,
                 ASLEEP, low, work + ", 0.5 V",
                 f"{act}; the model's whole-chip power {power:.3g} W (quoted: "
                 f"{published.PUBLISHED_CARTPOLE_POWER_W:g} W) needs a run of "
                 f"{t_needed * 1e3:.3g} ms per inference (quoted figures: 18 ms)",
                 {"power_w": power, "run_s_needed": t_needed})
    whole["power_error"] = power / published.PUBLISHED_CARTPOLE_POWER_W - 1
    return [dyn, whole]


def points() -> list[dict]:
    """Every published comparison (see the module docstring)."""
    return _seed_rows() + _dvfs_rows() + _cartpole_rows()


def order_matches(rows: list[dict]) -> dict[str, bool]:
    """Which published orders of the DVFS trio the model keeps: dvfs < fixed high, and
    fixed high < fixed low (the latter needs the low run to stretch; see its row)."""
    e = {r["point"]: r["model_j"] for r in rows}
    return {"dvfs < high": e["DVFS trio: automatic DVFS"] < e["DVFS trio: fixed high, 0.8 V"],
            "high < low": e["DVFS trio: fixed high, 0.8 V"] < e["DVFS trio: fixed low, 0.5 V"]}
