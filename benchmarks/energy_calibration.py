"""The SpiNNaker2 energy model against every published figure, and what it says about
activity: per comparison the published figure and its basis, the model on that basis with its
range (every constant at the low / high end of its sourced range), the error and the
assumption the comparison needs (`spinnq.s2.published_fit.points`); the seed network's energy
at 1 / 10 / 30 % input (emulated, modelled at 0.8 V and dvfs, 1 ms tick). Writes
benchmarks/results/energy_calibration.json and, with --readme, regenerates the README's energy
section from that JSON (numbers never typed by hand).

    .venv/bin/python benchmarks/energy_calibration.py [--out PATH] [--readme README.md]
    .venv/bin/python benchmarks/energy_calibration.py --readme README.md --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spinnq.files import atomic_write
from spinnq.s2.chip import ChipModel
from spinnq.s2.energy import energy
from spinnq.s2.published_fit import order_matches, points
from spinnq.tasks.common import write_json

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- energy-calibration:begin (benchmarks/energy_calibration.py --readme) -->"
END = "<!-- energy-calibration:end -->"
RATES = (0.01, 0.10, 0.30)


def activity() -> list[dict]:
    """The seed DVS network (benchmarks/seed_net.py, seeded random weights) emulated on
    random input at each rate (2 samples x 30 steps), its cost at 0.8 V and dvfs, 1 ms."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from seed_net import seed_network

    from spinnq.graph import from_nir
    from spinnq.s2.compile import S2Config, compile
    from spinnq.s2.emulate import emulate
    from spinnq.s2.place import place
    prog = compile(from_nir(seed_network()), S2Config(reset="subtract"))
    pl = place(prog)
    rng = np.random.default_rng(0)
    out = []
    for rate in RATES:
        run = emulate(prog, (rng.random((2, 30, 2, 32, 32)) < rate).astype(np.float32))
        for op in ("0.8V", "dvfs"):
            c = energy(pl, run, prog, op=op, tick_s=1e-3)
            out.append({"input_rate": rate, "operating_point": op, "pes": c.pes,
                        "steps": c.steps, "energy_j": c.energy_j, "energy_low_j": c.energy_low_j,
                        "energy_high_j": c.energy_high_j, "dynamic_j": c.dynamic_j,
                        "dynamic_low_j": c.dynamic_low_j, "dynamic_high_j": c.dynamic_high_j,
                        "realtime": c.realtime, "tick_needed_s": c.tick_needed_s,
                        "dvfs_lower_bound_j": c.dvfs_lower_bound_j, "kind": "modelled",
                        "effective_acs": c.activity["total"]["effective_acs"],
                        "dense_synops": c.activity["total"]["dense_synops"],
                        "activation_sparsity": c.activity["total"]["activation_sparsity"],
                        "activity_source": c.activity["source"]})
    return out


def run() -> dict:
    rows = points()
    m = ChipModel.default()
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dvfs_order": order_matches(rows), "chip_model": m.to_dict(), "points": rows,
            "activity": activity()}


def _num(r: dict, v: float) -> str:
    return f"{v:.3g}" if r.get("unit") == "ratio" else f"{v * 1e3:.4g} mJ"


def _rng(r: dict) -> str:
    if r.get("unit") == "ratio":
        return ""
    return f" ({r['model_low_j'] * 1e3:.3g}-{r['model_high_j'] * 1e3:.3g})"


def _constants(result: dict) -> str:
    cyc = result["chip_model"]["cycles"]
    return ", ".join(f"{k} {c['value']:g} ({c['low']:g}-{c['high']:g})" for k, c in cyc.items())


def _activity_lines(result: dict) -> list[str]:
    a = {(r["input_rate"], r["operating_point"]): r for r in result["activity"]}
    hi = [a[(rate, "0.8V")] for rate in RATES]
    dv = [a[(rate, "dvfs")] for rate in RATES]
    dyn = "; ".join(f"{r['input_rate']:.0%} input: {r['dynamic_j'] * 1e3:.3g} mJ "
                    f"({r['dynamic_low_j'] * 1e3:.3g}-{r['dynamic_high_j'] * 1e3:.3g})"
                    + ("" if r["realtime"] else ", NOT real time") for r in hi)
    pol = "; ".join(f"{r['input_rate']:.0%}: {r['energy_j'] * 1e3:.3g} mJ (bound "
                    f"{r['dvfs_lower_bound_j'] * 1e3:.3g})" for r in dv)
    acs = "; ".join(f"{r['input_rate']:.0%}: {r['effective_acs']:.3g} effective ACs of "
                    f"{r['dense_synops']:.3g} dense synaptic operations, activation sparsity "
                    f"{r['activation_sparsity']:.1%}" for r in hi if "effective_acs" in r)
    return [f"- Activity counts: the seed DVS network ({hi[0]['pes']} PEs, random seeded "
            f"weights, emulated for {hi[0]['steps']} ticks) spends, as dynamic energy at 0.8 V "
            f"and a 1 ms tick, {dyn} ({hi[-1]['dynamic_j'] / hi[0]['dynamic_j']:.2g}x from 1 % "
            "to 30 %; modelled, range in brackets). A tick a PE cannot meet is reported as not "
            "real time; the run is never stretched."
            + (f" Beside the joules, NeuroBench's activity metrics per inference ({acs}; "
               "emulated; `energy`/`evaluate` JSON and reports give them per population)."
               if acs else ""),
            f"- `dvfs` is the chip software's policy (py-spinnaker2's DVFS demo): per PE and "
            f"tick 0.8 V from a received-packet threshold on, else 0.5 V; total energy on the "
            f"same runs {pol}; the bound is the per-PE-tick optimum over all 4 levels, kept "
            "only as a lower bound."]


