"""What a run costs on SpiNNaker2: tick, latency, power and energy per inference (modelled).

    energy(placement, run, program=None, op="0.8V", tick_s=None) -> Cost

From the emulator's activity counters (`Run.counters[pop][name]`, per inference and step) the
model computes busy cycles per PE and step; each PE holds a share of its population's neurons
and gets that share of the counters (packets into a population fed by a dense projection are
multicast to every one of its PEs, so each PE receives all of them). Then:

  tick      fixed (`tick_s`, real time as in the papers) or the shortest every PE meets; when a
            PE cannot finish its work within the requested tick the whole run is stretched to
            the tick it needs (there is no barrier on the chip: a slower tick is the only way
            to stay in step) and `realtime` is False.
  levels    `0.5V` or `0.8V` for every PE; `dvfs`: per PE and tick the low point where its load
            fits the tick, else the high one.
  energy    E = chips * P_chip_off * T_run + sum over PEs and ticks of
                P_PE_asleep(V) * tick + cycles * e_cycle(V) + MACs * e_MAC(V)
            with T_run = steps * tick: base power times run time dominates at low load.
  latency   (input steps + depth) * tick: the last input needs `depth` more ticks to reach the
            output.

Every constant comes from `spinnq.s2.chip` (with its source and what it does not know); every
number this module returns is "modelled".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.program import COUNTERS, Placement, Program, Run

OP_CHOICES = ("0.5V", "0.8V", "dvfs")
LOW, HIGH = chip.OPERATING_POINTS["0.5V"], chip.OPERATING_POINTS["0.8V"]

# How packets into a population reach its PEs, by the kind of the incoming projection:
# a dense row touches every target neuron, so every PE of the target receives the packet.
PACKET_SPREAD = {"dense": "replicate", "conv": "share", "pool": "share"}
# Models whose synaptic input runs on the MAC accelerator: their `syn_events` are done by the
# `macs` (charged at the accelerator's rate and energy), not again by the core.
ACCELERATED = {"lif_conv2d"}


@dataclass(frozen=True)
class CycleCosts:
    """Cycles a PE spends per counted event (defaults: the constants table, `s2/chip.py`)."""

    neuron_updates: float = chip.CYCLES_PER_NEURON_UPDATE
    syn_events: float = chip.CYCLES_PER_SYN_EVENT
    packets_in: float = chip.CYCLES_PER_PACKET_IN
    spikes: float = chip.CYCLES_PER_SPIKE_OUT
    macs_per_cycle: float = chip.MACS_PER_CYCLE
    tick_overhead: float = chip.TICK_OVERHEAD_CYCLES

    def per_event(self, counter: str) -> float:
        """Cycles per event of a (non-MAC) counter."""
        return getattr(self, counter)


@dataclass
class Cost:
    """A run's modelled cost per inference; `to_dict()` is what reports store."""

    operating_point: str
    tick_s: float  # the tick the run uses (>= the requested one)
    tick_requested_s: float | None  # None: shortest feasible
    realtime: bool  # the requested tick was met by every PE at every step
    overrun_steps: int  # steps at which some PE needed more than the requested tick
    steps: int  # ticks emulated (input steps + depth by default)
    depth: int
    latency_s: float
    run_s: float
    energy_j: float
    base_j: float  # chip off + used PEs asleep, times run time
    dynamic_j: float  # busy cycles and MACs above sleep
    power_w: float  # average over the run
    pes: int
    chips: int
    busy_cycles: float  # total, all PEs and steps
    peak_load: float  # busiest PE-step: busy time / tick at its level
    low_fraction: float  # share of PE-ticks at the low point
    memory_max_bytes: int
    per_population: dict[str, dict] = field(default_factory=dict)
    per_pe: list[dict] = field(default_factory=list)
    kind: str = "modelled"

    def chip_table(self) -> dict:
        """The `chip` entry of report.json."""
        keys = ("pes", "chips", "steps", "tick_s", "latency_s", "power_w", "energy_j",
                "operating_point", "realtime", "base_j", "dynamic_j", "memory_max_bytes", "kind")
        d = {k: getattr(self, k) for k in keys}
        d["timesteps"] = d.pop("steps")
        return d

    def to_dict(self) -> dict:
        return asdict(self)


def _check_op(op: str) -> str:
    if op not in OP_CHOICES:
        raise InputError(f"operating point must be one of {', '.join(OP_CHOICES)}, got {op!r}")
    return op


def _population_sizes(placement: Placement, program: Program | None) -> dict[str, int]:
    if program is not None:
        return {n: p.size for n, p in program.populations.items()}
    sizes: dict[str, int] = {}
    for s in placement.slots:
        sizes[s.population] = max(sizes.get(s.population, 0), s.stop)
    return sizes


