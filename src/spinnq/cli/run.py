"""`spinnq run TASK`: one command per task, from training to the chip report.

Tasks are a dict from name to "module:function" (imported only when that task runs, so the
CLI starts fast and optional dependencies stay optional). A runner takes `RunOptions` and
returns the report dict (with "run_dir"). To add a task, add one entry to `RUNNERS`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import typer

from spinnq.cli.app import console, interrupted
from spinnq.config import DEFAULT_SEED, resolve_device
from spinnq.errors import InputError
from spinnq.files import check_outputs
from spinnq.settings import SEED, Limit, check_flag, parse_sets

RUNNERS: dict[str, str] = {
    "cartpole": "spinnq.tasks.control.cli:run_task",
    "acrobot": "spinnq.tasks.control.cli:run_task",
    "mountaincar": "spinnq.tasks.control.cli:run_task",
    "lunarlander": "spinnq.tasks.control.cli:run_task",
    "gesture": "spinnq.tasks.gesture.runner:run_task",
}


@dataclass
class RunOptions:
    """What every runner receives (a runner refuses options that make no sense for it)."""

    task: str
    seed: int = DEFAULT_SEED
    quick: bool = False
    resume: Path | None = None
    out: Path | None = None
    steps: int | None = None  # timesteps per decision / sample
    episodes: int | None = None  # evaluation episodes (control)
    data_dir: Path | None = None  # datasets on disk (gesture)
    quiet: bool = False
    overrides: dict[str, str] = field(default_factory=dict)  # --set key=value
    force: bool = False  # --force: empty the run folder --out first
    preset: str | None = None  # a task's named set of settings (gesture: fast | seed)


STEPS = Limit(1, 100_000)  # timesteps per decision / sample (a task may allow fewer)
EPISODES = Limit(1, 100_000)
GYM_RUNNER = "spinnq.tasks.control.cli:run_task"  # any other Gymnasium id: a control task


def runner(task: str):
    key = task.strip().lower()
    if key in RUNNERS:
        target = RUNNERS[key]
    else:
        import gymnasium as gym

        if task.strip() not in gym.registry:
            raise InputError(f"unknown task {task!r}; tasks: {', '.join(RUNNERS)}, or a "
                             "Gymnasium environment id with discrete actions")
        target = GYM_RUNNER
    mod, _, fn = target.partition(":")
    return getattr(importlib.import_module(mod), fn)


def device_sets(task: str, device: str) -> dict[str, str]:
    """The settings `--device` stands for: the gesture trainers' `device` (resolved, so a
    missing GPU is refused before anything runs); other tasks train on the CPU only."""
    if task.strip().lower() != "gesture":
        raise InputError(f"--device is for gesture (its trainers); {task} trains on the CPU")
    resolve_device(device)
    return {"train.device": device, "qat.device": device}


def run_cmd(
    task: str = typer.Argument(..., help=f"Task: {', '.join(RUNNERS)}.", show_default=False),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed for everything."),
    quick: bool = typer.Option(False, "--quick", help="Tiny budgets (tests, smoke runs)."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this folder."),
    out: Path = typer.Option(None, "--out", help="Run folder (default runs/<task>-<time>)."),
    steps: int = typer.Option(None, "--steps", "-T",
                              help="Timesteps per decision (control: default 10)."),
    episodes: int = typer.Option(None, "--episodes",
                                 help="Closed-loop evaluation episodes per stage (100)."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Dataset folder (gesture)."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: key=value "
                                   "(repeatable), e.g. dqn.lr=0.001 or net.hidden=128,128."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    force: bool = typer.Option(False, "--force", help="Start over in --out: empty that run "
                               "folder first (never a folder that is not a spinnq run)."),
    preset: str = typer.Option(None, "--preset", help="Named settings (gesture: fast, the "
                               "default; seed: the seed paper's 600 x 1 ms frames on 147 PEs)."),
    device: str = typer.Option(None, "--device", help="Where torch trains (gesture: cpu, or "
                               "cuda where torch sees a GPU); sets train.device and "
                               "qat.device. The chip stages stay emulated on the CPU."),
) -> None:
    """Train, quantise, deploy on the emulated SpiNNaker2 and report, in one run folder."""
    # every flag and --set value is checked before anything is imported, made or trained
    check_flag("--seed", seed, SEED)
    check_flag("--steps", steps, STEPS)
    check_flag("--episodes", episodes, EPISODES)
    sets = parse_sets(set_)
    if device is not None:
        sets = device_sets(task, device) | sets
    if resume is not None and out is not None:
        raise InputError("--resume continues the run in its own folder; drop --out")
    check_outputs((out, "dir", "--out"), inputs=[(data_dir, "--data-dir")])
    fn = runner(task)
    name = task.strip().lower() if task.strip().lower() in RUNNERS else task.strip()
    opts = RunOptions(name, seed, quick, resume, out, steps, episodes,
                      data_dir, quiet, sets, force, preset)
    try:
        rep = fn(opts)
    except KeyboardInterrupt as e:  # Interrupted: "continue with spinnq run ... --resume D"
        interrupted(e)
        raise typer.Exit(130) from None
    console.print(f"report: {rep.get('run_dir', '?')}/report.md")
