"""Place a compiled program on PEs and chips, with a memory check per PE.

Each population is cut into PE-sized slices of `neurons_per_pe` neurons (per population
override, else the global override, else the model's default in `chip.py`; a default that
does not fit the memory budget is lowered until it does, an explicit one is refused). The
memory of a slice is computed from what it must hold (`memory`): the weights of every
projection into its neurons in their storage format, the neuron state, recording and fixed
buffers. PEs are filled chip by chip (`pes_per_chip` usable PEs each); routing needs one
multicast entry per source PE and projection on each chip that source or target touch.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from spinnq.errors import CompileError
from spinnq.s2 import chip
from spinnq.s2.compile import S2Config
from spinnq.s2.program import PESlot, PlaceConfig, Placement, Population, Program, Projection


def _weights_bytes(proj: Projection, pre: Population, post: Population, n_local: int) -> int:
    """Bytes a PE holding `n_local` target neurons stores for this projection: dense rows at
    the projection's width (`proj.bits`: 4-bit weights take half the bytes of 8-bit ones);
    conv kernels as int8 (what the MAC array multiplies); sparse rows as synapse words."""
    if proj.kind == "conv":  # the whole kernel (int8) + one input frame (bits) for the MAC array
        return int(np.prod(proj.weight.shape)) + math.ceil(pre.size / 8)
    if proj.kind == "pool" or post.model in chip.SPARSE_MODELS:
        nnz_per_post = np.count_nonzero(proj.weight) / max(1, post.size)
        return int(math.ceil(nnz_per_post * n_local)) * chip.SYNAPSE_WORD_BYTES
    return int(math.ceil(pre.size * n_local * proj.bits / 8))  # dense weight matrix rows


def memory(program: Program, name: str, n_local: int) -> dict[str, int]:
    """Bytes one PE needs for `n_local` neurons of population `name`, by kind."""
    pop = program.populations[name]
    w = sum(_weights_bytes(p, program.populations[p.pre], pop, n_local)
            for p in program.projections if p.post == name)
    return {"weights": int(w), "state": chip.MODELS[pop.model].state_bytes * n_local,
            "recording": chip.RECORD_BYTES_PER_NEURON * n_local, "fixed": chip.PE_FIXED_BYTES}


def _neurons_per_pe(program: Program, pop: Population, cfg: PlaceConfig) -> int:
    budget = cfg.memory_per_pe
    explicit = pop.neurons_per_pe or cfg.neurons_per_pe.get(pop.name) or 0
    n = min(pop.size, explicit or chip.MODELS[pop.model].neurons_per_pe)
    need = sum(memory(program, pop.name, n).values())
    if need <= budget:
        return n
    one = sum(memory(program, pop.name, 1).values())
    if one > budget:
        raise CompileError(f"population '{pop.name}' ({pop.model}, {pop.size:,} neurons) cannot "
                           f"fit any PE: a single neuron needs {one:,} bytes, over the limit of "
                           f"{budget:,} bytes per PE", node=pop.name)
    if explicit:
        raise CompileError(f"population '{pop.name}': {explicit} neurons per PE need "
                           f"{need:,} bytes, over the limit of {budget:,} bytes per PE; use "
                           f"fewer neurons per PE", node=pop.name)
    lo, hi = 1, n  # largest n that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(memory(program, pop.name, mid).values()) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def place(program: Program, cfg: PlaceConfig | S2Config | None = None) -> Placement:
    """Assign every population's neurons to PEs of one or more chips; see module docstring."""
    cfg = cfg.placement if isinstance(cfg, S2Config) else cfg or PlaceConfig()
    slots: list[PESlot] = []
    for name, pop in program.populations.items():
        n = _neurons_per_pe(program, pop, cfg)
        for start in range(0, pop.size, n):
            stop = min(start + n, pop.size)
            k = len(slots)
            slots.append(PESlot(k // cfg.pes_per_chip, k % cfg.pes_per_chip, name, start, stop,
                                memory(program, name, stop - start)))
    chips = slots[-1].chip + 1 if slots else 0
    if chips > cfg.max_chips:
        raise CompileError(f"the network needs {len(slots):,} PEs = {chips} chips, over the "
                           f"limit of {cfg.max_chips} chips")
    by_pop: dict[str, list[PESlot]] = defaultdict(list)
    for s in slots:
        by_pop[s.population].append(s)
    per_chip: dict[int, int] = defaultdict(int)
    for p in program.projections:
        touched = {s.chip for s in by_pop[p.pre]} | {s.chip for s in by_pop[p.post]}
        for c in touched:
            per_chip[c] += len(by_pop[p.pre])
    for c, entries in per_chip.items():
        if entries > chip.ROUTER_ENTRIES:
            raise CompileError(f"chip {c} needs {entries:,} routing entries, over the router's "
                               f"{chip.ROUTER_ENTRIES:,}")
    return Placement(slots, chips, cfg.pes_per_chip, cfg.memory_per_pe,
                     sum(per_chip.values()))


def summarize(program: Program, placement: Placement, run=None) -> dict:
    """Plain-JSON summary: populations, PEs, chips, memory per PE, counters (if a run)."""
    pops = {}
    for name, pop in program.populations.items():
        ins = [p for p in program.projections if p.post == name]
        mine = [s for s in placement.slots if s.population == name]
        pops[name] = {
            "model": pop.model, "size": pop.size, "shape": list(pop.shape), "pes": len(mine),
            "neurons_per_pe": max((s.stop - s.start for s in mine), default=0),
            "memory_per_pe_max": max((s.bytes for s in mine), default=0),
            "weight_scale": ins[0].w_scale if ins else None,
            "weight_range": ([int(min(p.weight.min() for p in ins)),
                              int(max(p.weight.max() for p in ins))] if ins else None),
            "bits": ins[0].bits if ins else None,
            "weights_bytes": sum(s.memory.get("weights", 0) for s in mine),
            "saturations": int(sum(p.saturated for p in ins)),
            "read_out": pop.record_only}
    big = max(placement.slots, key=lambda s: s.bytes, default=None)
    out = {"pes": placement.pes, "chips": placement.chips,
           "pes_per_chip": placement.pes_per_chip, "memory_budget": placement.memory_budget,
           "memory_per_pe": [s.bytes for s in placement.slots],
           "largest_consumer": None if big is None else {
               "population": big.population, "chip": big.chip, "pe": big.pe,
               "bytes": big.bytes, "memory": dict(big.memory)},
           "weights_bytes": sum(s.memory.get("weights", 0) for s in placement.slots),
           "routing_entries": placement.routing_entries, "depth": program.depth,
           "populations": pops, "notes": list(program.notes)}
    if run is not None:
        out["steps"] = run.steps
        out["run_saturations"] = run.saturations
        out["counters"] = {n: {k: float(np.asarray(v).sum()) for k, v in d.items()}
                           for n, d in run.counters.items()}
    return out