def _spread(program: Program | None) -> dict[str, str]:
    """Population -> how its incoming packets spread over its PEs (replicate wins)."""
    out: dict[str, str] = {}
    for p in (program.projections if program is not None else []):
        rule = PACKET_SPREAD.get(p.kind, "share")
        if out.get(p.post) != "replicate":
            out[p.post] = rule
    return out


def busy_cycles(placement: Placement, run: Run, program: Program | None = None,
                costs: CycleCosts = CycleCosts()) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, macs), each (PEs, steps): the core's own cycles (without the accelerator's)
    and the accelerator MACs of every PE at every step of one inference."""
    if not placement.slots:
        raise InputError("the placement has no PEs")
    sizes, spread = _population_sizes(placement, program), _spread(program)
    models = {n: p.model for n, p in program.populations.items()} if program is not None else {}
    steps = int(run.steps)
    cyc = np.full((placement.pes, steps), float(costs.tick_overhead))
    mac = np.zeros((placement.pes, steps))
    for i, s in enumerate(placement.slots):
        if s.population not in run.counters:
            raise InputError(f"no counters for population '{s.population}' placed on chip "
                             f"{s.chip} PE {s.pe} (run has: {', '.join(run.counters)})")
        size = sizes.get(s.population, 0)
        if size <= 0 or not 0 <= s.start < s.stop <= size:
            raise InputError(f"PE slot neurons [{s.start}, {s.stop}) do not fit population "
                             f"'{s.population}' of {size} neurons")
        share = (s.stop - s.start) / size
        for name, arr in run.counters[s.population].items():
            if name not in COUNTERS:
                raise InputError(f"unknown counter '{name}' of population '{s.population}' "
                                 f"(known: {', '.join(COUNTERS)})")
            a = np.asarray(arr, dtype=np.float64).reshape(-1)
            if a.shape[0] != steps:
                raise InputError(f"counter '{name}' of population '{s.population}' has "
                                 f"{a.shape[0]} steps; the run has {steps}")
            if name == "macs":
                mac[i] += a * share
            elif name == "syn_events" and models.get(s.population) in ACCELERATED:
                continue
            else:
                k = 1.0 if name == "packets_in" and spread.get(s.population) == "replicate" \
                    else share
                cyc[i] += a * k * costs.per_event(name)
    return cyc, mac


def _levels(busy: np.ndarray, op: str, tick: float) -> np.ndarray:
    """True where a PE-step runs at the high point."""
    if op == "dvfs":
        return busy > tick * LOW.clock_hz * (1 + 1e-12)
    return np.full(busy.shape, op == "0.8V")


def energy(placement: Placement, run: Run, program: Program | None = None, op: str = "0.8V",
           tick_s: float | None = None, costs: CycleCosts = CycleCosts(),
           input_steps: int | None = None) -> Cost:
    """Model tick, latency, power and energy of one inference (see the module docstring).

    `program` gives population sizes, the depth and the projection kinds; without it the sizes
    come from the placement and the depth is 0. `input_steps` defaults to `run.steps - depth`
    (the emulator runs T + depth steps by default)."""
    _check_op(op)
    if tick_s is not None and not (np.isfinite(tick_s) and tick_s > 0):
        raise InputError(f"tick must be a positive number of seconds, got {tick_s}")
    cyc, mac = busy_cycles(placement, run, program, costs)
    busy = cyc + mac / costs.macs_per_cycle  # cycles of work per PE-step
    steps = busy.shape[1]
    f_fixed = LOW.clock_hz if op == "0.5V" else HIGH.clock_hz  # dvfs: high carries the peak
    need = busy.max(axis=0) / f_fixed  # seconds the slowest PE needs, per step
    feasible = float(need.max()) if steps else 0.0
    if tick_s is None:
        if feasible <= 0:
            raise InputError("no work in the run and no tick given: pass tick_s")
        tick = feasible
    else:
        tick = max(float(tick_s), feasible)
    overruns = int((need > tick_s * (1 + 1e-12)).sum()) if tick_s is not None else 0
    high = _levels(busy, op, tick)
    sleep_w = np.where(high, HIGH.pe_sleep_w, LOW.pe_sleep_w)
    e_cycle = np.where(high, HIGH.energy_per_cycle_j, LOW.energy_per_cycle_j)
    e_mac = np.where(high, chip.ENERGY_PER_MAC_J[HIGH.volts], chip.ENERGY_PER_MAC_J[LOW.volts])
    sleep_j = sleep_w * tick  # (PEs, steps)
    dyn_j = cyc * e_cycle + mac * e_mac
    switches = int(np.abs(np.diff(high.astype(np.int8), axis=1)).sum()) if op == "dvfs" else 0
    run_s = steps * tick
    chip_off_j = placement.chips * chip.CHIP_OFF_W * run_s
    pe_j = (sleep_j + dyn_j).sum(axis=1)
    total = chip_off_j + float(pe_j.sum()) + switches * chip.DVFS_SWITCH_J
    depth = int(program.depth) if program is not None else 0
    n_in = input_steps if input_steps is not None else max(steps - depth, 1)
    load = busy / (tick * np.where(high, HIGH.clock_hz, LOW.clock_hz))

    per_pe, per_pop = [], {}
    for i, s in enumerate(placement.slots):
        row = {"chip": s.chip, "pe": s.pe, "population": s.population,
               "neurons": s.stop - s.start, "busy_cycles": float(busy[i].sum()),
               "peak_cycles": float(busy[i].max()), "energy_j": float(pe_j[i]),
               "dynamic_j": float(dyn_j[i].sum()), "low_fraction": float(1 - high[i].mean()),
               "memory_bytes": s.bytes}
        per_pe.append(row)
        pop = per_pop.setdefault(s.population, {"pes": 0, "neurons": 0, "busy_cycles": 0.0,
                                                "energy_j": 0.0, "dynamic_j": 0.0})
        for k in ("busy_cycles", "energy_j", "dynamic_j", "neurons"):
            pop[k] += row[k]
        pop["pes"] += 1
    for name, pop in per_pop.items():
        pop["counters"] = {k: float(np.asarray(v).sum()) for k, v in run.counters[name].items()}
    return Cost(
        operating_point=op, tick_s=tick, tick_requested_s=tick_s,
        realtime=tick_s is None or overruns == 0, overrun_steps=overruns, steps=steps,
        depth=depth, latency_s=(n_in + depth) * tick, run_s=run_s, energy_j=total,
        base_j=chip_off_j + float(sleep_j.sum()), dynamic_j=float(dyn_j.sum()),
        power_w=total / run_s, pes=placement.pes, chips=placement.chips,
        busy_cycles=float(busy.sum()), peak_load=float(load.max()),
        low_fraction=float(1 - high.mean()),
        memory_max_bytes=max((s.bytes for s in placement.slots), default=0),
        per_population=per_pop, per_pe=per_pe)


def _fan_out(p, program: Program) -> float:
    """Mean synapses per presynaptic spike of a projection."""
    w = np.asarray(p.weight)
    if p.kind == "conv":  # (C_out, C_in, kh, kw): the frame's synapses over the inputs (a fused
        # sum-pool of k x k sends every input to one pooled pixel: k^2 fewer inputs);
        # padding taps are counted, so this is slightly high at the borders
        pool = p.conv.get("pool") or 1
        frame = program.populations[p.post].size * int(np.prod(w.shape[1:]))
        return frame * pool**2 / max(program.populations[p.pre].size, 1)
    return float(np.count_nonzero(w)) / max(w.shape[1], 1)  # (post, pre)


def estimate_counters(program: Program, rates: dict[str, float | np.ndarray],
                      steps: int) -> dict[str, dict[str, np.ndarray]]:
    """Counters of one inference from firing rates (spikes per neuron and step, a number or
    an array of `steps`) instead of an emulator run: for planning before training, and for
    the calibration against published runs. Populations missing from `rates` do not fire."""
    z = np.zeros(steps)
    out = {n: {c: z.copy() for c in COUNTERS} for n in program.populations}
    for n, pop in program.populations.items():
        r = np.broadcast_to(np.asarray(rates.get(n, 0.0), dtype=np.float64), (steps,))
        if np.any(r < 0) or np.any(r > 1):
            raise InputError(f"firing rate of '{n}' must lie in [0, 1] spikes per step")
        out[n]["spikes"] = r * pop.size
        out[n]["neuron_updates"] = np.full(steps, 0.0 if pop.model == "spike_list" else pop.size)
    for p in program.projections:
        pre_pop, pre = program.populations[p.pre], out[p.pre]["spikes"]
        out[p.post]["syn_events"] += pre * _fan_out(p, program)
        out[p.post]["packets_in"] += pre
        if p.kind == "conv":  # as the emulator counts: the whole frame when any input spiked
            r = np.clip(pre / max(pre_pop.size, 1), 0.0, 1.0)
            frame = program.populations[p.post].size * int(np.prod(np.shape(p.weight)[1:]))
            out[p.post]["macs"] += frame * (1 - (1 - r) ** pre_pop.size)
    return out
