"""How compile, place and emulate scale: dense and conv networks of 10k .. 10M neurons, each
stage's measured wall-clock time and the peak memory, and the per-neuron / per-synapse costs.
Also `spinnq deploy` (the CLI, reading the .nir file) on the same graphs: wall-clock and peak
resident memory of the whole command (the process and its graph-reading child).

    .venv/bin/python benchmarks/scaling.py [--sizes 1e4 1e5 1e6 1e7] [--kinds dense conv]

Networks (random seeded weights, scaled so the layers fire; input Bernoulli at --density):
  dense N: Input(100) -> Linear -> LIF(N)             fan-in 100: 100 N synapses
  conv  N: Input(2, H, H) -> [Conv 3x3 p1 16 -> LIF(16, H, H)] x L, layers of at most 400k
           neurons (a conv's input frame must fit one PE's memory), about N neurons in all
Every stage runs in a fresh process (peak memory is per process: `ru_maxrss`), one sample,
`--steps` input steps. Writes benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nir
import numpy as np

DT = 1e-4
BETA = 0.9
HERE = Path(__file__).parent


def _lif(shape) -> nir.LIF:
    tau = DT / (1 - BETA)
    return nir.LIF(np.full(shape, tau, np.float32), np.full(shape, tau / DT, np.float32),
                   np.zeros(shape, np.float32), np.ones(shape, np.float32),
                   np.zeros(shape, np.float32))


def _normal_blocks(rng, rows: int, cols: int, gain: float):
    """(first row, block) of float32 normal weights scaled by gain / sqrt(cols), drawn row
    block by row block (no float64 copy of the layer): the same numbers whether a caller
    keeps the blocks in one array (`_normal`) or streams them to a file."""
    step = max(1, (1 << 22) // cols)
    scale = np.float32(gain / math.sqrt(cols))
    for i in range(0, rows, step):
        yield i, rng.standard_normal((min(step, rows - i), cols), np.float32) * scale


def _normal(rng, shape, gain) -> np.ndarray:
    """float32 normal weights of `shape` (`_normal_blocks`, rows by the first axis)."""
    out = np.empty(shape, np.float32)
    flat = out.reshape(shape[0], -1)
    for i, block in _normal_blocks(rng, flat.shape[0], flat.shape[1], gain):
        flat[i:i + len(block)] = block
    return out


DENSE_GAIN = 8.0  # the dense network's weight gain (x 1/sqrt(fan-in))


def dense_network(n: int, seed: int = 0, fan_in: int = 100
                  ) -> tuple[nir.NIRGraph, tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(np.array([fan_in])),
             "fc": nir.Linear(_normal(rng, (n, fan_in), DENSE_GAIN)),
             "lif": _lif((n,)), "output": nir.Output(np.array([n]))}
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True))), (fan_in,)


def write_dense_network(path: Path, n: int, seed: int = 0, fan_in: int = 100
                        ) -> tuple[int, ...]:
    """`dense_network(n, seed)` written to `path` (uncompressed NIR) with the same weights,
    streamed row block by row block into the file, so writing a 20M-neuron network (8 GB of
    weights) holds one block in memory, not the layer and nir.write's copies of it."""
    import h5py
    g, shape = dense_network(1, seed, fan_in)
    g.nodes["lif"], g.nodes["output"] = _lif((n,)), nir.Output(np.array([n]))
    nir.write(str(path), g, compression=None)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc/weight"]
        w = f.create_dataset("node/nodes/fc/weight", (n, fan_in), np.float32)
        for i, block in _normal_blocks(rng, n, fan_in, DENSE_GAIN):
            w[i:i + len(block)] = block
    return shape


LAYER = 400_000  # neurons per conv layer at most: its input frame must fit a PE (place.py)


def conv_layers(n: int) -> tuple[int, int]:
    """(layers, side): 16 x side x side LIF neurons per layer, about n in all."""
    layers = max(1, math.ceil(n / LAYER))
    return layers, max(4, int(round(math.sqrt(n / layers / 16))))


def conv_network(n: int, seed: int = 0) -> tuple[nir.NIRGraph, tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    L, H = conv_layers(n)
    nodes: dict = {"input": nir.Input(np.array([2, H, H]))}
    for i in range(L):
        cin = 2 if i == 0 else 16
        nodes[f"c{i}"] = nir.Conv2d((H, H), _normal(rng, (16, cin, 3, 3), 6.0 if i == 0 else 3.0),
                                    1, 1, 1, 1, np.zeros(16, np.float32))
        nodes[f"l{i}"] = _lif((16, H, H))
    nodes["output"] = nir.Output(np.array([16, H, H]))
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:], strict=True))), \
        (2, H, H)


def _peak_mb() -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"process_mb": me, "children_mb": kids}


