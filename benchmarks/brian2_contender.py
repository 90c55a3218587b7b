"""Brian2 (cpp_standalone, the engine behind py-spinnaker2's software backend) running the same
integer program as spinnq's event engine, on the seed DVS network: same int8 weights, float32
neuron arithmetic in the chip's order, same spikes in, and the spike counts of every
population compared; then the time per sample of both, measured the same way.

    .venv/bin/python benchmarks/brian2_contender.py [--batch 16] [--small 4] [--rounds 3]

Brian2 needs numpy < 2.4, so it runs in its own virtualenv, made by this script on first use
(`benchmarks/.brian2-venv`, ignored by git; `--venv` to put it elsewhere). The program is
handed over as an .npz: per population alpha, threshold, i_offset (chip units, NIR order),
per projection the synapse list of `events.fanout_table` and the delay; the input spikes.

The Brian2 network: one NeuronGroup per population holding all samples (B x n neurons,
samples apart, synapses replicated per sample), float32 state; each step, in Brian2's
schedule order: `v = alpha*v + I + i_offset; I = 0` (groups), `v > threshold` (thresholds),
`I_post += w` for this step's spikes, delivered after `delay - 1` steps (synapses), `v -= threshold`
(resets): a spike at step t reaches its target's update at t + delay, like the chip. Compiled
with `-O3 -march=native` and without fast-math or FMA contraction (the emulator's float32
operations, none fused). Timing, never the build: the simulation loop (Brian2's profiling of
every code object during the run) and the whole binary (which also loads and sets up the
synapses); marginal per sample between --small and --batch samples, median of --rounds; the
event engine in the same rounds, one thread. Writes benchmarks/results/brian2_contender.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from seed_net import seed_network  # noqa: E402

from spinnq.graph.model import from_nir  # noqa: E402
from spinnq.s2 import S2Config, compile, emulate  # noqa: E402
from spinnq.s2.events import fanout_table  # noqa: E402

BRIAN2 = ["brian2==2.8.0.4", "numpy<2.4"]

WORKER = r'''
import json, sys, time
import numpy as np
from brian2 import (Network, NeuronGroup, SpikeGeneratorGroup, Synapses, SpikeMonitor, defaultclock,
                    device, ms, prefs, set_device)
d = np.load(sys.argv[1], allow_pickle=False)
out_dir, B, steps = sys.argv[2], int(sys.argv[3]), int(d["steps"])
set_device("cpp_standalone", directory=out_dir, build_on_run=False)
prefs.core.default_float_dtype = np.float32
prefs.codegen.cpp.extra_compile_args_gcc = ["-w", "-O3", "-march=native", "-ffp-contract=off",
                                            "-std=c++11"]
defaultclock.dt = 1 * ms
names = [str(n) for n in d["names"]]
pops, mons, objs = {}, {}, []
for k, name in enumerate(names):
    n = int(d["sizes"][k])
    if k == 0:
        idx, t = d["in_idx"], d["in_t"]
        g = SpikeGeneratorGroup(B * n, idx, t * ms)
    else:
        g = NeuronGroup(B * n, "v : 1\nI : 1\nalpha : 1 (constant)\nth : 1 (constant)\n"
                        "off : 1 (constant)", threshold="v > th", reset="v = v - th",
                        )
        g.run_regularly("v = alpha*v + I + off\nI = 0", when="groups")
        g.alpha = np.tile(d[f"alpha_{k}"], B)
        g.th = np.tile(d[f"th_{k}"], B)
        g.off = np.tile(d[f"off_{k}"], B)
    pops[name] = g
    mons[name] = SpikeMonitor(g, record=False)
    objs += [g, mons[name]]
for q in range(int(d["n_proj"])):
    pre, post = names[int(d[f"pre_{q}"])], names[int(d[f"post_{q}"])]
    n_pre, n_post = int(d["sizes"][int(d[f"pre_{q}"])]), int(d["sizes"][int(d[f"post_{q}"])])
    i, j, w = d[f"i_{q}"], d[f"j_{q}"], d[f"w_{q}"]
    # one delay for the whole projection: Brian2's homogeneous-delay path (faster)
    s = Synapses(pops[pre], pops[post], "w : 1 (constant)", on_pre="I_post += w",
                 delay=(int(d[f"delay_{q}"]) - 1) * ms)
    bi = (np.arange(B)[:, None] * n_pre + i[None, :]).ravel()
    bj = (np.arange(B)[:, None] * n_post + j[None, :]).ravel()
    s.connect(i=bi, j=bj)
    s.w = np.tile(w, B)
    objs.append(s)
net = Network(*objs)
net.run(steps * ms, profile=True)
t = time.perf_counter()
device.build(directory=out_dir, compile=True, run=False)
build_s = time.perf_counter() - t
t = time.perf_counter()
device.run(directory=out_dir, with_output=False)
run_s = time.perf_counter() - t
loop_s = float(sum(float(t) for _, t in net.profiling_info))
print(json.dumps({"build_s": build_s, "run_s": run_s, "loop_s": loop_s,
                  "spikes": {n: int(mons[n].num_spikes) for n in names}}))
'''


def _env() -> dict:
    """The environment for the virtualenv's processes: without this checkout's PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def ensure_venv(path: Path) -> Path:
    """The virtualenv with Brian2 (made on first use); its python."""
    py = path / "bin" / "python"
    if not py.exists():
        print(f"making {path} (Brian2 needs numpy < 2.4) ...", flush=True)
        venv.create(path, with_pip=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *BRIAN2], check=True,
                       env=_env())
    return py


