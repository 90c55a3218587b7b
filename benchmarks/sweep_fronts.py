"""The two design-search sweeps the README quotes (CartPole and the gesture fast preset),
run with `spinnq sweep` and kept in benchmarks/results/sweep/ (trials, front, report, plot,
summary), and the README's sweep paragraphs rendered from them (numbers never typed by hand):
each energy with its basis and its range (every constant of the energy model at the low /
high end of its sourced range), and how many front points keep their order across it.

    .venv/bin/python benchmarks/sweep_fronts.py run [--tasks cartpole gesture] --work DIR
    .venv/bin/python benchmarks/sweep_fronts.py collect TASK DIR   (a sweep run by hand with
                                                                 the same command)
    .venv/bin/python benchmarks/sweep_fronts.py readme README.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from spinnq.files import atomic_write

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sweep"
BEGIN = "<!-- readme:sweeps (benchmarks/sweep_fronts.py readme README.md) -->"
END = "<!-- /readme:sweeps -->"
LEVELS = "0.5V/75MHz,0.5V,0.8V/150MHz,0.8V,dvfs"
SWEEPS = {  # task -> the `spinnq sweep` arguments after TARGET --out DIR
    "cartpole": ["--space", "timesteps=5,10,20", "--space", "bits=8,4", "--space",
                 f"operating_point={LEVELS}", "--episodes", "20"],
    "gesture": ["--space", "timesteps=15,30", "--space", "bits=8,4", "--space",
                f"operating_point={LEVELS}"],
}
KEPT = ("trials.csv", "pareto.csv", "report.md", "summary.json")


def run(tasks: list[str], work: Path) -> None:
    """Each sweep into `work/TASK` (one CPU for Ray), then `collect`."""
    spinnq = str(Path(sys.executable).with_name("spinnq"))
    for task in tasks:
        subprocess.run([spinnq, "sweep", task, "--out", str(work / task), *SWEEPS[task],
                        "--cpus", "1", "--quiet"], check=True)
        collect(task, work / task)


def collect(task: str, out: Path) -> None:
    """A finished sweep folder's tables, report and plot into RESULTS, with its command."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        shutil.copyfile(out / name, RESULTS / f"{task}_{name}")
    shutil.copyfile(out / "plots" / "front.png", RESULTS / f"{task}_front.png")
    meta = {"command": f"spinnq sweep {task} " + " ".join(SWEEPS[task]),
            "load_average_after": os.getloadavg(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (RESULTS / f"{task}_run.json").write_text(json.dumps(meta, indent=2) + "\n")


def _mj(r: dict) -> str:
    """A trial's energy with its range: '1.2 mJ (1.1-1.4)'."""
    return (f"{r['energy_j'] * 1e3:.3g} mJ ({r['energy_low_j'] * 1e3:.3g}-"
            f"{r['energy_high_j'] * 1e3:.3g})")


def _what(s: dict) -> str:
    return f"T {s['timesteps']}, {s['bits']} bits, {s['operating_point']}"


def _against(name: str, sv: dict | None, metric: str) -> str:
    if sv is None:
        return f"no {name} configuration result"
    ref, pick = sv["reference"], sv["pick"]
    val = (lambda r: f"{r[metric]:.2%}") if metric == "accuracy" else (
        lambda r: f"{r[metric]:.1f}")
    return (f"against the {name} configuration ({_what(ref['settings'])}, "
            f"{ref['settings']['tick_ms']:g} ms tick: {metric} {val(ref)}, {_mj(ref)}) "
            f"{sv['saved']:.1%} less energy with {_what(pick['settings'])} "
            f"({metric} {val(pick)}, {_mj(pick)})")


def paragraph(task: str, folder: Path = RESULTS) -> str:
    """One README bullet from the sweep's stored summary."""
    info = json.loads((folder / f"{task}_summary.json").read_text())
    meta = json.loads((folder / f"{task}_run.json").read_text())
    metric = "return" if task == "cartpole" else "accuracy"
    kept = info.get("pareto_order_kept") or {}
    n_kept = sum(1 for v in kept.values() if v)
    return (f"- `{meta['command']}` ({info['trials']} trials; `benchmarks/results/sweep/"
            f"{task}_*`): {_against('default', info.get('saved_vs_default'), metric)}; "
            f"{_against('seed', info.get('saved_vs_seed'), metric)}. {n_kept} of {len(kept)} "
            "front points keep their energy order with every constant at the low or the "
            f"high end of its range. {metric.capitalize()} emulated; energy per inference "
            "modelled, total (chip off + used PEs asleep, x run time, + dynamic), range in "
            "brackets.")


def section(folder: Path = RESULTS) -> str:
    tasks = [t for t in SWEEPS if (folder / f"{t}_summary.json").exists()]
    return "\n".join([BEGIN, *(paragraph(t, folder) for t in tasks), END])


def update_readme(path: Path) -> Path:
    text = path.read_text()
    a, b = text.index(BEGIN), text.index(END) + len(END)
    return atomic_write(path, text[:a] + section() + text[b:])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tasks", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    r.add_argument("--work", type=Path, required=True, help="folder for the sweep folders")
    c = sub.add_parser("collect")
    c.add_argument("task", choices=list(SWEEPS))
    c.add_argument("folder", type=Path)
    m = sub.add_parser("readme")
    m.add_argument("readme", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "run":
        run(a.tasks, a.work)
    elif a.cmd == "collect":
        collect(a.task, a.folder)
    else:
        print(f"wrote {update_readme(a.readme)}")


if __name__ == "__main__":
    main()
