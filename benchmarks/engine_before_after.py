"""An emulator engine of this checkout against the one of an earlier git revision, on the seed
DVS network, measured the way `emulator_speed.py` measures (interleaved rounds, marginal time
per sample, medians, 1 and 2 threads, load recorded), and in process CPU time per call.

    .venv/bin/python benchmarks/engine_before_after.py --rev 83ad1b0 [--rounds 5]
    .venv/bin/python benchmarks/engine_before_after.py --rev 2b9112a --engine torch \
        --batch 4 --small 1 --steps 200 --threads 1 --reps 3 --rounds 9 --out X.json

The event engine by default (`--engine`, `--reset`). The CPU time of one `emulate` call on
`batch` samples (`time.process_time`, the least of `reps` calls in the process) is the measure
for a loaded machine and for the torch engine, whose per-step cost is per call, not per
sample: the marginal time per sample hides it.

Each side runs its own whole package (the revision is checked out into a temporary git
worktree) in a fresh process per measurement, so no code of one side leaks into the other;
the time is taken inside the process, after compiling and warming up, around `emulate` calls
on the same seeded network and input. Both sides must give the same spike counts in every
population, or the script stops. Writes benchmarks/results/engine_before_after.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from emulator_speed import median  # noqa: E402

WORKER = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {here!r})
from seed_net import seed_network
from spinnq.graph.model import from_nir
from spinnq.s2 import S2Config, compile, emulate
threads, small, batch, steps, density, engine, reset, reps = {args}
torch.set_num_threads(threads)
prog = compile(from_nir(seed_network()), S2Config(reset=reset, engine=engine))
rng = np.random.default_rng(1)
x = torch.from_numpy((rng.random((batch, steps, 2, 32, 32)) < density).astype(np.float32))
run = emulate(prog, x[:small])  # numba compiles or loads its cache; the spikes to compare
spikes = {{k: float(np.sum(c["spikes"])) for k, c in run.counters.items()}}
wall, cpu = {{}}, {{}}
for b in (small, batch):
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        emulate(prog, x[:b])
        t, c = time.perf_counter() - t, time.process_time() - c
        wall[b], cpu[b] = min(wall.get(b, t), t), min(cpu.get(b, c), c)
print(json.dumps({{"marginal_ms": 1e3 * (wall[batch] - wall[small]) / (batch - small),
                   "cpu_ms": 1e3 * cpu[batch], "spikes": spikes}}))
"""


def measure(src: Path, threads: int, a) -> dict:
    """One measurement in a fresh process running the package under `src`."""
    code = WORKER.format(here=str(HERE), args=(threads, a.small, a.batch, a.steps, a.density,
                                               a.engine, a.reset, a.reps))
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="git revision of the 'before' engine")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--small", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engine", choices=["events", "torch"], default="events")
    ap.add_argument("--reset", choices=["subtract", "zero"], default="subtract")
    ap.add_argument("--reps", type=int, default=1, help="calls per size in a process (least)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "engine_before_after.json")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        old = Path(d) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old),
                        a.rev], check=True)
        try:
            sides = {"before": old / "src", "after": ROOT / "src"}
            rec = {f"{n}_{t}t": [] for n in sides for t in a.threads}
            cpu = {k: [] for k in rec}
            loads, spikes = [], {}
            for r in range(a.rounds):
                keys = list(rec)
                keys = keys[r % len(keys):] + keys[:r % len(keys)]  # rotate: no fixed slot
                for key in keys:
                    name, th = key.rsplit("_", 1)
                    m = measure(sides[name], int(th[:-1]), a)
                    rec[key].append(m["marginal_ms"])
                    cpu[key].append(m["cpu_ms"])
                    spikes.setdefault(name, m["spikes"])
                if spikes["before"] != spikes["after"]:
                    raise SystemExit(f"the engines' spike counts differ: {spikes}")
                loads.append(os.getloadavg())
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} ms (cpu/call "
                                                     f"{cpu[k][-1]:.1f})"
                                                     for k, v in rec.items())
                      + f"; load {loads[-1][0]:.2f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(old)], check=False)
    res = {"what": f"{a.engine} engine, reset {a.reset}: marginal ms per sample (wall) and "
                   "CPU ms per call on `batch` samples (process_time, least of `reps` calls), "
                   "medians of interleaved rounds, each measurement a fresh process of its "
                   "side's package; measured",
           "engine": a.engine, "reset": a.reset, "reps": a.reps,
           "before_rev": a.rev, "batch": a.batch, "small": a.small, "steps": a.steps,
           "density": a.density, "load_average_per_round": loads,
           "spikes_per_population": spikes["after"],
           "marginal_ms_per_sample": {k: median(v) for k, v in rec.items()}, "rounds": rec}
    res["speedup"] = {f"{t}t": median([b / f for b, f in zip(rec[f"before_{t}t"],
                                                              rec[f"after_{t}t"], strict=True)])
                      for t in a.threads}
    res["cpu_ms_per_call"] = {k: median(v) for k, v in cpu.items()}
    res["cpu_rounds"] = cpu
    res["cpu_speedup"] = {f"{t}t": median([b / f for b, f in zip(cpu[f"before_{t}t"],
                                                                  cpu[f"after_{t}t"],
                                                                  strict=True)])
                          for t in a.threads}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: res[k] for k in ("marginal_ms_per_sample", "speedup",
                                          "cpu_ms_per_call", "cpu_speedup")}, indent=2))
    return res


if __name__ == "__main__":
    main()
