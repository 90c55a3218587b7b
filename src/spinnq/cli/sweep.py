"""`spinnq sweep`: energy-aware design search over a task or a NIR graph with labelled data.

    spinnq sweep TARGET --out DIR [--data D.npz] --space KEY=V1,V2,... [--space ...]
                 [--samples N] [--search grid|random|optuna] [--address auto|HOST:PORT]
                 [--resume] [--max-energy-mj X] [--max-latency-ms L] [--min-accuracy A]
                 [--convention nir|snntorch|norse|...] [--reset zero|subtract] [--dt S]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spinnq.cli.app import console, error_line, interrupted
from spinnq.cli.common import ConventionOpt, DtOpt, ResetOpt
from spinnq.errors import InputError
from spinnq.files import check_outputs
from spinnq.sweep.space import KEYS

if TYPE_CHECKING:  # torch and the compiler load when a command runs, not for --help
    from spinnq.sweep.runner import SweepConfig

TASKS = ("cartpole", "acrobot", "gesture")
CONTROL = ("cartpole", "acrobot")


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
    reset: str = ResetOpt,
    dt: float = DtOpt,
    quick: bool = typer.Option(False, "--quick", help="Tasks: the quick-sized training and "
                               "evaluation."),
    episodes: int = typer.Option(None, "--episodes", help="Control tasks: closed-loop "
                                 "episodes per trial."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Search quantization and chip settings: accuracy against energy, the Pareto front, and
    the best configuration under a budget (trials run on Ray Tune)."""
    from spinnq.sweep.engine import RayOptions
    from spinnq.sweep.results import Budget
    from spinnq.sweep.runner import SweepConfig, check_options, open_folder
    from spinnq.sweep.space import SEARCHES, parse_space

    if search not in SEARCHES:
        raise InputError(f"--search must be one of {', '.join(SEARCHES)}, got {search!r}")
    parsed = parse_space(space or [])
    if not parsed and search != "optuna":
        raise InputError("give at least one --space KEY=V1,V2,...")
    is_task = target.lower() in TASKS
    ray = RayOptions(address=address, cpus=cpus, threads=threads)
    check_options({"--seed": seed, "--samples": samples, "--threads": threads, "--cpus": cpus,
                   "--episodes": episodes, "--max-energy-mj": max_energy_mj,
                   "--max-latency-ms": max_latency_ms}, parsed,
                  "return" if target.lower() in CONTROL else "accuracy", min_accuracy,
                  not is_task, ray)
    check_outputs((out, "dir", "--out"), inputs=[(data, "--data"), (
        None if target.lower() in TASKS else target, "TARGET")])
    budget = Budget(max_energy_j=None if max_energy_mj is None else max_energy_mj * 1e-3,
                    max_latency_s=None if max_latency_ms is None else max_latency_ms * 1e-3,
                    min_metric=min_accuracy)
    problem, ident = _target(target, data, {"convention": convention, "reset": reset,
                                             "dt": dt}, seed, quick, episodes, parsed)
    cfg = SweepConfig(space=parsed, search=search, samples=samples, seed=seed, budget=budget,
                      ray=ray, resume=resume, quiet=quiet)
    folder = open_folder(out, ident, resume)
    try:
        res = _sweep(problem, target, out, cfg, quick=quick, episodes=episodes)
    except KeyboardInterrupt as e:  # Interrupted: how many trials finished, how to go on
        interrupted(e)
        raise typer.Exit(130) from None
    except BaseException:
        if folder.made and not any((out / d).exists() for d in ("trials", "tasks")):
            folder.discard()  # refused before any work: no half-made sweep folder
        raise
    finally:
        folder.release()
    _print(res, res["metric"])


def _target(target: str, data: Path | None, run: dict, seed: int, quick: bool,
            episodes: int | None, parsed: dict) -> tuple[object, dict]:
    """(the graph problem or None for a task, the sweep's identity), every input checked
    before the sweep folder is made (a task's networks are trained inside it, later).
    `run`: a graph's convention, reset and dt (None where not given)."""
    from spinnq.sweep.runner import identity
    from spinnq.sweep.trial import quant_stages

    if target.lower() in TASKS:
        if data is not None:
            raise InputError(f"--data is for a graph target; {target} brings its own data")
        if any(v is not None for v in run.values()):
            raise InputError(f"--convention, --reset and --dt are for a graph target; {target}"
                             " runs its network as it was trained")
        if target.lower() == "gesture" and episodes is not None:
            raise InputError("--episodes is for control tasks; gesture evaluates its test split")
        for stage, where in quant_stages(parsed).items():
            raise InputError(f"--space {where}: {stage} is for graph targets; the tasks "
                             "quantize their float network at compile time")
        return None, identity(target.lower(), None, None, seed, quick=quick,
                              episodes=episodes)
    if not Path(target).is_file():
        raise InputError(f"not a task ({', '.join(TASKS)}) and no such graph file",
                         file=target)
    if data is None:
        raise InputError(f"a graph target needs --data D.npz (x, y): {target}")
    from spinnq.sweep.trial import GraphProblem

    problem = GraphProblem.from_files(target, data, **run)
    needs = quant_stages(parsed)
    if needs and problem.x_train is None:
        raise InputError(f"--space {next(iter(needs.values()))} needs training data: "
                         "x_train/y_train in the data file", file=str(data))
    return problem, identity(target, problem, data, seed)


def _sweep(problem, target: str, out: Path, cfg: SweepConfig, *, quick: bool,
           episodes: int | None) -> dict:
    from spinnq.sweep.runner import run_sweep

    if problem is None:
        from spinnq.sweep.tasks import task_problem

        problem = task_problem(target.lower(), out, quick=quick, episodes=episodes,
                               seed=cfg.seed, space=cfg.space, quiet=cfg.quiet)
    console.print("default trial's " + problem.run_settings(problem.default()).line(),
                  highlight=False, soft_wrap=True)
    res = run_sweep(problem, out, cfg, target=str(target))
    return res | {"metric": problem.metric}


def _print(res: dict, metric: str) -> None:
    """The summary; a sweep whose every trial failed says so and exits 1."""
    from spinnq.sweep.results import ok

    console.print(f"{len(res['records'])} trials ({res['ran']} run now, {res['skipped']} "
                  f"already done), {len(res['pareto'])} on the front")
    from spinnq.sweep.report import summary_lines

    for line in summary_lines(res["info"], metric):
        console.print(line, highlight=False)
    for name in ("trials", "pareto", "html", "best_nir"):
        if name in res["paths"]:
            console.print(f"wrote {res['paths'][name]}")
    failed = [r for r in res["records"] if not ok(r, metric)]
    if failed and len(failed) == len(res["records"]):
        error_line(f"every trial failed ({len(failed)}); the first: "
                   f"{str(failed[0].get('error') or 'no result')[:200]} (see trials.csv)")
        raise typer.Exit(1)
    if failed:
        console.print(f"{len(failed)} of {len(res['records'])} trials failed (error column of "
                      "trials.csv)", highlight=False)
