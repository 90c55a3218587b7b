"""Memory and time of the energy model on the scaling benchmark's dense networks (Input(100)
-> Linear -> LIF(N), benchmarks/scaling.py), against what deploy itself needs: the PE-to-PE
routes are a sparse list, so the model's memory grows with PEs x steps, not PEs squared (the
old dense PE x PE float matrix would have taken PEs^2 x 8 bytes).

    .venv/bin/python benchmarks/energy_scaling.py [--sizes 1e6] [--steps 20]
    -> benchmarks/results/energy_scaling.json
    .venv/bin/python benchmarks/energy_scaling.py --commands [--sizes 1e6 4e6] [--work DIR]
    -> benchmarks/results/energy_memory.json: peak resident memory and CPU time of
       `spinnq deploy`, `spinnq energy` and `spinnq evaluate --target chip` on the same .nir
       file and input (GNU time, one fresh process each): energy and evaluate must fit in
       what deploy needs (tests/s2/test_energy_memory.py, slow)
    .venv/bin/python benchmarks/energy_scaling.py --synthetic --sizes 2e7
    -> benchmarks/results/energy_synthetic.json: `energy()` alone on the 20M-neuron dense
       program deploy would place (80,001 PEs), activity from rates
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def measure(n: int, steps: int) -> dict:
    from scaling import dense_network

    from spinnq.graph import from_nir
    from spinnq.s2.compile import S2Config, compile
    from spinnq.s2.emulate import emulate
    from spinnq.s2.energy import energy
    from spinnq.s2.place import place
    g, shape = dense_network(n)
    t = time.process_time()
    prog = compile(from_nir(g), S2Config())
    del g
    pl = place(prog)
    x = (np.random.default_rng(1).random((steps, *shape)) < 0.05).astype(np.float32)
    run = emulate(prog, x)
    deploy_cpu = time.process_time() - t
    deploy_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t = time.process_time()
    cost = energy(pl, run, prog, op="dvfs", tick_s=1e-3)
    energy_cpu = time.process_time() - t
    energy_alloc = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"neurons": n, "pes": pl.pes, "chips": pl.chips, "steps": run.steps,
            "deploy_cpu_s": deploy_cpu, "deploy_peak_rss_mb": deploy_peak,
            "energy_cpu_s": energy_cpu, "energy_peak_alloc_mb": energy_alloc,
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dense_pe_matrix_mb": pl.pes ** 2 * 8 / 2**20, "energy_j": cost.energy_j,
            "energy_low_j": cost.energy_low_j, "energy_high_j": cost.energy_high_j,
            "kind": {"memory, time": "measured", "energy": "modelled"}}


def synthetic(n: int, steps: int) -> dict:
    """The energy model alone at the size deploy places but this machine cannot deploy: the
    dense network's program (Input(100) -> n LIF, int8 weights, column-major as compile
    stores them) placed by `place`, activity from rates (5 % input, 5 % hidden per step)
    instead of an emulation; CPU time and traced peak memory of `energy()` (dvfs)."""
    from spinnq.s2 import chip
    from spinnq.s2.energy import energy
    from spinnq.s2.place import place
    from spinnq.s2.program import Population, Program, Projection
    from spinnq.s2.published_fit import rate_run
    lif = {k: np.full(n, v, np.float32) for k, v in (("alpha", 0.9), ("threshold", 1.0),
                                                    ("i_offset", 0.0), ("v_reset", 0.0))}
    w = np.ones((n, 100), np.int8, order="F")
    prog = Program({"input": Population("input", "spike_list", (100,)),
                    "lif": Population("lif", "lif_no_delay", (n,), params=lif)},
                   [Projection("input", "lif", "dense", w, 1.0)], "input", ["lif"], depth=1)
    pl = place(prog)
    run = rate_run(prog, {"input": 0.05, "lif": 0.05}, steps + 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t = time.process_time()
    cost = energy(pl, run, prog, op="dvfs", tick_s=1e-3)
    cpu = time.process_time() - t
    alloc = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"neurons": n, "pes": pl.pes, "chips": pl.chips, "steps": run.steps,
            "weights_mb": w.nbytes / 2**20, "energy_cpu_s": cpu, "energy_peak_alloc_mb": alloc,
            "process_peak_rss_mb_before_energy": base,
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "dense_pe_matrix_mb": pl.pes ** 2 * 8 / 2**20, "energy_j": cost.energy_j,
            "energy_low_j": cost.energy_low_j, "energy_high_j": cost.energy_high_j,
            "effective_acs": cost.activity["total"]["effective_acs"],
            "pes_per_chip": chip.USABLE_PES_PER_CHIP,
            "kind": {"memory, time": "measured", "energy": "modelled",
                     "activity": "from rates (5 % per step), not emulated"}}


COMMANDS = ("deploy", "energy", "evaluate")


def commands(n: int, steps: int, work: Path, fan_in: int = 100) -> dict:
    """Peak RSS and CPU time of `spinnq deploy`, `energy` and `evaluate --target chip` on the
    dense network of n neurons (one .nir file, one input sample, fresh processes)."""
    from scaling import _time_cmd, write_dense_network

    gp = work / f"dense_{n}.nir"  # the same file for all three
    shape = write_dense_network(gp, n, fan_in=fan_in)
    x = (np.random.default_rng(1).random((steps, *shape)) < 0.05).astype(np.float32)
    xp, dp = work / f"dense_{n}_x.npy", work / f"dense_{n}_data.npz"
    np.save(xp, x)
    np.savez(dp, x=x[None], y=np.zeros(1, np.int64))
    spinnq = str(Path(sys.executable).with_name("spinnq"))
    argv = {"deploy": ["deploy", str(gp), "--input", str(xp), "--out", str(work / "out.npz")],
            "energy": ["energy", str(gp), "--input", str(xp), "--json", str(work / "e.json")],
            "evaluate": ["evaluate", str(gp), "--data", str(dp), "--target", "chip",
                         "--json", str(work / "v.json")]}
    out: dict = {"neurons": n, "fan_in": fan_in, "steps_in": steps,
                 "file_mb": gp.stat().st_size / 2**20}
    for c in COMMANDS:
        out[c] = _time_cmd([spinnq, *argv[c]])
        print(c, out[c], flush=True)
    if "error" not in out["energy"]:
        import json
        e = json.loads((work / "e.json").read_text())
        out["pes"], out["chips"], out["energy_j"] = e["pes"], e["chips"], e["energy_j"]
    for p in work.glob(f"dense_{n}*"):
        p.unlink()
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e6])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--commands", action="store_true", help="peak memory of the commands")
    ap.add_argument("--synthetic", action="store_true",
                    help="the energy model alone on a placed program with rate activity")
    ap.add_argument("--fan-in", type=int, default=100,
                    help="inputs per neuron of the dense network (--commands)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the .nir files")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    from spinnq.tasks.common import write_json
    if a.synthetic:
        res = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "runs": [synthetic(int(n), a.steps) for n in a.sizes],
               "load_average_after": os.getloadavg(), "timing": "CPU time of this process"}
        print(res["runs"])
        out = a.out or HERE / "results" / "energy_synthetic.json"
        print(f"wrote {write_json(out, res)}")
        return res
    if a.commands:
        import tempfile
        with tempfile.TemporaryDirectory(dir=a.work) as d:
            res = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "load_average_before": os.getloadavg(),
                   "runs": [commands(int(n), a.steps, Path(d), a.fan_in) for n in a.sizes],
                   "load_average_after": os.getloadavg(),
                   "timing": "GNU time: peak RSS and user + system CPU of each command",
                   "kind": "measured"}
        out = a.out or HERE / "results" / "energy_memory.json"
        print(f"wrote {write_json(out, res)}")
        return res
    res = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "runs": [measure(int(n), a.steps) for n in a.sizes],
           "load_average_after": os.getloadavg(), "timing": "CPU time of this process"}
    for r in res["runs"]:
        print(r)
    print(f"wrote {write_json(a.out or HERE / 'results' / 'energy_scaling.json', res)}")
    return res


if __name__ == "__main__":
    main()
