"""What a run costs on SpiNNaker2: tick, latency, power and energy per inference (modelled).

    energy(placement, run, program=None, op="0.8V", tick_s=None) -> Cost

The PE program (NESTML's SpiNNaker2 target, `s2/chip.py`) is replayed per PE and tick from the
emulator's activity counters (`Run.counters[pop][name]`, per inference and step) and the
program's and placement's structure (`pe_routes`):

  cycles = tick overhead                                       every PE, every tick
         + packets received x (receive + lookup step x ceil(log2(table entries + 1)))
         + synapse words x per-word cost                       (not for accelerated conv)
         + neurons x (synapse types x delay-buffer move + neuron update)
         + recorded neurons x record cost                      recorded populations only
         + spikes x target QPEs of the PE x send cost          one packet per target QPE
         + accelerator MACs / MACs per cycle                   conv on the MAC array

A PE receives every spike of each source PE that routes to it (its routing targets are per
PE); spikes are spread over a population's PEs by their neuron share, synapse words by their
share of the population's synapses [assumed: spikes spread evenly over a population's
neurons]. A spike sent at step t is received at step t + 1.

  levels    one of `chip.OPERATING_POINTS` (4 DVFS levels) for every PE, or `dvfs`: per PE
            and tick the cheapest level whose clock finishes the PE's work within the tick
            (the fastest level when none does).
  tick      fixed (`tick_s`) or the shortest every PE meets at the level (`shortest_ticks`).
            A tick in which some PE needs longer than `tick_s` lasts as long as that PE needs
            (there is no barrier on the chip): the run stretches and `realtime` is False.
  energy    E = chips * P_chip_off * T_run
              + sum over PEs and ticks of P_PE_asleep(V) * tick length + cycles * e_cycle(V)
              + MACs * e_MAC(V)
            base_j = the first two terms (asleep floor x time), dynamic_j = the rest.
  latency   (input steps + depth) ticks of the run's mean length.

Every number this module returns is "modelled".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from spinnq.errors import InputError
from spinnq.s2 import chip
from spinnq.s2.program import COUNTERS, Placement, Program, Run

LEVELS = tuple(chip.OPERATING_POINTS.values())  # slowest first
LEVEL_NAMES = tuple(chip.OPERATING_POINTS)
OP_CHOICES = (*LEVEL_NAMES, "dvfs")
TOP = LEVELS[-1]
LOW, HIGH = chip.OPERATING_POINTS["0.5V"], chip.OPERATING_POINTS["0.8V"]

# Models whose synaptic input runs on the MAC accelerator: their `syn_events` are done by the
# `macs` (charged at the accelerator's rate and energy), not by the core's synapse loop.
ACCELERATED = {"lif_conv2d"}
PES_PER_QPE = 4  # [paper]


@dataclass(frozen=True)
class CycleCosts:
    """Cycles of the PE program per unit of work (defaults: the constants table, `s2/chip.py`)."""

    tick_overhead: float = chip.TICK_OVERHEAD_CYCLES
    packet_rx: float = chip.CYCLES_PER_PACKET_RX
    lookup_step: float = chip.CYCLES_PER_LOOKUP_STEP
    syn_word: float = chip.CYCLES_PER_SYN_WORD
    delay_buffer: float = chip.CYCLES_PER_DELAY_BUFFER  # per neuron and synapse type
    neuron_update: float = chip.CYCLES_PER_NEURON_UPDATE
    recorded_neuron: float = chip.CYCLES_PER_RECORDED_NEURON
    packet_sent: float = chip.CYCLES_PER_PACKET_SENT
    macs_per_cycle: float = chip.MACS_PER_CYCLE

    def per_neuron(self) -> float:
        """Cycles per neuron and tick: delay-buffer move of each synapse type + update."""
        return chip.SYNAPSE_TYPES * self.delay_buffer + self.neuron_update

    def per_syn_event(self, row_words: float = chip.REFERENCE_ROW_WORDS,
                      table_entries: int = chip.REFERENCE_TABLE_ENTRIES) -> float:
        """Cycles per synaptic event, receive and lookup included, for rows of `row_words`:
        what the published 12 M events/s per core measures."""
        return self.syn_word + (self.packet_rx + self.lookup_step * lookup_steps(table_entries)
                                ) / row_words


def lookup_steps(entries: int | np.ndarray) -> np.ndarray:
    """Iterations of the population table's binary search: ceil(log2(entries + 1))."""
    return np.ceil(np.log2(np.asarray(entries, dtype=np.float64) + 1))


