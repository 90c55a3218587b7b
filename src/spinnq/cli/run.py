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

from spinnq.cli import app, console
from spinnq.config import DEFAULT_SEED
from spinnq.errors import InputError

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
    preset: str | None = None  # a task's named set of settings (gesture: fast | seed)


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise InputError(f"--set expects key=value (e.g. dqn.lr=0.001), got {it!r}")
        out[k.strip()] = v.strip()
    return out


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


@app.command("run")
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
    preset: str = typer.Option(None, "--preset", help="Named settings (gesture: fast, the "
                               "default; seed: the seed paper's 600 x 1 ms frames on 147 PEs)."),
) -> None:
    """Train, quantise, deploy on the emulated SpiNNaker2 and report, in one run folder."""
    fn = runner(task)
    name = task.strip().lower() if task.strip().lower() in RUNNERS else task.strip()
    opts = RunOptions(name, seed, quick, resume, out, steps, episodes,
                      data_dir, quiet, _parse_sets(set_), preset)
    rep = fn(opts)
    console.print(f"report: {rep.get('run_dir', '?')}/report.md")