def export(prog, x: np.ndarray, steps: int, path: Path) -> None:
    """The program and the input spikes of x (B, T, *in) as plain arrays for the worker."""
    names = list(prog.populations)
    assert names[0] == prog.input, "the input population comes first"
    pops = [prog.populations[n] for n in names]
    arr: dict = {"names": np.array(names), "sizes": np.array([p.size for p in pops]),
                 "steps": np.array(steps), "n_proj": np.array(len(prog.projections))}
    for k, p in enumerate(pops[1:], start=1):
        for key, col in (("alpha", "alpha"), ("th", "threshold"), ("off", "i_offset")):
            default = {"alpha": 1.0, "threshold": np.inf, "i_offset": 0.0}[col]
            v = np.asarray(p.params.get(col, np.full(p.size, default)), np.float32)
            arr[f"{key}_{k}"] = v.reshape(p.size)
    for q, pr in enumerate(prog.projections):
        indptr, post, w = fanout_table(pr, prog.populations[pr.pre].shape)
        arr[f"i_{q}"] = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        arr[f"j_{q}"], arr[f"w_{q}"] = post.astype(np.int64), w.astype(np.float32)
        arr[f"pre_{q}"], arr[f"post_{q}"] = names.index(pr.pre), names.index(pr.post)
        arr[f"delay_{q}"] = pr.delay
    B, T = x.shape[:2]
    flat = x.reshape(B, T, -1)
    b, t, i = np.nonzero(flat)
    arr["in_idx"] = b * flat.shape[2] + i
    arr["in_t"] = t.astype(np.float64)
    np.savez(path, **arr)


def brian2_run(py: Path, prog, x: np.ndarray, steps: int, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    npz = work / f"prog_{x.shape[0]}.npz"
    export(prog, x, steps, npz)
    out = work / f"b2_{x.shape[0]}"
    res = subprocess.run([str(py), "-c", WORKER, str(npz), str(out), str(x.shape[0])],
                         capture_output=True, text=True, env=_env())
    if res.returncode:
        raise SystemExit(f"Brian2 failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--small", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--venv", type=Path, default=HERE / ".brian2-venv")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "brian2_contender.json")
    a = ap.parse_args(argv)
    py = ensure_venv(a.venv)
    torch.set_num_threads(1)
    prog = compile(from_nir(seed_network()), S2Config(reset="subtract", engine="events"))
    rng = np.random.default_rng(1)
    x = (rng.random((a.batch, a.steps, 2, 32, 32)) < a.density).astype(np.float32)
    steps = a.steps + prog.depth
    ours = emulate(prog, x, steps)
    if ours.saturations:
        raise SystemExit("sums saturated: Brian2 has no accumulator limit; not comparable")
    mine = {n: int(round(c["spikes"].sum() * a.batch)) for n, c in ours.counters.items()}
    rounds: dict = {"brian2_loop_ms": [], "brian2_run_ms": [], "events_ms": [],
                    "brian2_build_s": []}
    loads = []
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.rounds):
            runs = {b: brian2_run(py, prog, x[:b], steps, Path(d) / f"r{r}")
                    for b in (a.small, a.batch)}
            if runs[a.batch]["spikes"] != mine:
                raise SystemExit(f"spike counts differ: Brian2 {runs[a.batch]['spikes']}, "
                                 f"spinnq {mine}")
            for key in ("loop", "run"):
                rounds[f"brian2_{key}_ms"].append(
                    1e3 * (runs[a.batch][f"{key}_s"] - runs[a.small][f"{key}_s"])
                    / (a.batch - a.small))
            rounds["brian2_build_s"].append(runs[a.batch]["build_s"])
            w = {}
            for b in (a.small, a.batch):
                t = time.perf_counter()
                emulate(prog, x[:b], steps)
                w[b] = time.perf_counter() - t
            rounds["events_ms"].append(1e3 * (w[a.batch] - w[a.small]) / (a.batch - a.small))
            loads.append(os.getloadavg())
            print(f"round {r + 1}: Brian2 {rounds['brian2_loop_ms'][-1]:.1f} ms/sample "
                  f"(simulation loop; {rounds['brian2_run_ms'][-1]:.1f} whole binary), events "
                  f"{rounds['events_ms'][-1]:.1f} ms/sample; load {loads[-1][0]:.2f}",
                  flush=True)
    med = {k: float(np.median(v)) for k, v in rounds.items()}
    res = {"what": "seed DVS network, marginal ms per sample, one thread, medians of rounds; "
                   "Brian2 cpp_standalone's binary run vs the event engine (measured)",
           "brian2": BRIAN2, "batch": a.batch, "small": a.small, "steps": steps,
           "density": a.density, "spikes_equal": True, "spikes_per_population": mine,
           "median": med, "rounds": rounds, "load_average_per_round": loads,
           "machine": {"cpus": os.cpu_count(), "torch_threads": 1},
           "brian2_loop_over_events": float(np.median(np.array(rounds["brian2_loop_ms"])
                                                      / np.array(rounds["events_ms"]))),
           "brian2_binary_over_events": float(np.median(np.array(rounds["brian2_run_ms"])
                                                        / np.array(rounds["events_ms"])))}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({k: res[k] for k in ("median", "brian2_loop_over_events",
                                          "brian2_binary_over_events")}, indent=2))
    return res


if __name__ == "__main__":
    main()
