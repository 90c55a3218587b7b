"""What a run costs on SpiNNaker2: tick, latency, power and energy per inference (modelled).

    energy(placement, run, program=None, op="0.8V", tick_s=None, model=None) -> Cost

The PE program (NESTML's SpiNNaker2 target, `s2/chip.py`) is replayed per PE and tick from the
emulator's activity counters (`Run.counters[pop][name]`, per inference and step) and the
program's and placement's structure (`pe_routes`, sparse: a list of PE -> PE routes):

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

  levels    one of `chip.OPERATING_POINTS` (4 DVFS levels) for every PE, or `dvfs`: the chip
            software's policy (py-spinnaker2's DVFS demo): per PE and tick the high level
            (0.8 V, 300 MHz) when the PE received at least its model's packet threshold
            (`ChipModel.dvfs_threshold_packets`, a setting), else the low one (0.5 V,
            150 MHz). The per-PE-tick optimum over all 4 levels (cheapest level that finishes
            in the tick) is kept only as a named lower bound: `Cost.dvfs_lower_bound_j`.
  tick      fixed (`tick_s`), or the shortest tick: at a fixed level the one every PE meets;
            at `dvfs` the low level's (every PE meets it at whatever level the policy picks;
            the demo halves it after choosing thresholds by hand: give that as `tick_s`).
            A PE-tick whose work needs longer than the tick at its level is an overrun: the
            run is reported as NOT real time (`realtime`, `overrun_steps`, `tick_needed_s`);
            the run is never stretched to absorb it (on the chip the PE falls out of step).
            Tick and level depend only on activity, never fall as it rises: energy never falls
            as activity rises.
  energy    E = chips * (P_chip_off + P_unmodelled) * T_run
              + sum over PEs and ticks of P_PE_asleep(V) * tick + cycles * e_cycle(V)
              + MACs * e_MAC(V)
            base_j = chip off + PEs asleep (x T_run), dynamic_j = cycles + MACs, unmodelled_j
            = the named term for router/NoC/always-on/IO power (0 unless a chip model sets
            it). `energy_low_j`/`energy_high_j`: the same run with every constant at the low /
            high end of its sourced range (`ChipModel`).
  latency   (input steps + depth) ticks.
  activity  beside the joules, the field's activity metrics per population (NeuroBench's
            synaptic operations, effective ACs, activation sparsity: `s2/activity.py`),
            `Cost.activity`, labelled with their source (emulated).

Every number this module returns is "modelled", but `Cost.activity` ("emulated").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from spinnq.config import REALTIME_TICK_S
from spinnq.errors import InputError
from spinnq.s2 import activity, chip
from spinnq.s2.chip import ChipModel
from spinnq.s2.program import COUNTERS, Placement, Program, Run

LEVELS = tuple(chip.OPERATING_POINTS.values())  # slowest first
LEVEL_NAMES = tuple(chip.OPERATING_POINTS)
OP_CHOICES = (*LEVEL_NAMES, "dvfs")
TOP = LEVELS[-1]
LOW, HIGH = chip.OPERATING_POINTS["0.5V"], chip.OPERATING_POINTS["0.8V"]
DVFS_LOW, DVFS_HIGH = LEVEL_NAMES.index(chip.DVFS_LOW), LEVEL_NAMES.index(chip.DVFS_HIGH)
CORNERS = ("value", "low", "high")

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

    @classmethod
    def of(cls, model: ChipModel, corner: str = "value") -> CycleCosts:
        """The cycle costs of a chip model at a corner of their ranges."""
        return cls(**{k: c.at(corner) for k, c in model.cycles.items()})

    def per_neuron(self) -> float:
        """Cycles per neuron and tick: delay-buffer move of each synapse type + update."""
        return chip.SYNAPSE_TYPES * self.delay_buffer + self.neuron_update

    def per_syn_event(self, row_words: float = chip.REFERENCE_ROW_WORDS,
                      table_entries: int = chip.REFERENCE_TABLE_ENTRIES) -> float:
        """Cycles per synaptic event, receive and lookup included, for rows of `row_words`:
        what the published 12 M events/s per core measures."""
        return self.syn_word + (self.packet_rx + self.lookup_step * lookup_steps(table_entries)
                                ) / row_words


WORK = ("tick_overhead", "packet_rx", "lookup_step", "syn_word", "delay_buffer",
        "neuron_update", "recorded_neuron", "packet_sent")  # units of work, one per cost
# the report's grouping of the units of work
WORK_GROUPS = {"tick": ("tick_overhead",), "receive": ("packet_rx", "lookup_step"),
               "synapses": ("syn_word",), "neurons": ("delay_buffer", "neuron_update"),
               "recording": ("recorded_neuron",), "send": ("packet_sent",)}


def lookup_steps(entries: int | np.ndarray) -> np.ndarray:
    """Iterations of the population table's binary search: ceil(log2(entries + 1))."""
    return np.ceil(np.log2(np.asarray(entries, dtype=np.float64) + 1))