def _scaling_lines(path: Path = ROOT / "benchmarks" / "results" / "energy_scaling.json"
                   ) -> list[str]:
    """The memory bullet, from benchmarks/energy_scaling.py's JSON (none if absent)."""
    if not path.exists():
        return []
    runs = json.loads(path.read_text())["runs"]

    def each(key: str, f) -> str:
        return " / ".join(f(r[key]) for r in runs)
    return [f"- Size: on dense networks of {each('neurons', lambda v: f'{v / 1e6:g}M')} neurons "
            f"({each('pes', lambda v: f'{v:,}')} PEs; `benchmarks/energy_scaling.py`) the "
            f"energy model takes {each('energy_cpu_s', lambda v: f'{v:.2g}')} s CPU and "
            f"{each('energy_peak_alloc_mb', lambda v: f'{v:.0f}')} MB beside deploy's "
            f"{each('deploy_peak_rss_mb', lambda v: f'{v / 1024:.2g}')} GB peak (measured); "
            "the PE-to-PE routes are a sparse list (a dense PE x PE matrix would take "
            f"{each('dense_pe_matrix_mb', lambda v: f'{v / 1024:.2g}')} GB), so its memory "
            "grows with PEs x steps.", *_command_lines()]


def _command_lines(path: Path = ROOT / "benchmarks" / "results" / "energy_memory.json"
                   ) -> list[str]:
    """The commands' peak memory, from benchmarks/energy_scaling.py --commands (none if
    absent)."""
    if not path.exists():
        return []
    runs = json.loads(path.read_text())["runs"]

    def gb(cmd: str) -> str:
        return " / ".join(f"{r[cmd]['peak_mb'] / 1024:.3g}" for r in runs)
    big = runs[-1]
    per = big["deploy"]["peak_mb"] * 2**20 / big["neurons"]
    within = all(r[c]["peak_mb"] <= r["deploy"]["peak_mb"] for r in runs
                 for c in ("energy", "evaluate"))
    sizes = " / ".join(f"{r['neurons'] / 1e6:g}M" for r in runs)
    return [f"- Whole commands on the same dense networks of {sizes} "
            f"neurons (up to {big['pes']:,} PEs; `benchmarks/energy_scaling.py --commands`, "
            f"peak RSS of fresh processes): `spinnq energy` {gb('energy')} GB, `spinnq evaluate "
            f"--target chip` {gb('evaluate')} GB, `spinnq deploy` {gb('deploy')} GB (measured): "
            + ("energy and evaluate stay within deploy's memory at every size" if within else
               "NOT within deploy's memory at every size")
            + f"; deploy grows by {per / 1024:.2g} kB per neuron, so the 20M-neuron network "
            f"at fan-in 100 (80,001 PEs) would need about {per * 2e7 / 2**30:.0f} GB "
            "(extrapolated).", *_end_to_end_lines(), *_synthetic_lines()]


def _end_to_end_lines(path: Path = ROOT / "benchmarks" / "results" / "energy_memory_20m.json"
                      ) -> list[str]:
    """The three commands at 20M neurons (energy_scaling.py --commands --sizes 2e7)."""
    if not path.exists():
        return []
    r = json.loads(path.read_text())["runs"][-1]
    within = all(r[c]["peak_mb"] <= r["deploy"]["peak_mb"] for c in ("energy", "evaluate"))
    return [f"- End to end at {r['neurons'] / 1e6:g}M neurons ({r['pes']:,} PEs on "
            f"{r['chips']} chips; fan-in {r['fan_in']} and {r['steps_in']} input steps, so "
            "graph and recordings fit beside other jobs on this 24 GB shared machine; "
            f"`benchmarks/energy_scaling.py --commands --sizes 2e7 --fan-in {r['fan_in']} "
            f"--steps {r['steps_in']}`): `spinnq energy` {r['energy']['peak_mb'] / 1024:.3g} GB "
            f"and {r['energy']['cpu_s']:.0f} s CPU, `spinnq evaluate --target chip` "
            f"{r['evaluate']['peak_mb'] / 1024:.3g} GB, `spinnq deploy` "
            f"{r['deploy']['peak_mb'] / 1024:.3g} GB (measured): energy and evaluate "
            + ("finish within deploy's memory." if within else "NOT within deploy's memory.")]


