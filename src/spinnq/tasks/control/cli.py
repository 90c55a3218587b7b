"""The control tasks' entry for `spinnq run`: RunOptions -> ControlConfig -> run_control,
then a short table on the console."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from spinnq.errors import InputError
from spinnq.tasks.control.run import ControlConfig, default_config, run_control


def config_from_options(opts) -> ControlConfig:
    """RunOptions -> a checked ControlConfig (types and ranges: `spinnq.settings`)."""
    if opts.data_dir is not None:
        raise InputError(f"--data-dir has no meaning for {opts.task} (Gymnasium environment)")
    if opts.preset is not None:
        raise InputError(f"--preset has no meaning for {opts.task}: use --set key=value")
    clash = {"env", "seed", "quick", "encoder.steps", "eval_episodes"} & set(opts.overrides)
    if clash:
        raise InputError(f"--set {', '.join(sorted(clash))}: use the task argument, --seed, "
                         "--quick, --steps or --episodes instead")
    over = {}
    if opts.episodes is not None:
        over["eval_episodes"] = opts.episodes
    return default_config(opts.task, seed=opts.seed, quick=opts.quick, steps=opts.steps,
                          sets=opts.overrides, **over)


def run_task(opts) -> dict:
    if opts.resume is not None:
        if opts.overrides or opts.steps or opts.episodes or opts.out or opts.force:
            raise InputError("--resume continues a run with its own config.json; drop --set, "
                             "--steps, --episodes, --out and --force")
        cfg = ControlConfig()
    else:
        cfg = config_from_options(opts)
    rep = run_control(cfg, out=opts.out, resume=opts.resume, quiet=opts.quiet,
                      force=opts.force, task=opts.task)
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
