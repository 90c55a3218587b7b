"""The control tasks' entry for `spinnq run`: RunOptions -> ControlConfig -> run_control,
then a short table on the console."""

from __future__ import annotations

import ast

from rich.console import Console
from rich.table import Table

from spinnq.errors import InputError
from spinnq.tasks.control.run import ControlConfig, default_config, run_control


def _value(text: str):
    """'0.001' -> 0.001, '128,128' -> (128, 128), 'true' -> True, else the string."""
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    if t.lower() == "none":
        return None
    if "," in t:
        return tuple(_value(p) for p in t.split(",") if p.strip())
    try:
        return ast.literal_eval(t)
    except (ValueError, SyntaxError):
        return t


def config_from_options(opts) -> ControlConfig:
    if opts.data_dir is not None:
        raise InputError(f"--data-dir has no meaning for {opts.task} (Gymnasium environment)")
    if opts.preset is not None:
        raise InputError(f"--preset has no meaning for {opts.task}: use --set key=value")
    over = {k: _value(v) for k, v in opts.overrides.items()}
    clash = {"env", "seed", "quick", "steps"} & set(over)
    if clash:
        raise InputError(f"--set {', '.join(sorted(clash))}: use the task argument, --seed, "
                         "--quick or --steps instead")
    if opts.episodes is not None:
        if opts.episodes < 1:
            raise InputError(f"--episodes must be >= 1, got {opts.episodes}")
        over["eval_episodes"] = opts.episodes
    return default_config(opts.task, seed=opts.seed, quick=opts.quick, steps=opts.steps, **over)


def run_task(opts) -> dict:
    cfg = None if opts.resume is not None else config_from_options(opts)
    if opts.resume is not None and (opts.overrides or opts.steps or opts.episodes):
        raise InputError("--resume continues a run with its own config.json; drop --set, "
                         "--steps and --episodes")
    rep = run_control(cfg or ControlConfig(), out=opts.out, resume=opts.resume,
                      quiet=opts.quiet)
    _print(rep)
    return rep


def _print(rep: dict) -> None:
    t = Table(title=f"{rep['env']}: closed-loop return per stage ({len(rep['stages'])} stages)")
    for c in ("stage", "mean", "std", "min", "= float", "episodes"):
        t.add_column(c)
    for s in rep["stages"]:
        agree = s.get("actions_equal_float")
        t.add_row(s["name"], f"{s['mean_return']:.1f}", f"{s['std_return']:.1f}",
                  f"{s['min_return']:.0f}", "" if agree is None else f"{agree:.1%}",
                  str(s["episodes"]))
    Console().print(t)
    chip = rep.get("chip")
    if chip:
        Console().print(f"chip (modelled): {chip['pes']} PEs, {chip['timesteps']} steps/decision,"
                        f" latency {chip['latency_s'] * 1e3:.2f} ms, energy "
                        f"{chip['energy_j'] * 1e3:.3f} mJ per decision at "
                        f"{chip['operating_point']}")


__all__ = ["config_from_options", "run_task"]
