"""The event engine of this checkout against the one of an earlier git revision, on the seed
DVS network, measured the way `emulator_speed.py` measures (interleaved rounds, marginal time
per sample, medians, 1 and 2 threads, load recorded). Both run the same compiled program.

    .venv/bin/python benchmarks/engine_before_after.py --rev 83ad1b0 [--rounds 5]

Writes benchmarks/results/engine_before_after.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from emulator_speed import median, seed_network, timed  # noqa: E402

from spinnq.graph.model import from_nir  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402
from spinnq.s2 import events as new_events  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def old_engine(rev: str, folder: Path):
    """The events module of `rev`, loaded from its source (it imports today's emulate.py
    for shared helpers: the module's own kernel and tables are the revision's)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/spinnq/s2/events.py"],
                         capture_output=True, text=True, check=True).stdout
    path = folder / f"events_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"events_{rev}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="git revision of the 'before' engine")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--small", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                    "engine_before_after.json")
    a = ap.parse_args(argv)
    prog = compile(from_nir(seed_network()), S2Config(reset="subtract", engine="events"))
    rng = np.random.default_rng(1)
    xt = torch.from_numpy((rng.random((a.batch, a.steps, 2, 32, 32)) < a.density)
                          .astype(np.float32))
    steps = a.steps + prog.depth
    with tempfile.TemporaryDirectory() as d:
        old = old_engine(a.rev, Path(d))
        engines = {"before": old.run_events, "after": new_events.run_events}
        ref = emulate(prog, xt[:2])
        for name, fn in engines.items():  # warm up, and the same spikes from both
            run = fn(prog, xt[:2], steps, list(prog.outputs))
            for pop, c in run.counters.items():
                if not np.array_equal(c["spikes"], ref.counters[pop]["spikes"]):
                    raise SystemExit(f"{name}: spikes of {pop} differ")
        rec = {f"{n}_{t}t": [] for n in engines for t in a.threads}
        loads = []
        for r in range(a.rounds):
            keys = list(rec)
            keys = keys[r % len(keys):] + keys[:r % len(keys)]
            for key in keys:
                name, th = key.rsplit("_", 1)
                torch.set_num_threads(int(th[:-1]))
                w = {b: timed(lambda b=b, f=engines[name]: f(prog, xt[:b], steps,
                                                             list(prog.outputs)))[0]
                     for b in (a.small, a.batch)}
                rec[key].append(1e3 * (w[a.batch] - w[a.small]) / (a.batch - a.small))
            loads.append(os.getloadavg())
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in rec.items())
                  + f"; load {loads[-1][0]:.2f}", flush=True)
    torch.set_num_threads(1)
    res = {"what": "event engine, marginal ms per sample (medians of interleaved rounds)",
           "before_rev": a.rev, "batch": a.batch, "small": a.small, "steps": a.steps,
           "density": a.density, "load_average_per_round": loads,
           "marginal_ms_per_sample": {k: median(v) for k, v in rec.items()}, "rounds": rec}
    res["speedup"] = {f"{t}t": median([b / f for b, f in zip(rec[f"before_{t}t"],
                                                              rec[f"after_{t}t"], strict=True)])
                      for t in a.threads}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: res[k] for k in ("marginal_ms_per_sample", "speedup")}, indent=2))
    return res


if __name__ == "__main__":
    main()
