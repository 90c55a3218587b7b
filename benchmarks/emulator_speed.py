"""How fast is the SpiNNaker2 emulator, and how far from what one core can do? The seed
DVS-gesture network: the event engine (numba) on 1 and 2 threads, the torch engine, the
float reference simulator and snnTorch float inference of the same network (same weights,
same process, same thread counts), against the one-core limit for the work the run counted.

    .venv/bin/python benchmarks/emulator_speed.py [--rounds 5] [--steps 600] [--threads 1 2]

Honest by construction:
- every contender runs the same repetitions: `--rounds` rounds, and in each round every
  contender once at `--small` and once at `--batch` samples, contenders interleaved (a load
  spike hits all of them); figures are medians over rounds;
- per-sample times are *marginal*: (t(batch) - t(small)) / (batch - small), so fixed costs
  (numba dispatch, input checks, set-up) do not flatter or hurt anyone; the plain
  t(batch)/batch is kept too;
- the machine load (os.getloadavg) is recorded before and after every round, and the CPU
  time of every measurement (wall > CPU means waiting for a core: a shared box);
- the one-core limit is measured in the same rounds by microbenchmarks of the same loops
  (int8 -> int32 scatter-add runs, branch-free float32 LIF update; `one_core_limit.py`),
  sized from the run's own counters; the ratio is the engine's marginal time over it, in
  wall-clock and in CPU time (on a loaded box the CPU-time ratio leaves out the waiting);
- the event engine splits the batch over threads (plain threads, the kernel releases the
  GIL); the other contenders use torch's threads. 2-thread speed-ups mean little on a box
  whose load average is near or above its core count, or whose two vCPUs share one core:
  each round also measures the machine's own 2-thread gain on the engine's kind of work
  (`one_core_limit.two_thread_ceiling`, private arrays per thread), to read them against.
- Brian2 (cpp_standalone) is not run here: it needs its own virtualenv (numpy < 2.4) and a
  C++ build per batch size; `brian2_contender.py` runs it on the same integer program.

Network (mission.md, seed paper B; 25,504 weights, no biases): 2x32x32 -> Conv 5x5 s2 p1 16
-> LIF -> Conv 3x3 p1 16 -> LIF -> SumPool 2 -> Conv 3x3 p1 8 -> LIF -> SumPool 2 -> Flatten
-> Linear 256 -> LIF -> Linear 11 -> LIF. snnTorch Leaky beta 0.93, threshold 1, reset by
subtraction; in NIR: tau = dt / (1 - beta), r = tau / dt, so forward Euler is exactly
v <- beta v + W x. Random weights (seeded), scaled so every layer fires; input: Bernoulli
spikes at `--density`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import nir
import numpy as np
import torch

from spinnq.graph.model import from_nir
from spinnq.graph.simulate import SimConfig, simulate
from spinnq.s2 import S2Config, compile, emulate, place

sys.path.insert(0, str(Path(__file__).parent))  # one_core_limit, seed_net: beside this file
from seed_net import BETA, seed_network  # noqa: E402


def snntorch_model(g: nir.NIRGraph):
    """The same network in snnTorch (float), weights copied from the graph."""
    import snntorch as snn
    from torch import nn

    def conv(name, stride, pad):
        wt = torch.as_tensor(g.nodes[name].weight)
        m = nn.Conv2d(wt.shape[1], wt.shape[0], wt.shape[2], stride, pad, bias=False)
        m.weight.data.copy_(wt)
        return m

    def lin(name):
        wt = torch.as_tensor(g.nodes[name].weight)
        m = nn.Linear(wt.shape[1], wt.shape[0], bias=False)
        m.weight.data.copy_(wt)
        return m

    leaky = lambda: snn.Leaky(beta=BETA, threshold=1.0, reset_mechanism="subtract")  # noqa: E731
    layers = [conv("c1", 2, 1), conv("c2", 1, 1), conv("c3", 1, 1), lin("fc1"), lin("fc2")]
    neurons = [leaky() for _ in layers]

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:  # x (B, T, 2, 32, 32) -> output spikes (B, T, 11)
        mems = [n.init_leaky() for n in neurons]
        out = []
        for t in range(x.shape[1]):
            h = x[:, t]
            for i, (layer, neuron) in enumerate(zip(layers, neurons, strict=True)):
                if i == 3:
                    h = h.flatten(1)
                h, mems[i] = neuron(layer(h), mems[i])
                if i in (1, 2):
                    h = torch.nn.functional.avg_pool2d(h, 2, divisor_override=1)
            out.append(h)
        return torch.stack(out, 1)

    return run


def timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s, result) of one call."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def median(xs: list[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=np.float64)))


def contenders(a, graph, g_nir, xt: torch.Tensor) -> dict:
    """name -> (threads, run(batch) -> result). Programs are compiled (and warmed) once."""
    out = {}
    prog = compile(graph, S2Config(reset="subtract", engine="events"))
    prog_t = compile(graph, S2Config(reset="subtract", engine="torch", chunk=a.chunk))
    emulate(prog, xt[:1, :8])  # numba compiles or loads its cache once
    emulate(prog_t, xt[:1, :8])
    model = None if a.skip_snntorch else snntorch_model(g_nir)
    for th in a.threads:
        out[f"events_{th}t"] = (th, lambda b: emulate(prog, xt[:b]))
    for th in a.baseline_threads or a.threads:
        if not a.skip_torch_engine:
            out[f"torch_engine_{th}t"] = (th, lambda b: emulate(prog_t, xt[:b]))
        if not a.skip_reference:
            out[f"reference_{th}t"] = (th, lambda b: simulate(graph, xt[:b],
                                                              SimConfig(reset="subtract")))
        if model is not None:
            out[f"snntorch_{th}t"] = (th, lambda b: model(xt[:b]))
    return out, prog


def main(argv: list[str] | None = None) -> dict:
    from one_core_limit import limit, two_thread_ceiling

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--small", type=int, default=4, help="the smaller batch of the marginal")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--baseline-threads", type=int, nargs="+", default=None,
                    help="thread counts of the other contenders (default: --threads); torch "
                         "on 2 threads of an overloaded box can stall for minutes")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=S2Config().chunk)
    ap.add_argument("--limit-s", type=float, default=0.2,
                    help="seconds per one-core microbenchmark")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--skip-snntorch", action="store_true")
    ap.add_argument("--skip-torch-engine", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                    "emulator_speed.json")
    a = ap.parse_args(argv)
    if not 1 <= a.small < a.batch:
        ap.error("need 1 <= --small < --batch")
    threads0 = torch.get_num_threads()
    torch.manual_seed(0)
    g_nir = seed_network()
    graph = from_nir(g_nir)
    rng = np.random.default_rng(1)
    x = (rng.random((a.batch, a.steps, 2, 32, 32)) < a.density).astype(np.float32)
    xt = torch.from_numpy(x)
    runs, prog = contenders(a, graph, g_nir, xt)
    place(prog)
    rec: dict = {k: {"marginal_ms": [], "marginal_cpu_ms": [], "per_sample_ms": [],
                     "cpu_over_wall": []} for k in runs}
    limits, loads, ceilings = [], [], []
    counters = None
    for r in range(a.rounds):
        load_before = os.getloadavg()
        names = list(runs)
        names = names[r % len(names):] + names[:r % len(names)]  # rotate: no fixed slot
        for name in names:
            th, fn = runs[name]
            torch.set_num_threads(th)
            ws, cs = {}, {}
            for b in (a.small, a.batch):
                ws[b], cs[b], out = timed(lambda fn=fn, b=b: fn(b))
                if b == a.batch and name.startswith("events") and counters is None:
                    counters = out.counters
            rec[name]["marginal_ms"].append(1e3 * (ws[a.batch] - ws[a.small])
                                            / (a.batch - a.small))
            rec[name]["marginal_cpu_ms"].append(1e3 * (cs[a.batch] - cs[a.small])
                                                / (a.batch - a.small))
            rec[name]["per_sample_ms"].append(1e3 * ws[a.batch] / a.batch)
            rec[name]["cpu_over_wall"].append(cs[a.batch] / ws[a.batch])
        torch.set_num_threads(1)
        limits.append(limit(prog, counters, a.limit_s))
        if "events_2t" in rec:  # the machine's own 2-thread gain on this work, this round
            ceilings.append(two_thread_ceiling(a.limit_s))
        loads.append({"before": load_before, "after": os.getloadavg()})
        print(f"round {r + 1}/{a.rounds}: load {loads[-1]['after'][0]:.2f}; marginal ms per "
              "sample: " + ", ".join(f"{k} {v['marginal_ms'][-1]:.1f}" for k, v in rec.items())
              + f"; one-core limit {1e3 * limits[-1]['limit_s_per_sample']:.1f}"
              + (f"; 2-thread ceiling {ceilings[-1]:.2f}x" if ceilings else ""), flush=True)
    torch.set_num_threads(threads0)
    res: dict = {
        "what": "seed DVS network, measured wall-clock (and CPU time); medians over "
                "interleaved rounds of the marginal time per sample (see the docstring)",
        "machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor(), "load_average": loads},
        "batch": a.batch, "small": a.small, "steps": a.steps, "density": a.density,
        "rounds": a.rounds, "threads": a.threads,
        "baseline_threads": a.baseline_threads or a.threads,
        "work_per_sample": {"syn_events": float(sum(c["syn_events"].sum()
                                                    for c in counters.values())),
                            "neuron_updates": float(sum(c["neuron_updates"].sum()
                                                        for c in counters.values())),
                            "chip_steps": int(len(next(iter(counters.values()))["spikes"]))},
        "spikes_per_sample": {n: float(c["spikes"].sum()) for n, c in counters.items()},
        "brian2_cpp_standalone": "not run here: benchmarks/brian2_contender.py (its own "
                                 "virtualenv, numpy < 2.4)",
    }
    for name, d in rec.items():
        res[name] = {"marginal_ms_per_sample": median(d["marginal_ms"]),
                     "marginal_cpu_ms_per_sample": median(d["marginal_cpu_ms"]),
                     "per_sample_ms": median(d["per_sample_ms"]),
                     "cpu_over_wall": median(d["cpu_over_wall"]), "rounds": d}
    lim = [x["limit_s_per_sample"] * 1e3 for x in limits]
    lim_own = [x["limit_engine_loop_s_per_sample"] * 1e3 for x in limits]
    lim_cpu = [x["limit_cpu_s_per_sample"] * 1e3 for x in limits]
    res["one_core_limit"] = {"ms_per_sample": median(lim), "cpu_ms_per_sample": median(lim_cpu),
                             "engine_loop_ms_per_sample": median(lim_own),
                             "rounds_ms": lim, "rounds_cpu_ms": lim_cpu,
                             "rounds_engine_loop_ms": lim_own,
                             "last_round": limits[-1]}
    ev1 = rec.get("events_1t", {}).get("marginal_ms")
    ratios: dict = {"chip_realtime_ms_per_sample": float(a.steps)}
    if ev1:
        ratios["events_1t_over_one_core_limit"] = median(
            [e / li for e, li in zip(ev1, lim, strict=True)])  # paired by round
        # CPU time: what a 1-thread run costs in core time, the waiting for a core on a
        # loaded box left out (both sides measured the same way)
        ratios["events_1t_over_one_core_limit_cpu"] = median(
            [e / li for e, li in zip(rec["events_1t"]["marginal_cpu_ms"], lim_cpu,
                                     strict=True)])
        ratios["events_1t_over_engine_loop_limit"] = median(
            [e / li for e, li in zip(ev1, lim_own, strict=True)])
        ratios["events_1t_vs_chip_realtime"] = a.steps / median(ev1)
        for name in rec:
            if name != "events_1t" and name.endswith("_1t"):
                ratios[f"{name}_over_events_1t"] = median(
                    [o / e for o, e in zip(rec[name]["marginal_ms"], ev1, strict=True)])
        if "events_2t" in rec:
            gains = [e / t for e, t in zip(ev1, rec["events_2t"]["marginal_ms"], strict=True)]
            ratios["events_2t_speedup_over_1t"] = median(gains)
            ratios["two_thread_ceiling"] = median(ceilings)
            ratios["two_thread_ceiling_rounds"] = ceilings
            ratios["events_2t_speedup_over_ceiling"] = median(
                [g / c for g, c in zip(gains, ceilings, strict=True)])
    res["ratios"] = ratios
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=2))
    tmp.replace(a.out)
    print(json.dumps(ratios | {k: res[k]["marginal_ms_per_sample"] for k in rec}
                     | {"one_core_limit_ms": res["one_core_limit"]["ms_per_sample"]}, indent=2))
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    main()