@dataclass
class Routes:
    """Per PE slot (placement order): who sends to whom, from the program's synapses."""

    sends_to: np.ndarray  # (slots, slots) bool: slot s routes its spikes to slot r
    qpes: np.ndarray  # (slots,) target QPEs of each slot: packets per spike
    table_entries: np.ndarray  # (slots,) source slots in each slot's population table
    syn_share: np.ndarray  # (slots,) share of its population's incoming synapses


def _slot_index(placement: Placement) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Population -> (slot starts, global slot ids), sorted by start."""
    by: dict[str, list[tuple[int, int]]] = {}
    for k, s in enumerate(placement.slots):
        by.setdefault(s.population, []).append((s.start, k))
    return {p: (np.array([a for a, _ in v]), np.array([k for _, k in v]))
            for p, v in ((p, sorted(v)) for p, v in by.items())}


def _synapse_pairs(proj, pre_shape) -> tuple[np.ndarray, np.ndarray] | None:
    """(pre, post) flat indices of every nonzero synapse of a projection; None for a conv
    without its geometry (taken as all-to-all)."""
    w = np.asarray(proj.weight)
    if proj.kind == "conv":
        if "out_shape" not in proj.conv or len(pre_shape) != 3:
            return None
        from spinnq.s2.events import fanout_table
        indptr, post, _ = fanout_table(proj, pre_shape)
        return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)), post.astype(np.int64)
    post, pre = np.nonzero(w)
    return pre, post


def pe_routes(program: Program, placement: Placement) -> Routes:
    """Routing structure of a placed program (see `Routes`)."""
    n = placement.pes
    idx = _slot_index(placement)
    sends = np.zeros((n, n), dtype=bool)
    syn = np.zeros(n)

    def slot_of(pop: str, flat: np.ndarray) -> np.ndarray:
        starts, ids = idx[pop]
        return ids[np.searchsorted(starts, flat, side="right") - 1]

    for p in program.projections:
        if p.pre not in idx or p.post not in idx:
            continue
        pairs = _synapse_pairs(p, program.populations[p.pre].shape)
        if pairs is None:
            a, b = idx[p.pre][1], idx[p.post][1]
            sends[np.ix_(a, b)] = True
            syn[b] += [placement.slots[k].stop - placement.slots[k].start for k in b]
            continue
        a, b = slot_of(p.pre, pairs[0]), slot_of(p.post, pairs[1])
        sends[a, b] = True
        syn += np.bincount(b, minlength=n)
    qpe = np.array([s.chip * 10_000 + s.pe // PES_PER_QPE for s in placement.slots])
    qpes = np.array([len(np.unique(qpe[sends[s]])) for s in range(n)], dtype=np.float64)
    pop_total: dict[str, float] = {}
    for k, s in enumerate(placement.slots):
        pop_total[s.population] = pop_total.get(s.population, 0.0) + syn[k]
    share = np.array([syn[k] / pop_total[s.population] if pop_total[s.population] else 0.0
                      for k, s in enumerate(placement.slots)])
    return Routes(sends, qpes, sends.sum(axis=0), share)


def cached_routes(program: Program, placement: Placement) -> Routes:
    """`pe_routes`, built once per unchanged (program, placement): kept on the placement with
    a key that changes when the program's synapses or the slots change."""
    from spinnq.s2.emulate import fingerprint
    key = (fingerprint(program), tuple((s.chip, s.pe, s.population, s.start, s.stop)
                                       for s in placement.slots))
    cached = getattr(placement, "_energy_routes", None)
    if cached is None or cached[0] != key:
        cached = (key, pe_routes(program, placement))
        placement._energy_routes = cached
    return cached[1]


