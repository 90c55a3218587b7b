"""`spinnq energy`: what a NIR graph costs on SpiNNaker2 (modelled) for a given input, and
the report writer `deploy --report DIR` shares.

    spinnq energy GRAPH.nir --input X.npy [--operating-point LEVEL|dvfs] [--tick-ms T]
                  [--json OUT.json] [--report DIR [--no-baseline]]

LEVEL: one of the 4 DVFS levels of a PE (0.5V/75MHz, 0.5V, 0.8V/150MHz, 0.8V).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.table import Table

from spinnq.cli.app import console
from spinnq.cli.common import (
    ConventionOpt,
    DtOpt,
    GraphArg,
    IntegratorOpt,
    ResetOpt,
    load_input,
)
from spinnq.cli.s2 import (
    BitsOpt,
    DelayedResetOpt,
    GraphScalesOpt,
    NeuronsPerPeOpt,
    StepsOpt,
    WeightScaleOpt,
    check_run_inputs,
    s2_config,
    warn_silent,
)
from spinnq.errors import InputError
from spinnq.files import check_outputs, write_json

if TYPE_CHECKING:  # torch and the compiler load when a command runs, not for --help
    from spinnq.s2.energy import Cost

OpOpt = typer.Option("0.8V", "--operating-point", help="A DVFS level for every PE: 0.5V/75MHz, "
                     "0.5V (150 MHz), 0.8V/150MHz, 0.8V (300 MHz); or dvfs (per PE and tick "
                     "the cheapest level that finishes the PE's work within the tick).")
TickOpt = typer.Option(None, "--tick-ms", help="Fixed tick in ms (real time when it equals dt; "
                       "the papers used 1 ms); default: the shortest tick every PE meets.")


def tick_seconds(tick_ms: float | None) -> float | None:
    if tick_ms is None:
        return None
    if not np.isfinite(tick_ms) or tick_ms <= 0:
        raise InputError(f"--tick-ms must be a positive number, got {tick_ms}")
    return tick_ms * 1e-3


def tick_text(cost: Cost, dt: float | None = None, speedup: float = 1.0) -> str:
    """What the tick means: met or stretched, and real time only when the requested tick
    equals dt x speed-up (one tick per model step of dt)."""
    from spinnq.report.write import fmt

    tick = fmt(cost.tick_s, "s")
    if cost.tick_requested_s is None:
        return f"{tick} (the shortest every PE meets at {cost.operating_point})"
    if not cost.realtime:
        return (f"{tick} longest (requested {fmt(cost.tick_requested_s, 's')} NOT met at "
                f"{cost.overrun_steps} steps: the run stretches to {fmt(cost.run_s, 's')}, "
                "not real time)")
    text = f"{tick} (feasible: every PE meets it at every step"
    if dt is None:
        return text + ")"
    model = dt * speedup
    if np.isclose(cost.tick_requested_s, model, rtol=1e-9):
        return text + f"; real time: one tick per {fmt(dt, 's')} step)"
    x = cost.tick_requested_s / model
    how = f"{x:.3g}x slower than" if x > 1 else f"{1 / x:.3g}x faster than"
    return text + f"; {how} real time for dt {fmt(dt, 's')})"


def print_cost(cost: Cost, dt: float | None = None, speedup: float = 1.0) -> None:
    """The chip table and the per-population breakdown (base + dynamic, adding up to the
    total with the chip base row)."""
    from spinnq.report.write import fmt

    t = Table(title=f"SpiNNaker2 cost per inference (modelled), {cost.operating_point}")
    t.add_column("quantity")
    t.add_column("value")
    levels = ", ".join(f"{k} {v:.0%}" for k, v in cost.levels.items() if v > 0)
    for k, v in (("PEs / chips", f"{cost.pes} / {cost.chips}"),
                 ("memory, largest PE", f"{cost.memory_max_bytes / 1024:.1f} kB"),
                 ("timesteps", f"{cost.steps} (depth {cost.depth})"),
                 ("tick", tick_text(cost, dt, speedup)),
                 ("latency", fmt(cost.latency_s, "s")),
                 ("average power", fmt(cost.power_w, "W")),
                 ("energy", fmt(cost.energy_j, "J")),
                 ("  base (chip off + PEs asleep, x time)", fmt(cost.base_j, "J")),
                 ("  dynamic (busy cycles + MACs)", fmt(cost.dynamic_j, "J")),
                 ("busiest PE-step load", f"{cost.peak_load:.1%} of the tick"),
                 ("PE-ticks per level", levels)):
        t.add_row(k, v)
    console.print(t)
    p = Table(title="per population (modelled; rows add up to the energy)")
    p.add_column("population", overflow="fold")
    for c in ("PEs", "neurons", "energy", "base", "dynamic", "spk/step"):
        p.add_column(c, no_wrap=True, justify="right")
    for name, d in cost.per_population.items():
        p.add_row(name, str(d["pes"]), f"{d['neurons']:,}", fmt(d["energy_j"], "J"),
                  fmt(d["base_j"], "J"), fmt(d["dynamic_j"], "J"),
                  f"{d['counters'].get('spikes', 0) / cost.steps:,.1f}")
    p.add_row("chip base", "", "", fmt(cost.chip_base_j, "J"), fmt(cost.chip_base_j, "J"),
              fmt(0.0, "J"), "")
    p.add_row("total", str(cost.pes), "", fmt(cost.energy_j, "J"), fmt(cost.base_j, "J"),
              fmt(cost.dynamic_j, "J"), "")
    console.print(p)


def energy_cmd(
    graph: Path = GraphArg,
    input: Path = typer.Option(..., "--input", help="Input spikes .npy (0/1): (T, *input_shape)"
                               " or (B, T, *input_shape); counters are averaged over samples.",
                               show_default=False),
    operating_point: str = OpOpt,
    tick_ms: float = TickOpt,
    dt: float = DtOpt,
    reset: str = ResetOpt,
    convention: str = ConventionOpt,
    delayed_reset: bool = DelayedResetOpt,
    integrator: str = IntegratorOpt,
    weight_scale: str = WeightScaleOpt,
    bits: int = BitsOpt,
    graph_scales: bool = GraphScalesOpt,
    neurons_per_pe: list[str] = NeuronsPerPeOpt,
    steps: int = StepsOpt,
    json_out: Path = typer.Option(None, "--json", help="Write the full cost (per PE too) here."),
    report: Path = typer.Option(None, "--report", help="Write report.json/.md/.html here."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="With --report: "
                                  "measure the float reference on this CPU (and GPU)."),
) -> None:
    """Model what a NIR graph costs on SpiNNaker2: tick, latency, power, energy per inference."""
    from spinnq.graph.model import read_graph
    from spinnq.pipeline import deploy_report
    from spinnq.report.write import fmt
    from spinnq.s2.compile import compile
    from spinnq.s2.emulate import emulate
    from spinnq.s2.energy import OP_CHOICES, energy, shortest_ticks
    from spinnq.s2.place import place

    if operating_point not in OP_CHOICES:
        raise InputError(f"--operating-point must be one of {', '.join(OP_CHOICES)}, "
                         f"got {operating_point!r}")
    tick_s = tick_seconds(tick_ms)
    check_outputs((json_out, "file", "--json"), (report, "dir", "--report"))
    g = read_graph(graph)
    cfg = s2_config(g, dt, reset, convention, integrator, weight_scale, bits, graph_scales,
                    neurons_per_pe, delayed_reset=delayed_reset)
    x = load_input(input)
    check_run_inputs(g, x, steps, None)
    program = compile(g, cfg)
    placement = place(program, cfg)
    run = emulate(program, x, steps)
    cost = energy(placement, run, program, op=operating_point, tick_s=tick_s)
    print_cost(cost, dt=cfg.dt)
    ticks = shortest_ticks(placement, run, program)
    console.print("shortest feasible tick per level: "
                  + ", ".join(f"{k} {fmt(v, 's')}" for k, v in ticks.items()))
    warn_silent(program, run)
    if json_out:
        console.print(f"wrote {write_json(json_out, cost.to_dict() | {'shortest_ticks': ticks})}")
    if report:
        paths = deploy_report(report, g, x, cfg, program, placement, run, operating_point,
                              tick_s, baseline, task=f"energy {graph.name}")
        console.print(f"wrote {paths['html']}")
