"""`spinnq inspect` and `spinnq simulate`: look at a NIR graph and run its float reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and the compiler load when a command runs, not for --help
    from spinnq.graph.model import Graph
import numpy as np
import typer
from rich.table import Table

from spinnq.cli.app import console
from spinnq.cli.common import (
    PROGRESS_MIN_STEPS,
    ConventionOpt,
    DtOpt,
    GraphArg,
    IntegratorOpt,
    RecordOpt,
    ResetOpt,
    check_run_memory,
    load_input,
    save_npz,
    shown,
)
from spinnq.errors import InputError
from spinnq.files import check_outputs


def _summary(node) -> str:
    parts = []
    for attr, val in vars(node).items():
        if attr in ("input_type", "output_type", "metadata") or val is None:
            continue
        a = np.asarray(val)
        if a.dtype.kind not in "biuf":
            continue
        if a.size == 1:
            parts.append(f"{attr}={a.item():.4g}")
        elif np.all(a == a.ravel()[0]):
            parts.append(f"{attr}={a.ravel()[0]:.4g} (x{a.size})")
        else:
            parts.append(f"{attr}[{'x'.join(map(str, a.shape))}] in [{a.min():.3g}, {a.max():.3g}]")
    return ", ".join(parts)


def graph_counts(g: Graph) -> tuple[int, int]:
    """(neurons, weights) of a graph: neurons are elements of stateful nodes."""
    import nir

    from spinnq.graph.nodes import STATEFUL

    neurons = sum(math.prod(g.shapes[n]) for n, v in g.nodes.items() if isinstance(v, STATEFUL)
                  and not isinstance(v, nir.Delay))
    weights = sum(int(np.asarray(v.weight).size) for v in g.nodes.values() if hasattr(v, "weight"))
    return neurons, weights


def inspect(graph: Path = GraphArg) -> None:
    """Show a NIR graph: nodes, edges, shapes, parameters, neuron and weight counts."""
    from spinnq.graph import read_graph
    from spinnq.graph.nodes import SPIKING, STATEFUL

    g = read_graph(graph)
    t = Table(title=f"{shown(graph)}  ({len(g.nodes)} nodes, {len(g.edges)} edges)")
    for c in ("node", "type", "output shape", "inputs", "parameters"):
        t.add_column(c, overflow="fold")
    for n in g.order:
        v = g.nodes[n]
        kind = type(v).__name__ + ("" if isinstance(v, SPIKING) or not isinstance(v, STATEFUL)
                                   else " (non-spiking)")
        ins = ", ".join(shown(s) + (" (t-1)" if (s, n) in g.recurrent else "")
                        for s in g.predecessors(n))
        t.add_row(shown(n), kind, str(g.shapes[n]), ins, shown(_summary(v)))
    console.print(t)
    neurons, weights = graph_counts(g)
    console.print(f"input shape {g.input_shape}; outputs {shown(', '.join(g.outputs))}; "
                  f"neurons {neurons:,}; weights {weights:,}; recurrent edges "
                  f"{len(g.recurrent)}")


def simulate_cmd(
    graph: Path = GraphArg,
    input: Path = typer.Option(..., "--input", help="Input .npy: (T, *input_shape) or "
                               "(B, T, *input_shape).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output .npz: spikes/<node> (uint8), "
                             "v/<node> (float32) and out/<node> (float32, non-spiking outputs), "
                             "each (B, T, *shape).", show_default=False),
    dt: float = DtOpt,
    reset: str = ResetOpt,
    integrator: str = IntegratorOpt,
    record: list[str] = RecordOpt,
    float64: bool = typer.Option(False, "--float64", help="Simulate in float64."),
    convention: str = ConventionOpt,
    chip_timing: bool = typer.Option(False, "--chip-timing", help="Model SpiNNaker2's timing: "
                                     "one step of latency per projection, biases from step 0, "
                                     "T + depth steps (equals `deploy` spike for spike with "
                                     "integer weights)."),
    device: str = typer.Option("cpu", "--device", help="Where the simulator steps: cpu, or "
                               "cuda where torch sees a GPU (the traces come back to the CPU)."),
) -> None:
    """Run the float reference simulator of a NIR graph on an input array."""
    from spinnq.config import resolve_device
    from spinnq.graph import read_graph, simulate
    from spinnq.graph.simulate import as_batch, chip_depth, default_record
    from spinnq.helpers import progress
    from spinnq.resolver import resolve

    check_outputs((out, "file", "--out"), inputs=[(graph, "GRAPH"), (input, "--input")])
    g = read_graph(graph)
    rs = resolve(g, dt=dt, reset=reset, convention=convention, integrator=integrator)
    console.print(f"settings: convention {rs.convention}, reset {rs.reset}, dt {rs.dt:g} s, "
                  f"integrator {rs.integrator}", highlight=False, soft_wrap=True)
    cfg = rs.sim(float64=float64, record=tuple(record or ()), chip_timing=chip_timing,
                 device=device)
    resolve_device(cfg.device)  # a missing GPU refused before the input is read
    x = as_batch(load_input(input), g.input_shape)
    for r in cfg.record:
        if r not in g.nodes:
            raise InputError(f"--record {r}: no such node (nodes: {', '.join(g.order)})")
    steps = int(x.shape[1]) + (chip_depth(g, cfg.dt) if chip_timing else 0)
    check_run_memory(g, batch=x.shape[0], steps=steps, record=cfg.record or default_record(g),
                     dt=cfg.dt, kind="simulate")
    with progress(disable=steps < PROGRESS_MIN_STEPS) as bar:
        task = bar.add_task("simulate", total=steps)
        tr = simulate(g, x, cfg, on_step=lambda t: bar.update(task, completed=t + 1))
    arrays = tr.to_arrays()
    save_npz(out, arrays)
    for k, a in arrays.items():
        extra = f", {int(a.sum()):,} spikes" if k.startswith("spikes/") else ""
        console.print(f"{shown(k)}: shape {a.shape}{extra}")
    console.print(f"wrote {out}")
