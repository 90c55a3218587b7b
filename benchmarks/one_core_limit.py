"""What one core can do for the work an emulator run counted: microbenchmarks of the two
loops the event engine is made of, each stripped of everything but its arithmetic, sized from
the run's own counters.

- synaptic events: scatter-add of int8 weight runs into an int32 accumulator, at
  precomputed random starts (no spike decoding, no geometry, no counters), with the engine's
  own `add_run` and with a loop whose run length is a compile-time constant (fully unrolled
  SIMD; for the common lengths 8, 16, 32): the faster of the two is the limit; one loop per
  target population
  with that population's run length (its conv's output channels per group, or its dense
  fan-out) and size;
- neuron updates: the branch-free float32 LIF update over contiguous arrays of the
  population's size (no spike collection, no recording).

limit (s per sample) = sum over populations of syn_events / add rate + neuron_updates /
update rate (also reported with the engine's own add loop alone). It is a floor for the
counted work, not for the engine's algorithm: the engine also decodes spikes, walks kernel
geometry, collects spikes and keeps counters.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from spinnq.s2.events import add_run
from spinnq.s2.program import Program


@njit(cache=True, nogil=True)
def _scatter(acc, table, starts, rows, L, reps):
    flat = table.reshape(table.size)
    for _ in range(reps):
        for k in range(starts.shape[0]):
            add_run(acc, starts[k], flat, rows[k] * L, L)  # the engine's own run add


@njit(cache=True, nogil=True)
def _scatter_fixed(acc, table, starts, rows, L, reps):
    """`_scatter` with the run length a constant of the loop (8, 16 or 32)."""
    for _ in range(reps):
        for k in range(starts.shape[0]):
            p, w = np.uint64(starts[k]), rows[k]
            if L == 16:
                for c in range(np.uint64(16)):
                    acc[p + c] += table[w, c]
            elif L == 8:
                for c in range(np.uint64(8)):
                    acc[p + c] += table[w, c]
            else:
                for c in range(np.uint64(32)):
                    acc[p + c] += table[w, c]


@njit(cache=True, nogil=True)
def _lif(v, cur, fired, alpha, th, reps):
    for _ in range(reps):
        for i in range(v.shape[0]):
            x = alpha[i] * v[i] + np.float32(cur[i])
            f = x > th[i]
            y = x - th[i]
            v[i] = y if f else x
            fired[i] = f


def _timed(fn, *args, target_s: float) -> tuple[float, float]:
    """(wall, CPU) seconds per repetition: calibrated to run about `target_s`, the median of
    3 runs (the statistic the benchmark uses for the engine too)."""
    fn(*args, 1)
    reps = 1
    while True:
        t = time.perf_counter()
        fn(*args, reps)
        if time.perf_counter() - t > target_s / 4:
            break
        reps *= 4
    walls, cpus = [], []
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        fn(*args, reps)
        walls.append((time.perf_counter() - t) / reps)
        cpus.append((time.process_time() - c) / reps)
    return float(np.median(walls)), float(np.median(cpus))


def run_length(program: Program, name: str) -> int:
    """Contiguous adds per run into population `name`: the conv's channels per group, else the
    dense fan-out (its whole size)."""
    runs = [p.weight.shape[0] // int(p.conv.get("groups", 1)) if p.kind != "dense"
            else program.populations[name].size
            for p in program.projections if p.post == name]
    return max(1, min(runs)) if runs else 1


def add_rate(n: int, L: int, target_s: float = 0.2,
             seed: int = 0) -> tuple[float, float, float]:
    """int8 -> int32 scatter-adds per second into an accumulator of n, runs of L: (best wall,
    best CPU, wall with the engine's own `add_run` alone)."""
    rng = np.random.default_rng(seed)
    L = min(L, n)
    runs = max(1, min(200_000, (1 << 21) // L))
    acc = np.zeros(n, np.int32)
    table = rng.integers(-127, 128, (64, L), dtype=np.int8)
    starts = rng.integers(0, n - L + 1, runs).astype(np.int64)
    rows = rng.integers(0, 64, runs).astype(np.int64)
    wall, cpu = _timed(_scatter, acc, table, starts, rows, L, target_s=target_s)
    own = runs * L / wall
    if L in (8, 16, 32):  # the machine's best for this length, if better than the engine's
        w2, c2 = _timed(_scatter_fixed, acc, table, starts, rows, L, target_s=target_s)
        wall, cpu = min(wall, w2), min(cpu, c2)
    return runs * L / wall, runs * L / max(cpu, 1e-12), own


def update_rate(n: int, target_s: float = 0.2, seed: int = 0) -> tuple[float, float]:
    """Branch-free float32 LIF updates per second (wall, CPU) over arrays of n neurons."""
    rng = np.random.default_rng(seed)
    n = max(n, 64)
    v = np.zeros(n, np.float32)
    cur = rng.integers(-20, 21, n).astype(np.int32)
    alpha, th = np.full(n, 0.93, np.float32), np.full(n, 40.0, np.float32)
    fired = np.zeros(n, np.uint8)
    wall, cpu = _timed(_lif, v, cur, fired, alpha, th, target_s=target_s)
    return n / wall, n / max(cpu, 1e-12)


def two_thread_ceiling(target_s: float = 0.2, L: int = 48, seed: int = 0) -> float:
    """What two threads get over one on this machine right now, for the engine's kind of work:
    the engine's run-add (int8 runs into an int32 accumulator), each thread on arrays of its
    own (nothing shared, no GIL). Timed as one thread doing both halves, then two threads
    doing one each, interleaved 3 times, the median ratio. A VM whose two vCPUs share one
    core's vector units gives ~1x here, however good the engine's threading."""
    rng = np.random.default_rng(seed)

    def half():
        n = 3600
        return (np.zeros(n, np.int32), rng.integers(-127, 128, (64, L), dtype=np.int8),
                rng.integers(0, n - L + 1, 20_000).astype(np.int64),
                rng.integers(0, 64, 20_000).astype(np.int64))

    a, b = half(), half()
    _scatter(*a, L, 1)
    reps = max(1, int(target_s / 2 / max(_timed(_scatter, *a, L, target_s=0.02)[0], 1e-9)))
    ratios = []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            t = time.perf_counter()
            _scatter(*a, L, reps)
            _scatter(*b, L, reps)
            one = time.perf_counter() - t
            t = time.perf_counter()
            list(pool.map(lambda h: _scatter(*h, L, reps), (a, b)))
            ratios.append(one / (time.perf_counter() - t))
    return float(np.median(ratios))


def limit(program: Program, counters: dict, target_s: float = 0.2) -> dict:
    """The one-core floor (s per sample; wall-clock, and CPU time) for a run's counters
    (per-inference sums), by population and in total, with the measured rates."""
    pops, total, total_cpu, total_own = {}, 0.0, 0.0, 0.0
    for name, pop in program.populations.items():
        if name == program.input:
            continue
        syn = float(np.sum(counters[name]["syn_events"]))
        upd = float(np.sum(counters[name]["neuron_updates"]))
        L = run_length(program, name)
        a, a_cpu, a_own = add_rate(pop.size, L, target_s) if syn else (math.inf,) * 3
        u, u_cpu = update_rate(pop.size, target_s)
        s, s_cpu = syn / a + upd / u, syn / a_cpu + upd / u_cpu
        pops[name] = {"syn_events": syn, "neuron_updates": upd, "run_length": L,
                      "adds_per_s": a if syn else None,
                      "adds_per_s_engine_loop": a_own if syn else None, "updates_per_s": u,
                      "limit_s": s, "limit_cpu_s": s_cpu}
        total += s
        total_cpu += s_cpu
        total_own += syn / a_own + upd / u
    return {"limit_s_per_sample": total, "limit_cpu_s_per_sample": total_cpu,
            "limit_engine_loop_s_per_sample": total_own, "populations": pops}
