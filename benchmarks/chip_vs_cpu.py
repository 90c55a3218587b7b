"""The seed DVS-gesture network: modelled SpiNNaker2 cost vs the float network measured on
this machine's CPU (and GPU, when CUDA is present). Writes JSON (default
benchmarks/results/chip_vs_cpu.json); every number is labelled modelled or measured.

    .venv/bin/python benchmarks/chip_vs_cpu.py [--steps 600] [--density 0.03] [--samples 4]
                                               [--threads 1] [--repeats 5]

Network and random seeded weights: `seed_net.seed_network` (same folder). The chip
side: compile -> place -> emulate the samples -> energy at 0.5V, 0.8V and dvfs with a 1 ms
tick (real time, as in the papers), and at the shortest feasible tick. The CPU/GPU side:
`spinnq.baseline.measure` of the snnTorch float model of the same weights (what the papers
run on the GPU) and of spinnq's float reference simulator, batch 1 latency (median) and batch
`--batch` throughput; energy from RAPL/NVML when readable, else null.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from emulator_speed import snntorch_model  # noqa: E402
from seed_net import seed_network  # noqa: E402

from spinnq.baseline import MeasureConfig, graph_fn, measure  # noqa: E402
from spinnq.graph.model import from_nir  # noqa: E402
from spinnq.graph.simulate import SimConfig  # noqa: E402
from spinnq.s2.compile import S2Config, compile  # noqa: E402
from spinnq.s2.emulate import emulate  # noqa: E402
from spinnq.s2.energy import OP_CHOICES, energy  # noqa: E402
from spinnq.s2.place import place  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--density", type=float, default=0.03)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--energy-s", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                    "chip_vs_cpu.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    nir_g = seed_network()
    g = from_nir(nir_g)
    x = (torch.rand(a.samples, a.steps, 2, 32, 32) < a.density).float()
    cfg = S2Config(reset="subtract")
    program = compile(g, cfg)
    placement = place(program, cfg)
    run = emulate(program, x.numpy())
    chip = {}
    for op in OP_CHOICES:
        for tick in (1e-3, None):
            c = energy(placement, run, program, op=op, tick_s=tick)
            chip[f"{op}@{'1ms' if tick else 'fastest'}"] = c.chip_table() | {
                "peak_load": c.peak_load, "low_fraction": c.low_fraction}
    mcfg = MeasureConfig(batch=a.batch, repeats=a.repeats, warmup=1, energy_s=a.energy_s,
                         idle_s=1.0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    baselines = []
    for dev in devices:
        for name, fn in (("snntorch float", snntorch_model(nir_g)),
                         ("spinnq float reference", graph_fn(g, SimConfig(reset="subtract")))):
            m = measure(fn, x[:1], dev, mcfg).row()
            baselines.append({"network": name, **m})
            print(f"{dev} {name}: {m['latency_s'] * 1e3:.1f} ms/inference (batch 1), "
                  f"{m['throughput_per_s']:.2f}/s at batch {a.batch}, energy "
                  f"{m['energy_j']} ({m['energy_note']})")
    ref = chip["0.8V@1ms"]
    print(f"chip (modelled) 0.8V, 1 ms tick: {placement.pes} PEs, {ref['latency_s'] * 1e3:.0f} "
          f"ms, {ref['energy_j'] * 1e3:.1f} mJ per inference; dvfs: "
          f"{chip['dvfs@1ms']['energy_j'] * 1e3:.1f} mJ")
    result = {"network": "seed DVS gesture (random seeded weights)", "steps": a.steps,
              "density": a.density, "samples": a.samples, "threads": a.threads,
              "pes": placement.pes, "chips": placement.chips,
              "spikes_per_sample": {n: float(sum(d["spikes"])) for n, d in run.counters.items()},
              "chip": chip, "baselines": baselines}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    tmp.replace(a.out)
    print(f"wrote {a.out}")
    return result


if __name__ == "__main__":
    main()