@dataclass
class Cost:
    """A run's modelled cost per inference; `to_dict()` is what reports store."""

    operating_point: str
    tick_s: float  # the longest tick of the run (>= the requested one)
    tick_requested_s: float | None  # None: shortest feasible
    realtime: bool  # every PE finished every tick within the requested tick
    overrun_steps: int  # steps at which some PE needed more than the requested tick
    steps: int  # ticks emulated (input steps + depth by default)
    depth: int
    latency_s: float
    run_s: float  # the run's length: the sum of its ticks
    energy_j: float
    base_j: float  # chip off + used PEs asleep, times run time
    dynamic_j: float  # busy cycles and MACs above sleep
    power_w: float  # average over the run
    pes: int
    chips: int
    busy_cycles: float  # total, all PEs and steps
    peak_load: float  # busiest PE-step: busy time / requested tick at its level
    low_fraction: float  # share of PE-ticks at 0.5 V
    memory_max_bytes: int
    chip_base_j: float = 0.0  # chips' off power x run time (the per-population rows lack it)
    levels: dict[str, float] = field(default_factory=dict)  # share of PE-ticks per level
    cycles_by_work: dict[str, float] = field(default_factory=dict)  # total cycles per item
    per_population: dict[str, dict] = field(default_factory=dict)
    per_pe: list[dict] = field(default_factory=list)
    kind: str = "modelled"

    def chip_table(self) -> dict:
        """The `chip` entry of report.json."""
        keys = ("pes", "chips", "steps", "tick_s", "latency_s", "power_w", "energy_j",
                "operating_point", "realtime", "base_j", "dynamic_j", "chip_base_j",
                "memory_max_bytes", "kind")
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


def _counter(run: Run, pop: str, name: str, steps: int, slot) -> np.ndarray:
    d = run.counters.get(pop)
    if d is None:
        raise InputError(f"no counters for population '{pop}' placed on chip {slot.chip} PE "
                         f"{slot.pe} (run has: {', '.join(run.counters)})")
    if name not in d:
        return np.zeros(steps)
    a = np.asarray(d[name], dtype=np.float64).reshape(-1)
    if a.shape[0] != steps:
        raise InputError(f"counter '{name}' of population '{pop}' has {a.shape[0]} steps; the "
                         f"run has {steps}")
    return a


def recorded_populations(run: Run, program: Program | None) -> set[str]:
    """Populations whose spikes/voltages the run records: the run's, else the outputs."""
    rec = set(run.spikes) | set(run.v)
    if not rec and program is not None:
        rec = set(program.outputs)
    return rec


