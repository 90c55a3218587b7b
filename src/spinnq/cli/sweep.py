"""`spinnq sweep`: energy-aware design search over a task or a NIR graph with labelled data.

    spinnq sweep TARGET --out DIR [--data D.npz] --space KEY=V1,V2,... [--space ...]
                 [--samples N] [--search grid|random|optuna] [--address auto|HOST:PORT]
                 [--resume] [--max-energy-mj X] [--max-latency-ms L] [--min-accuracy A]
                 [--convention nir|snntorch|norse]
"""

from __future__ import annotations

from pathlib import Path

import typer

from spinnq.cli.app import console
from spinnq.cli.common import ConventionOpt
from spinnq.errors import InputError
from spinnq.sweep.space import KEYS, SEARCHES  # no torch: the help text

TASKS = ("cartpole", "acrobot", "gesture")


def _positive(name: str, v: float | None) -> float | None:
    if v is not None and not v > 0:
        raise InputError(f"{name} must be > 0, got {v}")
    return v


def sweep_cmd(
    target: str = typer.Argument(..., help="cartpole | acrobot | gesture, or a NIR graph "
                                 "(with --data).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Sweep folder: trials.csv, pareto.csv, "
                             "report.html, trials/ (the store --resume reads).",
                             show_default=False),
    data: Path = typer.Option(None, "--data", help="A graph's labelled data: .npz with x "
                              "(N, T, *input_shape) 0/1 spikes and y (N,) labels; x_train/"
                              "y_train for calibrate/finetune."),
    space: list[str] = typer.Option(None, "--space", help="KEY=V1,V2,... (repeatable); keys: "
                                    + ", ".join(KEYS) + "."),
    samples: int = typer.Option(0, "--samples", help="random/optuna: trials to draw."),
    search: str = typer.Option("grid", "--search", help="grid, random or optuna."),
    address: str = typer.Option(None, "--address", help="An existing Ray cluster: auto or "
                                "HOST:PORT (default: an embedded Ray on this machine, "
                                "loopback only)."),
    cpus: int = typer.Option(0, "--cpus", help="Embedded Ray: CPUs to use (0: all cores)."),
    threads: int = typer.Option(1, "--threads", help="CPUs and torch threads per trial."),
    resume: bool = typer.Option(False, "--resume", help="Continue the sweep in --out; "
                                "finished trials are never run again."),
    seed: int = typer.Option(0, "--seed", help="Seed of every trial and of the search."),
    max_energy_mj: float = typer.Option(None, "--max-energy-mj", help="Budget: energy per "
                                        "inference (mJ, modelled)."),
    max_latency_ms: float = typer.Option(None, "--max-latency-ms", help="Budget: latency per "
                                         "inference (ms, modelled)."),
    min_accuracy: float = typer.Option(None, "--min-accuracy", help="Budget: accuracy (0..1; "
                                       "for control tasks: the mean return)."),
    convention: str = ConventionOpt,
    quick: bool = typer.Option(False, "--quick", help="Tasks: the quick-sized training and "
                               "evaluation."),
    episodes: int = typer.Option(None, "--episodes", help="Control tasks: closed-loop "
                                 "episodes per trial."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Search quantization and chip settings: accuracy against energy, the Pareto front, and
    the best configuration under a budget (trials run on Ray Tune)."""
    from spinnq.sweep import Budget, SweepConfig, parse_space, run_sweep
    from spinnq.sweep.engine import RayOptions

    if search not in SEARCHES:
        raise InputError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if threads < 1 or cpus < 0:
        raise InputError("--threads must be >= 1 and --cpus >= 0")
    budget = Budget(max_energy_j=None if max_energy_mj is None else
                    _positive("--max-energy-mj", max_energy_mj) * 1e-3,
                    max_latency_s=None if max_latency_ms is None else
                    _positive("--max-latency-ms", max_latency_ms) * 1e-3,
                    min_metric=min_accuracy)
    parsed = parse_space(space or [])
    if not parsed and search != "optuna":
        raise InputError("give at least one --space KEY=V1,V2,...")
    if target.lower() in TASKS:
        if data is not None:
            raise InputError(f"--data is for a graph target; {target} brings its own data")
        from spinnq.sweep.tasks import task_problem

        problem = task_problem(target.lower(), out, quick=quick, episodes=episodes,
                               seed=seed, space=parsed, quiet=quiet)
    else:
        if not Path(target).exists():
            raise InputError(f"not a task ({', '.join(TASKS)}) and no such graph file",
                             file=target)
        if data is None:
            raise InputError(f"a graph target needs --data D.npz (x, y): {target}")
        from spinnq.sweep.trial import GraphProblem

        problem = GraphProblem.from_files(target, data, convention=convention)
    cfg = SweepConfig(space=parsed, search=search, samples=samples, seed=seed, budget=budget,
                      ray=RayOptions(address=address, cpus=cpus, threads=threads),
                      resume=resume, quiet=quiet)
    res = run_sweep(problem, out, cfg, target=str(target))
    console.print(f"{len(res['records'])} trials ({res['ran']} run now, {res['skipped']} "
                  f"already done), {len(res['pareto'])} on the front")
    from spinnq.sweep.report import summary_lines

    for line in summary_lines(res["info"], problem.metric):
        console.print(line, highlight=False)
    for name in ("trials", "pareto", "html", "best_nir"):
        if name in res["paths"]:
            console.print(f"wrote {res['paths'][name]}")