def _synthetic_lines(path: Path = ROOT / "benchmarks" / "results" / "energy_synthetic.json"
                     ) -> list[str]:
    """The energy model alone at the largest size (energy_scaling.py --synthetic)."""
    if not path.exists():
        return []
    r = json.loads(path.read_text())["runs"][-1]
    return [f"- At that size itself ({r['neurons'] / 1e6:g}M neurons, {r['pes']:,} PEs on "
            f"{r['chips']} chips; `benchmarks/energy_scaling.py --synthetic`: the placed "
            "program with activity from rates, no emulation) `energy()` takes "
            f"{r['energy_cpu_s']:.2g} s CPU and {r['energy_peak_alloc_mb']:.0f} MB beside the "
            f"program's {r['weights_mb'] / 1024:.2g} GB of int8 weights (measured; a dense PE x "
            f"PE matrix: {r['dense_pe_matrix_mb'] / 1024:.0f} GB)."]


def readme_section(result: dict) -> str:
    """The README's energy section, rendered from the calibration JSON."""
    lines = [BEGIN, "## Energy model: what it assumes and how it compares", "",
             "`spinnq.s2.energy` replays the PE program of NESTML's SpiNNaker2 target per PE and "
             "tick from the emulator's counters (tick overhead, packet receive with the "
             "population-table search, synapse words, delay-buffer move, neuron update, "
             "recording, one packet per target QPE, accelerator MACs) and prices busy cycles "
             "and asleep time with the chip's published power figures. Every constant comes "
             "from its source and lies inside its sourced range (none fitted to a published "
             "run); every energy figure carries its range: the same run with every constant at "
             "the low / high end. Bases: *dynamic* = busy cycles + MACs; *total, unused PEs "
             "off* = + chip off power + used PEs asleep, x run time; *total, unused PEs asleep* "
             "= + the chip's other PEs asleep. What the model leaves out (router/NoC, the "
             "always-on domain, IO/DRAM) is one named term, `unmodelled_static_w`, off by "
             "default; `spinnq energy-fit` fits it and the cycle costs to a board's measured "
             f"runs. Constants (cycles; range): {_constants(result)}.", "",
             "| published figure | basis | published | modelled (range) | error | assumption "
             "the comparison needs |", "|---|---|---|---|---|---|"]
    for r in result["points"]:
        lines.append(f"| {r['point']} | {r['basis']} | {_num(r, r['published_j'])} | "
                     f"{_num(r, r['model_j'])}{_rng(r)} | {r['error']:+.0%} | "
                     f"{r['workload']}; {r['assumption']} |")
    order = result["dvfs_order"]
    lines += ["", "- Published DVFS order dvfs < fixed high: "
              + ("kept" if order["dvfs < high"] else "NOT kept") + "; fixed high < fixed "
              "low: " + ("kept" if order["high < low"] else "NOT kept: in real time the "
                         "low level spends less; the published low run must have stretched "
                         "(its row says by how much)") + ". The DVFS trio's network and run "
              "length are not published: the fixed-high point is fitted by the run length, "
              "so its 0 % error carries no information.",
              *_activity_lines(result), *_scaling_lines(),
              "- Every number here is modelled (the model) or published (the papers); "
              "`benchmarks/results/energy_calibration.json` holds them all.", END]
    return "\n".join(lines)


def update_readme(path: Path, result: dict) -> Path:
    text = path.read_text()
    section = readme_section(result)
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    return atomic_write(path, text)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                    "energy_calibration.json")
    ap.add_argument("--readme", type=Path, default=None,
                    help="regenerate this README's energy section from the result")
    ap.add_argument("--render-only", action="store_true",
                    help="with --readme: render from the saved --out JSON, computing nothing "
                         "(after benchmarks/energy_scaling.py wrote new measurements)")
    a = ap.parse_args(argv)
    if a.render_only and a.readme:
        print(f"wrote {update_readme(a.readme, json.loads(a.out.read_text()))}")
        return json.loads(a.out.read_text())
    result = run()
    for r in result["points"]:
        print(f"{r['point']:52s} {r['basis']:26s} published {_num(r, r['published_j']):>10s}"
              f"  modelled {_num(r, r['model_j']):>10s}{_rng(r)}  {r['error']:+5.0%}")
    print(f"DVFS order: {result['dvfs_order']}")
    print(f"wrote {write_json(a.out, result)}")
    if a.readme:
        print(f"wrote {update_readme(a.readme, json.loads(a.out.read_text()))}")
    return result


if __name__ == "__main__":
    main()