@dataclass
class Routes:
    """Per PE slot (placement order): who sends to whom, from the program's synapses. The
    routes are a sparse list of (source slot, target slot) pairs: memory grows with the
    routes, not with slots squared."""

    src: np.ndarray  # (routes,) source slot of each route, sorted by target
    dst: np.ndarray  # (routes,) target slot of each route (sorted)
    qpes: np.ndarray  # (slots,) target QPEs of each slot: packets per spike
    table_entries: np.ndarray  # (slots,) source slots in each slot's population table
    syn_share: np.ndarray  # (slots,) share of its population's incoming synapses

    @property
    def slots(self) -> int:
        return len(self.qpes)

    def dense(self) -> np.ndarray:
        """The (slots, slots) bool matrix `[s, r]`: s routes to r (small placements only)."""
        m = np.zeros((self.slots, self.slots), dtype=bool)
        m[self.src, self.dst] = True
        return m

    def received(self, spikes: np.ndarray) -> np.ndarray:
        """Packets each slot receives per step (slots, steps) from the spikes its sources
        sent the step before."""
        n, steps = spikes.shape
        rx = np.zeros((n, steps))
        if steps < 2 or not len(self.src):
            return rx
        chunk = max(1, (1 << 24) // max(steps, 1))  # bounded temporary memory
        for a in range(0, len(self.src), chunk):
            s, d = self.src[a:a + chunk], self.dst[a:a + chunk]
            t, f = np.unique(d, return_index=True)
            rx[t, 1:] += np.add.reduceat(spikes[s, :-1], f, axis=0)
        return rx


def _slot_index(placement: Placement) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Population -> (slot starts, global slot ids), sorted by start."""
    by: dict[str, list[tuple[int, int]]] = {}
    for k, s in enumerate(placement.slots):
        by.setdefault(s.population, []).append((s.start, k))
    return {p: (np.array([a for a, _ in v]), np.array([k for _, k in v]))
            for p, v in ((p, sorted(v)) for p, v in by.items())}


ROW_BUDGET = 1 << 24  # weight entries looked at in one block (16 MB of booleans)


def _dense_routes(w: np.ndarray, pre: tuple[np.ndarray, np.ndarray],
                  post: tuple[np.ndarray, np.ndarray], n: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(route keys src * n + dst, synapses per target slot) of a dense (post, pre) weight
    matrix, block by block of target slots (never the whole matrix's nonzero list)."""
    (pre_starts, pre_ids), (post_starts, post_ids) = pre, post
    rows, cols = w.shape
    bounds = np.append(post_starts, rows)
    per = max(1, ROW_BUDGET // max(cols, 1))
    keys, syn = [], np.zeros(n)
    a = 0
    while a < len(post_starts):
        b = int(np.searchsorted(bounds, bounds[a] + per, side="right")) - 1
        b = min(max(b, a + 1), len(post_starts))
        r0, r1 = int(bounds[a]), int(bounds[b])
        nz = np.asarray(w[r0:r1]) != 0
        offs = post_starts[a:b] - r0
        syn[post_ids[a:b]] += np.add.reduceat(nz.sum(axis=1), offs) if r1 > r0 else 0
        hit = np.logical_or.reduceat(nz, offs, axis=0) if r1 > r0 else nz[:0]
        hit = np.logical_or.reduceat(hit, pre_starts, axis=1)
        i, j = np.nonzero(hit)
        keys.append(pre_ids[j].astype(np.int64) * n + post_ids[a:b][i])
        a = b
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64), syn


def _csr_routes(indptr: np.ndarray, post_idx: np.ndarray,
                pre: tuple[np.ndarray, np.ndarray], post: tuple[np.ndarray, np.ndarray],
                n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same for synapses listed CSR by pre neuron (conv): chunk by chunk of pre neurons."""
    (pre_starts, pre_ids), (post_starts, post_ids) = pre, post
    keys, syn = [], np.zeros(n)
    n_pre = len(indptr) - 1
    step = max(1, ROW_BUDGET // max(int(indptr[-1]) // max(n_pre, 1), 1))
    for a in range(0, n_pre, step):
        b = min(a + step, n_pre)
        p = post_idx[indptr[a]:indptr[b]]
        src = pre_ids[np.searchsorted(pre_starts, np.repeat(np.arange(a, b),
                                                            np.diff(indptr[a:b + 1])),
                                      side="right") - 1]
        dst = post_ids[np.searchsorted(post_starts, p, side="right") - 1]
        syn += np.bincount(dst, minlength=n)
        keys.append(np.unique(src.astype(np.int64) * n + dst))
    return np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64), syn


def _all_to_all(pre_ids: np.ndarray, post_ids: np.ndarray, n: int) -> np.ndarray:
    return (pre_ids.astype(np.int64)[:, None] * n + post_ids[None, :]).ravel()


def pe_routes(program: Program, placement: Placement) -> Routes:
    """Routing structure of a placed program (see `Routes`)."""
    n = placement.pes
    idx = _slot_index(placement)
    keys, syn = [], np.zeros(n)
    for p in program.projections:
        if p.pre not in idx or p.post not in idx:
            continue
        pre_shape = program.populations[p.pre].shape
        if p.kind == "dense":
            k, s = _dense_routes(p.weight, idx[p.pre], idx[p.post], n)
        elif "out_shape" in p.conv and len(pre_shape) == 3:
            from spinnq.s2.events import fanout_table
            indptr, post, _ = fanout_table(p, pre_shape)
            k, s = _csr_routes(indptr, post, idx[p.pre], idx[p.post], n)
        else:  # a conv without its geometry: taken as all-to-all
            b = idx[p.post][1]
            k = _all_to_all(idx[p.pre][1], b, n)
            s = np.zeros(n)
            s[b] = [placement.slots[j].stop - placement.slots[j].start for j in b]
        keys.append(k)
        syn += s
    key = np.unique(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    src, dst = key // n, key % n
    order = np.argsort(dst, kind="stable")
    src, dst = src[order], dst[order]
    qpe = np.array([s.chip * 10_000 + s.pe // PES_PER_QPE for s in placement.slots],
                   dtype=np.int64)
    qkeys = np.unique(src * (int(qpe.max(initial=0)) + 1) + qpe[dst])
    qpes = np.bincount(qkeys // (int(qpe.max(initial=0)) + 1), minlength=n).astype(np.float64)
    pop_total: dict[str, float] = {}
    for k, s in enumerate(placement.slots):
        pop_total[s.population] = pop_total.get(s.population, 0.0) + syn[k]
    share = np.array([syn[k] / pop_total[s.population] if pop_total[s.population] else 0.0
                      for k, s in enumerate(placement.slots)])
    return Routes(src, dst, qpes, np.bincount(dst, minlength=n), share)


def cached_routes(program: Program, placement: Placement) -> Routes:
    """`pe_routes`, built once per unchanged (program, placement): kept on the placement with
    a key that changes when the program's synapses or the slots change."""
    from spinnq.s2.program import fingerprint
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
    tick_s: float  # the run's tick (requested, or the shortest at the level / policy)
    tick_requested_s: float | None  # None: shortest feasible
    realtime: bool  # every PE finished every tick within the tick at its level
    overrun_steps: int  # steps at which some PE needed more than the tick at its level
    steps: int  # ticks emulated (input steps + depth by default)
    depth: int
    latency_s: float
    run_s: float  # the run's length: steps x tick (never stretched)
    energy_j: float
    base_j: float  # chip off + used PEs asleep, times run time
    dynamic_j: float  # busy cycles and MACs above sleep
    power_w: float  # average over the run
    pes: int
    chips: int
    busy_cycles: float  # total, all PEs and steps
    peak_load: float  # busiest PE-step: busy time at its level / tick (> 1: overrun)
    low_fraction: float  # share of PE-ticks at 0.5 V
    memory_max_bytes: int
    weights_bytes: int = 0  # weights stored over all PEs, at each projection's width
    chip_base_j: float = 0.0  # chips' off power x run time (the per-population rows lack it)
    tick_needed_s: float = 0.0  # the longest any PE-step needed at its level
    unmodelled_j: float = 0.0  # the chip model's unmodelled static power x run time (0: off)
    whole_chip_j: float = 0.0  # energy_j + the chips' unused PEs asleep (nothing powered off)
    energy_low_j: float = 0.0  # every constant at the low end of its sourced range
    energy_high_j: float = 0.0  # ... at the high end
    dynamic_low_j: float = 0.0
    dynamic_high_j: float = 0.0
    dvfs_lower_bound_j: float | None = None  # dvfs: per-PE-tick optimum at this tick
    dvfs_thresholds: dict[str, float] = field(default_factory=dict)  # dvfs: packets per tick
    chip_model: str = "spinnq defaults (spinnq/s2/chip.py)"
    levels: dict[str, float] = field(default_factory=dict)  # share of PE-ticks per level
    cycles_by_work: dict[str, float] = field(default_factory=dict)  # total cycles per item
    per_population: dict[str, dict] = field(default_factory=dict)
    per_pe: list[dict] = field(default_factory=list)
    kind: str = "modelled"
    # NeuroBench's activity metrics per population and in total (`s2/activity.py`)
    activity: dict = field(default_factory=dict)

    def chip_table(self) -> dict:
        """The `chip` entry of report.json."""
        keys = ("pes", "chips", "steps", "tick_s", "latency_s", "power_w", "energy_j",
                "operating_point", "realtime", "base_j", "dynamic_j", "chip_base_j",
                "memory_max_bytes", "energy_low_j", "energy_high_j", "dynamic_low_j",
                "dynamic_high_j", "whole_chip_j", "unmodelled_j", "tick_needed_s",
                "dvfs_lower_bound_j", "chip_model", "kind", "activity")
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


@dataclass
class Work:
    """Units of work of one inference, each (PEs, steps): `units[k]` is priced by the cycle
    cost `k` (`WORK`); `macs` by the accelerator; `packets` (received) drive `dvfs`."""

    units: dict[str, np.ndarray]
    macs: np.ndarray
    packets: np.ndarray

    def cycles(self, costs: CycleCosts) -> np.ndarray:
        """The core's busy cycles per PE-step (without the accelerator's)."""
        return sum(getattr(costs, k) * u for k, u in self.units.items())

    def busy(self, costs: CycleCosts) -> np.ndarray:
        """Cycles of work per PE-step, the accelerator's included (what the clock must fit)."""
        return self.cycles(costs) + self.macs / costs.macs_per_cycle


def _check_counters(run: Run) -> None:
    for pop, d in run.counters.items():
        for name in d:
            if name not in COUNTERS:
                raise InputError(f"unknown counter '{name}' of population '{pop}' (known: "
                                 f"{', '.join(COUNTERS)})")


def work(placement: Placement, run: Run, program: Program | None = None,
         routes: Routes | None = None) -> Work:
    """Units of work per PE and step of one inference (see the module docstring)."""
    if not placement.slots:
        raise InputError("the placement has no PEs")
    _check_counters(run)
    steps, n = int(run.steps), placement.pes
    sizes = _population_sizes(placement, program)
    models = {k: p.model for k, p in program.populations.items()} if program else {}
    if program is not None and routes is None:
        routes = cached_routes(program, placement)
    u = {k: np.zeros((n, steps)) for k in WORK}
    spikes, mac, packets = np.zeros((n, steps)), np.zeros((n, steps)), np.zeros((n, steps))
    rec = recorded_populations(run, program)
    u["tick_overhead"][:] = 1.0
    by_pop: dict[str, list[int]] = {}
    for i, s in enumerate(placement.slots):
        size = sizes.get(s.population, 0)
        if size <= 0 or not 0 <= s.start < s.stop <= size:
            raise InputError(f"PE slot neurons [{s.start}, {s.stop}) do not fit population "
                             f"'{s.population}' of {size} neurons")
        by_pop.setdefault(s.population, []).append(i)
    for pop, ids in by_pop.items():  # one population's slots at a time (vectorised)
        idx = np.array(ids)
        first = placement.slots[ids[0]]
        neurons = np.array([placement.slots[i].stop - placement.slots[i].start for i in ids],
                           dtype=np.float64)
        share = (neurons / sizes[pop])[:, None]
        c = {k: _counter(run, pop, k, steps, first) for k in COUNTERS}
        spikes[idx] = c["spikes"] * share
        u["neuron_update"][idx] = c["neuron_updates"] * share
        mac[idx] = c["macs"] * share
        if pop in rec:
            u["recorded_neuron"][idx] = neurons[:, None]
        # accelerated models' synaptic input is done by the `macs` (charged at the
        # accelerator's rate and energy), not by the core's synapse loop
        if models.get(pop) not in chip.ACCELERATED:
            syn = routes.syn_share[idx][:, None] if routes is not None else share
            u["syn_word"][idx] = c["syn_events"] * syn
        if routes is None:  # no program: one packet per source spike, spread by share
            packets[idx] = c["packets_in"] * share
    u["delay_buffer"] = u["neuron_update"] * chip.SYNAPSE_TYPES
    if routes is not None:
        packets = routes.received(spikes)
        u["lookup_step"] = packets * lookup_steps(routes.table_entries)[:, None]
        u["packet_sent"] = spikes * routes.qpes[:, None]
    else:
        u["lookup_step"] = packets.copy()
        u["packet_sent"] = spikes
    u["packet_rx"] = packets
    return Work(u, mac, packets)


def work_items(placement: Placement, run: Run, program: Program | None = None,
               costs: CycleCosts = CycleCosts(), routes: Routes | None = None
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cycles per group of work ({tick, receive, synapses, neurons, recording, send}:
    (PEs, steps)) and accelerator MACs (PEs, steps) of one inference."""
    w = work(placement, run, program, routes)
    return ({g: sum(getattr(costs, k) * w.units[k] for k in ks) for g, ks in WORK_GROUPS.items()},
            w.macs)


def busy_cycles(placement: Placement, run: Run, program: Program | None = None,
                costs: CycleCosts = CycleCosts()) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, macs), each (PEs, steps): the core's own cycles (without the accelerator's)
    and the accelerator MACs of every PE at every step of one inference."""
    w = work(placement, run, program)
    return w.cycles(costs), w.macs


def shortest_ticks(placement: Placement, run: Run, program: Program | None = None,
                   costs: CycleCosts = CycleCosts()) -> dict[str, float]:
    """The shortest tick every PE meets at every step, per performance level."""
    busy = work(placement, run, program).busy(costs)
    peak = float(busy.max()) if busy.size else 0.0
    return {lv.name: peak / lv.clock_hz for lv in LEVELS}


LEVEL_CLOCK_HZ = np.array([lv.clock_hz for lv in LEVELS])
LEVEL_SLEEP_W = np.array([lv.pe_sleep_w for lv in LEVELS])
LEVEL_E_CYCLE_J = np.array([lv.energy_per_cycle_j for lv in LEVELS])
LEVEL_E_MAC_J = np.array([chip.ENERGY_PER_MAC_J[lv.volts] for lv in LEVELS])
LEVEL_VOLTS = np.array([lv.volts for lv in LEVELS])


def dvfsrun_levels(placement: Placement, program: Program | None, packets: np.ndarray,
                model: ChipModel) -> tuple[np.ndarray, dict[str, float]]:
    """The chip software's DVFS policy: per PE and tick, the high level when the PE received
    at least its neuron model's packet threshold, else the low one. (level index (PEs,
    steps), {population: threshold})."""
    models = {k: p.model for k, p in program.populations.items()} if program else {}
    thr = {s.population: model.threshold(models.get(s.population, "default"))
           for s in placement.slots}
    t = np.array([thr[s.population] for s in placement.slots])
    return np.where(packets >= t[:, None], DVFS_HIGH, DVFS_LOW), thr


def _tick(busy: np.ndarray, op: str, tick_s: float | None) -> float:
    """The requested tick, or the shortest: at a fixed level the one every PE meets; at
    dvfs the low level's, which every PE meets whatever level the policy picks (the demo
    halves it after choosing its thresholds by hand: pass that tick as `tick_s`)."""
    if tick_s is not None:
        return float(tick_s)
    peak = float(busy.max()) if busy.size else 0.0
    if peak <= 0:
        raise InputError("no work in the run and no tick given: pass tick_s")
    level = chip.OPERATING_POINTS.get(op) or LEVELS[DVFS_LOW]
    return peak / level.clock_hz


def _price(w: Work, lvl: np.ndarray, op: str, tick_s: float | None, costs: CycleCosts,
           scale: float, static_w: float, chips: int) -> dict:
    """Energy terms of a run at given levels and constants (see the module docstring)."""
    cyc = w.cycles(costs)
    busy = cyc + w.macs / costs.macs_per_cycle
    tick = _tick(busy, op, tick_s)
    steps = busy.shape[1]
    run_s = steps * tick
    sleep = LEVEL_SLEEP_W[lvl] * tick
    dyn = cyc * (LEVEL_E_CYCLE_J[lvl] * scale) + w.macs * LEVEL_E_MAC_J[lvl]
    chip_off = chips * chip.CHIP_OFF_W * run_s
    unmodelled = chips * static_w * run_s
    need = busy / LEVEL_CLOCK_HZ[lvl]
    return {"costs": costs, "tick": tick, "run_s": run_s, "sleep": sleep, "dyn": dyn, "cyc": cyc,
            "busy": busy, "need": need, "chip_off": chip_off, "unmodelled": unmodelled,
            "total": chip_off + unmodelled + float(sleep.sum()) + float(dyn.sum())}


def _lower_bound(p: dict, w: Work, scale: float) -> float:
    """The per-PE-tick optimum at the run's tick: each PE-step at the cheapest of the 4
    levels that finishes its work within the tick (the fastest when none does)."""
    tick, busy, cyc = p["tick"], p["busy"], p["cyc"]
    best = None
    for k in range(len(LEVELS)):
        cost = (LEVEL_SLEEP_W[k] * tick + cyc * LEVEL_E_CYCLE_J[k] * scale
                + w.macs * LEVEL_E_MAC_J[k])
        cost = np.where(busy <= tick * LEVEL_CLOCK_HZ[k] * (1 + 1e-12), cost, np.inf)
        best = cost if best is None else np.minimum(best, cost)
    top = LEVEL_SLEEP_W[-1] * tick + cyc * LEVEL_E_CYCLE_J[-1] * scale + w.macs * LEVEL_E_MAC_J[-1]
    best = np.where(np.isfinite(best), best, top)
    return p["chip_off"] + p["unmodelled"] + float(best.sum())


def run_levels(placement: Placement, program: Program | None, w: Work, op: str,
               model: ChipModel) -> tuple[np.ndarray, dict[str, float]]:
    """The level index of every PE-step (PEs, steps) at `op`, and the dvfs thresholds."""
    if op == "dvfs":
        return dvfsrun_levels(placement, program, w.packets, model)
    return np.full(w.packets.shape, LEVEL_NAMES.index(op)), {}


def energy(placement: Placement, run: Run, program: Program | None = None, op: str = "0.8V",
           tick_s: float | None = None, costs: CycleCosts | None = None,
           input_steps: int | None = None, model: ChipModel | None = None) -> Cost:
    """Model tick, latency, power and energy of one inference (see the module docstring).

    `program` gives population sizes, the depth and the routing structure; without it the
    sizes come from the placement, every spike is one packet and the depth is 0.
    `input_steps` defaults to `run.steps - depth` (the emulator runs T + depth steps).
    `model`: the chip model (constants, their ranges, the DVFS thresholds; default
    `ChipModel.default()`); `costs` overrides its cycle costs (then the range is not given:
    `energy_low_j` = `energy_high_j` = `energy_j`)."""
    _check_op(op)
    if tick_s is not None and not (np.isfinite(tick_s) and tick_s > 0):
        raise InputError(f"tick must be a positive number of seconds, got {tick_s}")
    model = model or ChipModel.default()
    w = work(placement, run, program)
    lvl, thresholds = run_levels(placement, program, w, op, model)
    values = {c: model.values(c) for c in CORNERS}
    static = model.unmodelled_static_w.value
    # explicit `costs`: the same constants at every corner (no range)
    corner = {c: c if costs is None else "value" for c in CORNERS}
    priced = {c: _price(w, lvl, op, tick_s, costs or CycleCosts.of(model, corner[c]),
                        values[corner[c]]["energy_per_cycle_scale"], static, placement.chips)
              for c in CORNERS}
    p = priced["value"]
    scale = values["value"]["energy_per_cycle_scale"]
    c = _assemble(placement, run, program, op, tick_s, input_steps, w, lvl, p)
    c.energy_low_j, c.energy_high_j = priced["low"]["total"], priced["high"]["total"]
    c.dynamic_low_j = float(priced["low"]["dyn"].sum())
    c.dynamic_high_j = float(priced["high"]["dyn"].sum())
    if op == "dvfs":
        c.dvfs_lower_bound_j = _lower_bound(p, w, scale)
        c.dvfs_thresholds = thresholds
    c.chip_model = model.source
    c.activity = activity.metrics(program, run)
    unused = placement.chips * chip.PES_PER_CHIP - placement.pes
    idle = LEVELS[DVFS_LOW] if op == "dvfs" else chip.OPERATING_POINTS[op]
    c.whole_chip_j = c.energy_j + max(unused, 0) * idle.pe_sleep_w * p["run_s"]
    return c


def _assemble(placement: Placement, run: Run, program: Program | None, op: str,
              tick_s: float | None, input_steps: int | None, w: Work, lvl: np.ndarray,
              p: dict) -> Cost:
    """The `Cost` of the priced run `p`, per PE and population."""
    tick, run_s, sleep_j, dyn_j, need = p["tick"], p["run_s"], p["sleep"], p["dyn"], p["need"]
    steps = need.shape[1]
    over = need > tick * (1 + 1e-12)
    overruns = int(over.any(axis=0).sum())
    volts = LEVEL_VOLTS[lvl]
    pe_j = (sleep_j + dyn_j).sum(axis=1)
    depth = int(program.depth) if program is not None else 0
    n_in = input_steps if input_steps is not None else max(steps - depth, 1)
    busy = p["busy"]
    cols = {"busy_cycles": busy.sum(axis=1), "peak_cycles": busy.max(axis=1, initial=0.0),
            "energy_j": pe_j, "base_j": sleep_j.sum(axis=1), "dynamic_j": dyn_j.sum(axis=1),
            "low_fraction": (volts < HIGH.volts).mean(axis=1) if steps else np.zeros(len(pe_j))}
    cols = {k: v.tolist() for k, v in cols.items()}
    per_pe, per_pop = [], {}
    for i, s in enumerate(placement.slots):
        row = {"chip": s.chip, "pe": s.pe, "population": s.population,
               "neurons": s.stop - s.start, **{k: v[i] for k, v in cols.items()},
               "memory_bytes": s.bytes}
        per_pe.append(row)
        pop = per_pop.setdefault(s.population, {"pes": 0, "neurons": 0, "busy_cycles": 0.0,
                                                "energy_j": 0.0, "base_j": 0.0,
                                                "dynamic_j": 0.0, "weights_bytes": 0})
        for k in ("busy_cycles", "energy_j", "base_j", "dynamic_j", "neurons"):
            pop[k] += row[k]
        pop["pes"] += 1
        pop["weights_bytes"] += int(s.memory.get("weights", 0))
    for name, pop in per_pop.items():
        pop["counters"] = {k: float(np.asarray(v).sum()) for k, v in run.counters[name].items()}
        ins = [] if program is None else [p for p in program.projections if p.post == name]
        pop["bits"] = ins[0].bits if ins else None  # the width its weights are stored in
    costs_items = {g: float(sum(getattr(p["costs"], k) * w.units[k].sum() for k in ks))
                   for g, ks in WORK_GROUPS.items()}
    total = p["total"]
    return Cost(
        operating_point=op, tick_s=tick, tick_requested_s=tick_s, realtime=overruns == 0,
        overrun_steps=overruns, steps=steps, depth=depth, latency_s=(n_in + depth) * tick,
        run_s=run_s, energy_j=total, base_j=p["chip_off"] + float(sleep_j.sum()),
        dynamic_j=float(dyn_j.sum()), power_w=total / run_s if run_s > 0 else 0.0,
        pes=placement.pes, chips=placement.chips, busy_cycles=float(p["busy"].sum()),
        peak_load=float(need.max() / tick) if need.size else 0.0,
        low_fraction=float((volts < HIGH.volts).mean()) if volts.size else 0.0,
        memory_max_bytes=max((s.bytes for s in placement.slots), default=0),
        weights_bytes=sum(int(s.memory.get("weights", 0)) for s in placement.slots),
        chip_base_j=p["chip_off"], tick_needed_s=float(need.max()) if need.size else 0.0,
        unmodelled_j=p["unmodelled"],
        levels={lv.name: float((lvl == k).mean()) if lvl.size else 0.0
                for k, lv in enumerate(LEVELS)},
        cycles_by_work=costs_items | {"accelerator": float(p["busy"].sum() - p["cyc"].sum())},
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
    an array of `steps`; a spike of step t reaches its targets at step t + 1) instead of an
    emulator run: for planning before training, and for
    the calibration against published runs. Populations missing from `rates` do not fire."""
    z = np.zeros(steps)
    out = {n: {c: z.copy() for c in COUNTERS} for n in program.populations}
    for n, pop in program.populations.items():
        r = np.broadcast_to(np.asarray(rates.get(n, 0.0), dtype=np.float64), (steps,))
        if np.any(r < 0) or np.any(r > 1):
            raise InputError(f"firing rate of '{n}' must lie in [0, 1] spikes per step")
        out[n]["spikes"] = r * pop.size
        out[n]["neuron_updates"] = np.full(steps, 0.0 if pop.model == "spike_list" else pop.size)
    for p in program.projections:  # spikes of step t arrive at step t + 1, as emulated
        pre_pop = program.populations[p.pre]
        pre = np.concatenate([[0.0], out[p.pre]["spikes"][:-1]])
        out[p.post]["syn_events"] += pre * _fan_out(p, program)
        out[p.post]["packets_in"] += pre
        if p.kind == "conv":  # as the emulator counts: the whole frame when any input spiked
            r = np.clip(pre / max(pre_pop.size, 1), 0.0, 1.0)
            frame = program.populations[p.post].size * int(np.prod(np.shape(p.weight)[1:]))
            out[p.post]["macs"] += frame * (1 - (1 - r) ** pre_pop.size)
    return out


def dynamic_share_bounds(energy_j: float, pes: int, steps: int, tick_s: float = REALTIME_TICK_S
                         ) -> tuple[float, float]:
    """The dynamic part a published total implies: total minus the asleep floor at 0.8 V,
    with the unused PEs off (upper) or asleep (lower), over steps x tick."""
    t = steps * tick_s
    used = (chip.CHIP_OFF_W + pes * HIGH.pe_sleep_w) * t
    all_asleep = chip.CHIP_ASLEEP_W[HIGH.volts] * t * math.ceil(pes / chip.PES_PER_CHIP)
    return energy_j - max(used, all_asleep), energy_j - min(used, all_asleep)
