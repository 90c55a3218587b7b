"""The stages chained for a user's whole job: compile -> place -> emulate in one call.

A thin layer over `spinnq.s2` (and, for reports, `spinnq.report`): the place for orchestration,
so the stage modules stay single-purpose and the CLI stays a mapping of flags onto calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.graph.model import Graph, from_nir, read_graph
from spinnq.graph.simulate import SimConfig, simulate
from spinnq.report.write import fmt
from spinnq.resolver import DEFAULT_TICK_S, RunSettings, resolve
from spinnq.s2.chip import ChipModel
from spinnq.s2.compile import S2Config
from spinnq.s2.compile import compile as compile_graph
from spinnq.s2.emulate import emulate
from spinnq.s2.energy import Cost, CycleCosts, energy
from spinnq.s2.place import place
from spinnq.s2.program import Placement, Program, Run


def deploy(graph, x, cfg: S2Config | None = None, steps: int | None = None,
           record: list[str] | None = None, *, settings: RunSettings | dict | None = None,
           backend: str = "emulator", eth_ip: str | None = None,
           on_placed: Callable[[Program, Placement], object] | None = None,
           on_step: Callable[[int, int], None] | None = None, **flags):
    """Compile, place and run in one call: (Program, Placement, Run). Run settings:
    keywords named like `RunSettings`' fields (convention=, reset=, dt=, bits=, ...) and/or
    one `settings` object, resolved with the graph's metadata (`spinnq.resolver`), as
    `spinnq deploy` does; `cfg`, when given, wins. `backend`: the bit-exact emulator, or
    "spinnaker2" (a board through py-spinnaker2 at `eth_ip`, given x as the user stored it).
    `on_placed(program, placement)` runs before the (possibly long) run, `on_step(done,
    total)` during it: `spinnq deploy` prints the placement and a progress bar with them."""
    if not isinstance(graph, Graph):
        graph = (read_graph(graph) if isinstance(graph, str | Path) else from_nir(graph))
    cfg = cfg if cfg is not None else resolve(graph, settings, **flags).s2()
    program = compile_graph(graph, cfg)
    placement = place(program, cfg)
    if on_placed is not None:
        on_placed(program, placement)
    rec = list(record or ()) or None
    if backend == "emulator":
        return program, placement, emulate(program, x, steps, rec, on_step=on_step)
    if backend != "spinnaker2":
        raise InputError(f"backend must be emulator or spinnaker2, got {backend!r}")
    from spinnq.s2.backend import run_spinnaker2

    return program, placement, run_spinnaker2(graph, x, cfg, eth_ip, steps, rec)


def price(placement: Placement, run: Run, program: Program | None = None,
          op: str | None = None, tick_s: float | str | None = None, *,
          settings: RunSettings | dict | None = None, costs: CycleCosts | None = None,
          input_steps: int | None = None, model: ChipModel | None = None) -> Cost:
    """`sq.energy`: the modelled cost of one inference, at the operating point and tick the
    commands use (`spinnq.resolver`): `op`/`tick_s` given (not None; tick_s in seconds or
    'shortest') > `settings` > spinnq's defaults (0.8V, the 1 ms tick), so the API and
    `spinnq energy` price a run alike. (`spinnq.s2.energy.energy` is the model itself: its
    `tick_s=None` is the shortest tick.)"""
    rs = resolve(None, settings, operating_point=op, tick_s=tick_s)
    return energy(placement, run, program, op=rs.operating_point, tick_s=rs.tick_s,
                  costs=costs, input_steps=input_steps, model=model)


def class_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of samples whose most active output neuron is the same in a and b."""
    ca = a.flatten(2).sum(1).argmax(-1)
    cb = b.flatten(2).sum(1).argmax(-1)
    return float((ca == cb).float().mean())


def deploy_report(run_dir: Path, graph: Graph, x: np.ndarray, cfg: S2Config, program: Program,
                  placement: Placement, run: Run, op: str = "0.8V",
                  tick_s: float | None = DEFAULT_TICK_S, baseline: bool = True,
                  task: str = "deploy", settings: RunSettings | None = None,
                  model=None) -> dict[str, Path]:
    """Report of a deployment: stages (float reference vs chip on the same input: output
    spikes per sample and agreement of the most active output), the modelled chip cost, the
    float reference measured on this CPU, written into `run_dir`; `settings`: the resolved
    settings it ran with, recorded in its notes."""
    from spinnq.baseline import MeasureConfig, graph_fn, measure
    from spinnq.report import chip_report, stage

    stages, notes = [], list(program.notes)
    if settings is not None:
        notes.append(f"run {settings.line()}")
    if not run.counters:  # a real board reports no activity counters: take the emulator's
        run = replace(run, counters=emulate(program, x, run.steps).counters)
        notes.append("the backend reports no activity counters: the chip cost is modelled "
                     "from the emulator's counters for the same input")
    cost = energy(placement, run, program, op=op, tick_s=tick_s, model=model)
    sim_cfg = SimConfig(dt=cfg.dt, reset=cfg.reset, integrator=cfg.integrator,
                        convention=cfg.convention,
                        record=tuple(o for o in program.outputs if o in graph.nodes))
    xb = torch.as_tensor(np.asarray(x, dtype=np.float32))
    xb = xb.unsqueeze(0) if xb.ndim == len(graph.input_shape) + 1 else xb
    ref = simulate(graph, xb, sim_cfg)
    outs = [o for o in program.outputs if o in ref.spikes and o in run.spikes]
    if outs:
        o = outs[0]
        stages += [stage("float reference", f"output spikes per sample ({o})",
                         float(ref.spikes[o].sum() / xb.shape[0])),
                   stage("on chip (emulated)", f"output spikes per sample ({o})",
                         float(run.spikes[o].sum() / xb.shape[0]), kind="emulated"),
                   stage("float reference", "class agreement with float", 1.0),
                   stage("on chip (emulated)", "class agreement with float",
                         class_agreement(ref.spikes[o], run.spikes[o]), kind="emulated")]
    else:
        notes.append("no spiking output population to compare with the float reference")
    baselines = []
    if baseline:
        m = measure(graph_fn(graph, SimConfig(dt=cfg.dt, reset=cfg.reset,
                                              integrator=cfg.integrator,
                                              convention=cfg.convention)),
                    xb[:1], "cpu", MeasureConfig(batch=8, repeats=5, warmup=1, energy_s=2.0,
                                                 idle_s=0.5))
        baselines.append(m)
        if torch.cuda.is_available():
            baselines.append(measure(graph_fn(graph), xb[:1], "cuda",
                                     MeasureConfig(batch=8, repeats=5, warmup=1)))
    notes.append(f"chip: {op}, tick {'shortest feasible' if tick_s is None else fmt(tick_s, 's')}"
                 f"; baselines run spinnq's float reference simulator (not a trained torch "
                 "model) at batch 1")
    notes.append("chip energy is modelled by replaying the PE program from the emulator's "
                 "activity counters with published chip power figures (constants and their "
                 "sources: spinnq/s2/chip.py); base (asleep floor x time) and dynamic parts are "
                 "given separately; the check against every published SpiNNaker2 run: "
                 "benchmarks/results/energy_calibration.json")
    everything = emulate(program, np.asarray(xb[:1]), run.steps, list(program.populations))
    return chip_report(run_dir, task, program, placement, run, cost, stages, baselines, notes,
                       raster_run=everything)