def work_items(placement: Placement, run: Run, program: Program | None = None,
               costs: CycleCosts = CycleCosts(), routes: Routes | None = None
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cycles per item of the PE program ({item: (PEs, steps)}) and accelerator MACs
    (PEs, steps) of one inference; see the module docstring."""
    if not placement.slots:
        raise InputError("the placement has no PEs")
    steps = int(run.steps)
    sizes = _population_sizes(placement, program)
    models = {n: p.model for n, p in program.populations.items()} if program else {}
    for pop, d in run.counters.items():
        for name in d:
            if name not in COUNTERS:
                raise InputError(f"unknown counter '{name}' of population '{pop}' (known: "
                                 f"{', '.join(COUNTERS)})")
    if program is not None and routes is None:
        routes = cached_routes(program, placement)
    n = placement.pes
    share = np.zeros(n)
    spikes = np.zeros((n, steps))
    items = {k: np.zeros((n, steps)) for k in ("tick", "receive", "synapses", "neurons",
                                               "recording", "send")}
    mac = np.zeros((n, steps))
    rec = recorded_populations(run, program)
    items["tick"][:] = costs.tick_overhead
    for i, s in enumerate(placement.slots):
        size = sizes.get(s.population, 0)
        if size <= 0 or not 0 <= s.start < s.stop <= size:
            raise InputError(f"PE slot neurons [{s.start}, {s.stop}) do not fit population "
                             f"'{s.population}' of {size} neurons")
        share[i] = (s.stop - s.start) / size
        c = {k: _counter(run, s.population, k, steps, s) for k in COUNTERS}
        spikes[i] = c["spikes"] * share[i]
        items["neurons"][i] = c["neuron_updates"] * share[i] * costs.per_neuron()
        mac[i] = c["macs"] * share[i]
        if s.population in rec:
            items["recording"][i] = (s.stop - s.start) * costs.recorded_neuron
        if models.get(s.population) not in ACCELERATED:
            syn_share = routes.syn_share[i] if routes is not None else share[i]
            items["synapses"][i] = c["syn_events"] * syn_share * costs.syn_word
        if routes is None:  # no program: one packet per source spike, spread by share
            items["receive"][i] = c["packets_in"] * share[i] * (costs.packet_rx
                                                                + costs.lookup_step)
    if routes is not None:
        rx = np.zeros((n, steps))
        if steps > 1:  # spikes sent in tick t are processed in tick t + 1
            rx[:, 1:] = routes.sends_to.T.astype(np.float64) @ spikes[:, :-1]
        per_packet = costs.packet_rx + costs.lookup_step * lookup_steps(routes.table_entries)
        items["receive"] = rx * per_packet[:, None]
        items["send"] = spikes * routes.qpes[:, None] * costs.packet_sent
    else:
        items["send"] = spikes * costs.packet_sent
    return items, mac


def busy_cycles(placement: Placement, run: Run, program: Program | None = None,
                costs: CycleCosts = CycleCosts()) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, macs), each (PEs, steps): the core's own cycles (without the accelerator's)
    and the accelerator MACs of every PE at every step of one inference."""
    items, mac = work_items(placement, run, program, costs)
    return sum(items.values()), mac


def _cheapest_fitting(busy: np.ndarray, tick: float) -> np.ndarray:
    """Index into LEVELS per PE-step: the cheapest level whose clock fits the work in `tick`
    (cost per PE-step = asleep power x tick + cycles x energy per cycle), else the fastest."""
    best = np.full(busy.shape, len(LEVELS) - 1)
    best_cost = np.full(busy.shape, np.inf)
    for k, lv in enumerate(LEVELS):
        fits = busy <= tick * lv.clock_hz * (1 + 1e-12)
        cost = lv.pe_sleep_w * tick + busy * lv.energy_per_cycle_j
        better = fits & (cost < best_cost)
        best = np.where(better, k, best)
        best_cost = np.where(better, cost, best_cost)
    return best


def shortest_ticks(placement: Placement, run: Run, program: Program | None = None,
                   costs: CycleCosts = CycleCosts()) -> dict[str, float]:
    """The shortest tick every PE meets at every step, per performance level."""
    cyc, mac = busy_cycles(placement, run, program, costs)
    peak = float((cyc + mac / costs.macs_per_cycle).max()) if cyc.size else 0.0
    return {lv.name: peak / lv.clock_hz for lv in LEVELS}


def energy(placement: Placement, run: Run, program: Program | None = None, op: str = "0.8V",
           tick_s: float | None = None, costs: CycleCosts = CycleCosts(),
           input_steps: int | None = None) -> Cost:
    """Model tick, latency, power and energy of one inference (see the module docstring).

    `program` gives population sizes, the depth and the routing structure; without it the
    sizes come from the placement, every spike is one packet and the depth is 0.
    `input_steps` defaults to `run.steps - depth` (the emulator runs T + depth steps)."""
    _check_op(op)
    if tick_s is not None and not (np.isfinite(tick_s) and tick_s > 0):
        raise InputError(f"tick must be a positive number of seconds, got {tick_s}")
    items, mac = work_items(placement, run, program, costs)
    cyc = sum(items.values())
    busy = cyc + mac / costs.macs_per_cycle  # cycles of work per PE-step
    steps = busy.shape[1]
    fixed = chip.OPERATING_POINTS.get(op)
    f_run = (fixed or TOP).clock_hz  # dvfs: the fastest level carries what fits nowhere else
    need = busy.max(axis=0) / f_run if steps else np.zeros(0)  # per step, the slowest PE
    if tick_s is None:
        if not steps or need.max() <= 0:
            raise InputError("no work in the run and no tick given: pass tick_s")
        tick = float(need.max())
    else:
        tick = float(tick_s)
    length = np.maximum(need, tick)  # each tick lasts until its slowest PE is done
    overruns = int((need > tick * (1 + 1e-12)).sum()) if tick_s is not None else 0
    if fixed is not None:
        lvl = np.full(busy.shape, LEVEL_NAMES.index(op))
    else:
        lvl = _cheapest_fitting(busy, tick)
    clock = np.array([lv.clock_hz for lv in LEVELS])[lvl]
    sleep_w = np.array([lv.pe_sleep_w for lv in LEVELS])[lvl]
    e_cycle = np.array([lv.energy_per_cycle_j for lv in LEVELS])[lvl]
    e_mac = np.array([chip.ENERGY_PER_MAC_J[lv.volts] for lv in LEVELS])[lvl]
    volts = np.array([lv.volts for lv in LEVELS])[lvl]
    sleep_j = sleep_w * length[None, :]  # (PEs, steps)
    dyn_j = cyc * e_cycle + mac * e_mac
    switches = int((np.diff(lvl, axis=1) != 0).sum()) if fixed is None else 0
    run_s = float(length.sum())
    chip_off_j = placement.chips * chip.CHIP_OFF_W * run_s
    pe_j = (sleep_j + dyn_j).sum(axis=1)
    total = chip_off_j + float(pe_j.sum()) + switches * chip.DVFS_SWITCH_J
    depth = int(program.depth) if program is not None else 0
    n_in = input_steps if input_steps is not None else max(steps - depth, 1)
    load = busy / (tick * clock)

    per_pe, per_pop = [], {}
    for i, s in enumerate(placement.slots):
        row = {"chip": s.chip, "pe": s.pe, "population": s.population,
               "neurons": s.stop - s.start, "busy_cycles": float(busy[i].sum()),
               "peak_cycles": float(busy[i].max()), "energy_j": float(pe_j[i]),
               "base_j": float(sleep_j[i].sum()), "dynamic_j": float(dyn_j[i].sum()),
               "low_fraction": float((volts[i] < HIGH.volts).mean()),
               "memory_bytes": s.bytes}
        per_pe.append(row)
        pop = per_pop.setdefault(s.population, {"pes": 0, "neurons": 0, "busy_cycles": 0.0,
                                                "energy_j": 0.0, "base_j": 0.0,
                                                "dynamic_j": 0.0})
        for k in ("busy_cycles", "energy_j", "base_j", "dynamic_j", "neurons"):
            pop[k] += row[k]
        pop["pes"] += 1
    for name, pop in per_pop.items():
        pop["counters"] = {k: float(np.asarray(v).sum()) for k, v in run.counters[name].items()}
    mean_tick = run_s / steps if steps else tick
    return Cost(
        operating_point=op, tick_s=float(length.max()) if steps else tick,
        tick_requested_s=tick_s, realtime=tick_s is None or overruns == 0,
        overrun_steps=overruns, steps=steps, depth=depth,
        latency_s=(n_in + depth) * mean_tick, run_s=run_s, energy_j=total,
        base_j=chip_off_j + float(sleep_j.sum()), dynamic_j=float(dyn_j.sum()),
        power_w=total / run_s, pes=placement.pes, chips=placement.chips,
        busy_cycles=float(busy.sum()), peak_load=float(load.max()),
        low_fraction=float((volts < HIGH.volts).mean()),
        memory_max_bytes=max((s.bytes for s in placement.slots), default=0),
        chip_base_j=chip_off_j,
        levels={lv.name: float((lvl == k).mean()) for k, lv in enumerate(LEVELS)},
        cycles_by_work={k: float(v.sum()) for k, v in items.items()}
        | {"accelerator": float((mac / costs.macs_per_cycle).sum())},
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


def dynamic_share_bounds(energy_j: float, pes: int, steps: int, tick_s: float = 1e-3
                         ) -> tuple[float, float]:
    """The dynamic part a published total implies: total minus the asleep floor at 0.8 V,
    with the unused PEs off (upper) or asleep (lower), over steps x tick."""
    t = steps * tick_s
    used = (chip.CHIP_OFF_W + pes * HIGH.pe_sleep_w) * t
    all_asleep = chip.CHIP_ASLEEP_W[HIGH.volts] * t * math.ceil(pes / chip.PES_PER_CHIP)
    return energy_j - max(used, all_asleep), energy_j - min(used, all_asleep)