def stages(graph_path: str, input_path: str) -> dict:
    """Child process: read, compile, place, emulate with times and peak memory."""
    import torch

    from spinnq.graph.model import read_graph
    from spinnq.s2 import S2Config, compile, emulate, place

    torch.set_num_threads(1)
    out: dict = {}
    t, c = time.perf_counter(), time.process_time()
    g = read_graph(graph_path)
    out["read_s"] = time.perf_counter() - t
    cfg = S2Config()
    t = time.perf_counter()
    prog = compile(g, cfg)
    out["compile_s"] = time.perf_counter() - t
    out["peak_after_compile"] = _peak_mb()
    t = time.perf_counter()
    pl = place(prog, cfg)
    out["place_s"] = time.perf_counter() - t
    x = np.load(input_path)
    t = time.perf_counter()
    run = emulate(prog, x)
    out["emulate_s"] = time.perf_counter() - t
    out["peak"] = _peak_mb()
    out["cpu_s"] = time.process_time() - c  # this process, read to emulate
    out["pes"], out["chips"] = pl.pes, pl.chips
    out["neurons"] = int(sum(p.size for n, p in prog.populations.items() if n != prog.input))
    out["synapses"] = int(sum(p.weight.size if p.kind == "dense" else  # stored, zeros too
                              prog.populations[p.post].size * int(np.prod(p.weight.shape[1:]))
                              for p in prog.projections))
    out["steps"] = run.steps
    out["syn_events"] = float(sum(c["syn_events"].sum() for c in run.counters.values()))
    out["spikes"] = float(sum(c["spikes"].sum() for c in run.counters.values()))
    return out


def _time_cmd(cmd: list[str]) -> dict:
    """Wall-clock, CPU time (user + system: on a shared box, closer to a quiet wall-clock)
    and peak RSS (GNU time: the largest of the command and its waited-for children)."""
    t = time.perf_counter()
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as f:
        r = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", f.name, *cmd],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode:
            return {"error": (r.stderr or r.stdout)[-400:], "wall_s": wall}
        kb, user, sys_s = f.read().split()[-3:]
    return {"wall_s": wall, "cpu_s": float(user) + float(sys_s), "peak_mb": int(kb) / 1024,
            "load_average_after": os.getloadavg()}


def measure(kind: str, n: int, steps: int, density: float, work: Path, deploy: bool,
            compression: str | None = "gzip") -> dict:
    g, in_shape = (dense_network if kind == "dense" else conv_network)(n)
    gp = work / f"{kind}_{n}.nir"
    nir.write(str(gp), g, compression=compression)
    del g
    rng = np.random.default_rng(1)
    x = (rng.random((steps, *in_shape)) < density).astype(np.float32)
    xp = work / f"{kind}_{n}_x.npy"
    np.save(xp, x)
    env = os.environ | {"PYTHONPATH": str(HERE.parent / "src")}
    # Through GNU time, which forks: a process exec'd straight from this one would inherit
    # this one's peak RSS as its own ru_maxrss (Linux keeps it across exec).
    r = subprocess.run(["/usr/bin/time", "-f", "", sys.executable, __file__, "--child",
                        str(gp), str(xp)], capture_output=True, text=True, env=env)
    if r.returncode:
        res = {"error": r.stderr[-800:]}
    else:
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res["file_mb"] = gp.stat().st_size / 2**20
        nn, ns = res["neurons"], max(res["synapses"], 1)
        work_s = res["compile_s"] + res["place_s"] + res["emulate_s"]
        res["per_neuron"] = {"compile_place_us": 1e6 * (res["compile_s"] + res["place_s"]) / nn,
                             "emulate_ns_per_update": 1e9 * res["emulate_s"] / (nn * res["steps"]),
                             "peak_bytes": res["peak"]["process_mb"] * 2**20 / nn}
        res["per_synapse"] = {"compile_ns": 1e9 * res["compile_s"] / ns,
                              "peak_bytes": res["peak"]["process_mb"] * 2**20 / ns,
                              "stages_ns": 1e9 * work_s / ns}
    if deploy:
        spinnq = Path(sys.executable).with_name("spinnq")
        res["deploy_cli"] = _time_cmd([str(spinnq), "deploy", str(gp), "--input", str(xp),
                                       "--out", str(work / f"{kind}_{n}_out.npz")])
    for p in work.glob(f"{kind}_{n}*"):
        p.unlink()
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7])
    ap.add_argument("--kinds", nargs="+", default=["dense", "conv"], choices=["dense", "conv"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--no-deploy", action="store_true", help="skip the `spinnq deploy` runs")
    ap.add_argument("--compression", default="gzip", choices=["gzip", "none"],
                    help="of the .nir files: gzip is nir.write's default; a 4 GB layer takes "
                         "minutes to deflate and inflate, `none` measures spinnq without it")
    ap.add_argument("--work", type=Path, default=None, help="folder for the .nir files")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scaling.json")
    a = ap.parse_args(argv)
    res: dict = {"what": "compile / place / emulate of generated networks, measured "
                         "wall-clock and peak resident memory, one process per network",
                 "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                             "platform": platform.platform(),
                             "load_average_before": os.getloadavg()},
                 "steps": a.steps, "density": a.density, "file_compression": a.compression,
                 "runs": []}
    with tempfile.TemporaryDirectory(dir=a.work) as d:
        for kind in a.kinds:
            for n in (int(s) for s in a.sizes):
                r = {"kind": kind, "n": n} | measure(
                    kind, n, a.steps, a.density, Path(d), not a.no_deploy,
                    None if a.compression == "none" else a.compression)
                res["runs"].append(r)
                print(json.dumps({k: r.get(k) for k in ("kind", "n", "compile_s", "place_s",
                                                         "emulate_s", "peak", "deploy_cli",
                                                         "error")}), flush=True)
    res["machine"]["load_average_after"] = os.getloadavg()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=2))
    tmp.replace(a.out)
    print(f"wrote {a.out}")
    return res


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(stages(sys.argv[2], sys.argv[3])))
    else:
        main()
