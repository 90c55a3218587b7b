"""`spinnq deploy` and `spinnq export`: put a NIR graph on SpiNNaker2 (emulated or real)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
from spinnq.files import check_outputs, write_json

if TYPE_CHECKING:  # torch and the compiler load when a command runs, not for --help
    from spinnq.graph.model import Graph
    from spinnq.resolver import RunSettings
    from spinnq.s2.compile import S2Config
    from spinnq.s2.program import Placement, Program, Run

BACKENDS = ("emulator", "spinnaker2")
WeightScaleOpt = typer.Option(None, "--weight-scale", help="Integer weight scale per "
                              "population: max, a percentile of |w| like p99.9, or none "
                              "(weights used as they are) (default: the graph's w_scale "
                              "metadata where its weight nodes carry it, else max).")
BitsOpt = typer.Option(None, "--bits", help="Weight bits, 8 or 4, or per population: "
                       "NAME=WIDTH items (the population names deploy lists), e.g. l1=4,l2=8 "
                       "or 4,out=8 (a bare width for the rest) (default: the graph's "
                       "metadata, else 8).", show_default=False)
GraphScalesOpt = typer.Option(None, "--graph-scales/--no-graph-scales", help="Use the "
                              "'w_scale' metadata of weight nodes (QAT and quantized graphs) as "
                              "the population's scale (default: yes when the graph carries it "
                              "and no --weight-scale is given).", show_default=False)
NeuronsPerPeOpt = typer.Option(None, "--neurons-per-pe", help="N for every population, or "
                               "NAME=N (repeatable).")
OpOpt = typer.Option(None, "--operating-point", help="A DVFS level for every PE: 0.5V/75MHz, "
                     "0.5V (150 MHz), 0.8V/150MHz, 0.8V (300 MHz); or dvfs (per PE and tick "
                     "the cheapest level that finishes the PE's work within the tick) "
                     "(default: 0.8V).", show_default=False)
TickOpt = typer.Option(None, "--tick-ms", help="Tick in ms (real time when it equals dt), or "
                       "'shortest' (the shortest tick every PE meets) (default: 1 ms, the "
                       "papers' and py-spinnaker2's system tick).", show_default=False)
StepsOpt = typer.Option(None, "--steps", help="Chip steps to run (default: T + depth).")
DelayedResetOpt = typer.Option(None, "--delayed-reset/--no-delayed-reset", help="With "
                               "--convention snntorch and reset subtract: reproduce snnTorch's "
                               "one-step-late reset with a self-projection per dense LIF "
                               "population (N more synapses) (default: the graph's metadata, "
                               "else no).", show_default=False)

def run_settings(g: Graph, **flags) -> RunSettings:
    """The settings a command runs `g` with (`spinnq.resolver`: flags > the graph's metadata >
    the convention's defaults > spinnq's defaults), printed as one line."""
    from spinnq.resolver import resolve

    rs = resolve(g, **flags)
    console.print(rs.line(), highlight=False, soft_wrap=True)
    return rs


def check_run_inputs(g, x: np.ndarray, steps: int | None, record: list[str] | None,
                     dt: float | None = None):
    """What `emulate` would refuse, checked before compiling: the input's shape and NaN or
    inf values (one pass on the array as stored, no float copy), --steps, --record names;
    then an up-front estimate of the run's memory (recordings, state, Delay histories at
    `dt`) against the budget. Returns the input as the
    emulator takes it: (B, T, *shape) 0/1, the loaded array itself when it is uint8, bool or
    float32; or `x` as given when it holds other numbers, for `emulate` to name after
    compiling (where it always has)."""
    from spinnq.graph.simulate import as_batch, default_record
    from spinnq.s2.inputs import spike_batch

    if np.iscomplexobj(x):  # its shape error first, else "NaN, infinite or complex values"
        as_batch(x, g.input_shape)
    try:
        xb = spike_batch(x, g.input_shape, check=True)
    except InputError as e:
        bad = getattr(e, "bad_value", None)
        if bad is None:
            raise
        if not np.isfinite(bad) or (x.dtype.kind == "f" and not np.isfinite(x).all()):
            raise InputError("input contains NaN, infinite or complex values") from None
        xb = x
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    for r in record or ():
        if r not in g.nodes:
            raise InputError(f"--record {r}: no such node (nodes: {', '.join(g.order)})")
    n_steps = steps if steps is not None else x.shape[-len(g.input_shape) - 1] + len(g.order)
    batch = x.shape[0] if x.ndim == len(g.input_shape) + 2 else 1
    check_run_memory(g, batch=batch, steps=n_steps, record=record or default_record(g), dt=dt)
    return xb


def warn_silent(program: Program, run: Run) -> list[str]:
    """Print a warning naming each output population that never fired on this input."""
    from spinnq.s2.emulate import silent_outputs

    silent = silent_outputs(program, run)
    for name in silent:
        console.print(f"[yellow]warning:[/] output population '{shown(name)}' never fired on this "
                      "input: check --convention, --dt, --reset and --weight-scale (a graph "
                      "run with another producer's rule can fall silent)")
    return silent


def print_placement(program: Program, placement: Placement) -> dict:
    """The placement as a table: what each population takes, then the totals."""
    from spinnq.s2.place import summarize

    s = summarize(program, placement)
    t = Table(title=f"SpiNNaker2 placement: {s['pes']} PEs on {s['chips']} chip(s)")
    for c in ("population", "model", "neurons", "PEs", "neurons/PE", "max bytes/PE",
              "weight scale", "weights", "saturated"):
        t.add_column(c)
    for name, p in s["populations"].items():
        t.add_row(shown(name), p["model"] + (" (read-out)" if p["read_out"] else ""),
                  f"{p['size']:,}", str(p["pes"]), str(p["neurons_per_pe"]),
                  f"{p['memory_per_pe_max']:,}",
                  "" if p["weight_scale"] is None else f"{p['weight_scale']:.4g}",
                  "" if p["weight_range"] is None else
                  f"[{p['weight_range'][0]}, {p['weight_range'][1]}] ({p['bits']} bit)",
                  str(p["saturations"]))
    console.print(t)
    mem = np.asarray(s["memory_per_pe"])
    big = s["largest_consumer"]
    console.print(f"PEs {s['pes']}, chips {s['chips']} ({s['pes_per_chip']} usable PEs each); "
                  f"memory per PE: mean {mem.mean() / 1024:.1f} kB, max {mem.max() / 1024:.1f} kB"
                  f" of {s['memory_budget'] / 1024:.0f} kB; largest consumer: "
                  f"'{shown(big['population'])}' on chip {big['chip']} PE {big['pe']} "
                  f"({big['bytes']:,} bytes: " +
                  ", ".join(f"{k} {v:,}" for k, v in big["memory"].items()) + ")")
    console.print(f"weights memory {s['weights_bytes']:,} bytes: " + ", ".join(
        f"'{shown(n)}' {p['weights_bytes']:,} ({p['bits']} bit)"
        for n, p in s["populations"].items() if p["bits"] is not None))
    console.print(f"routing entries {s['routing_entries']:,}; depth {s['depth']} step(s)")
    for n in program.notes:
        console.print(f"[yellow]note:[/] {shown(n)}")
    return s


def run_arrays(program: Program, run: Run) -> dict[str, np.ndarray]:
    """`simulate`'s layout: spikes/<node> (uint8) for spiking populations, v/<node> float32."""
    out = {f"spikes/{k}": t.numpy().astype(np.uint8) for k, t in run.spikes.items()
           if not program.populations[k].record_only}
    out |= {f"v/{k}": t.numpy().astype(np.float32) for k, t in run.v.items()}
    return out


def run_on(backend: str, g: Graph, cfg: S2Config, x: np.ndarray, steps: int | None,
           record: list[str] | None, eth_ip: str | None) -> tuple[Program, Placement, Run]:
    """`pipeline.deploy` with the placement printed before the run and a progress bar on
    long emulations (the board gets x as the user stored it)."""
    from spinnq.helpers import progress
    from spinnq.pipeline import deploy

    lead = np.shape(x)[:np.ndim(x) - len(g.input_shape)]  # (B, T) or (T,)
    n = (int(np.prod(lead[:-1])) * (steps or int(lead[-1]))) if backend == "emulator" else 0
    with progress(disable=n < PROGRESS_MIN_STEPS) as bar:
        task = bar.add_task("emulate (sample-steps)", total=n)
        return deploy(g, x, cfg, steps, record, backend=backend, eth_ip=eth_ip,
                      on_placed=print_placement,
                      on_step=lambda d, total: bar.update(task, completed=d, total=total))


def deploy(
    graph: Path = GraphArg,
    input: Path = typer.Option(..., "--input", help="Input spikes .npy (0/1): (T, *input_shape)"
                               " or (B, T, *input_shape).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output .npz: spikes/<node> (uint8), v/<node> "
                             "(float32, NIR units), each (B, steps, *shape).", show_default=False),
    dt: float = DtOpt,
    reset: str = ResetOpt,
    convention: str = ConventionOpt,
    delayed_reset: bool = DelayedResetOpt,
    integrator: str = IntegratorOpt,
    weight_scale: str = WeightScaleOpt,
    bits: str = BitsOpt,
    graph_scales: bool = GraphScalesOpt,
    operating_point: str = OpOpt,
    tick_ms: str = TickOpt,
    record: list[str] = RecordOpt,
    neurons_per_pe: list[str] = NeuronsPerPeOpt,
    steps: int = StepsOpt,
    summary: Path = typer.Option(None, "--summary", help="Write a JSON summary here."),
    backend: str = typer.Option("emulator", "--backend", help="emulator, or spinnaker2 (a "
                                "real board through py-spinnaker2)."),
    eth_ip: str = typer.Option(None, "--eth-ip", help="The board's address (spinnaker2)."),
    fma: bool = typer.Option(False, "--fma", help="(assumed) alpha*v + I as one fused "
                             "multiply-add."),
    cuba_order: str = typer.Option("current_first", "--cuba-order", help="(assumed) "
                                   "lif_curr_exp: current_first or voltage_first."),
    engine: str = typer.Option("auto", "--engine", help="Emulator engine: events (numba, "
                               "spike-driven), torch, or auto (events when numba is there)."),
    report: Path = typer.Option(None, "--report", help="Write report.json/.md/.html here: "
                                "chip cost (at --operating-point and --tick-ms) vs the float "
                                "reference on CPU."),
) -> None:
    """Compile a NIR graph for SpiNNaker2, place it, and run it (emulator or a real board)."""
    from spinnq.graph.model import read_graph
    from spinnq.pipeline import deploy_report
    from spinnq.resolver import parse_tick_ms
    from spinnq.s2.place import summarize

    # every flag, path and the input are checked before the (possibly long) compile
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "spinnaker2" and not eth_ip:
        raise InputError("--backend spinnaker2 needs --eth-ip (the board's address)")
    check_outputs((out, "file", "--out"), (summary, "file", "--summary"),
                  (report, "empty_dir", "--report"), inputs=[(graph, "GRAPH"), (input, "--input")])
    g = read_graph(graph)
    rs = run_settings(g, dt=dt, reset=reset, convention=convention, integrator=integrator,
                      weight_scale=weight_scale, bits=bits, graph_scales=graph_scales,
                      delayed_reset=delayed_reset, neurons_per_pe=neurons_per_pe,
                      operating_point=operating_point, tick_s=parse_tick_ms(tick_ms))
    cfg = rs.s2(fma=fma, cuba_order=cuba_order, engine=engine)
    x = load_input(input)
    xb = check_run_inputs(g, x, steps, record, dt=cfg.dt)
    program, placement, run = run_on(backend, g, cfg, xb if backend == "emulator" else x, steps,
                                     record, eth_ip)
    arrays = run_arrays(program, run)
    save_npz(out, arrays)
    for k, a in arrays.items():
        extra = f", {int(a.sum()):,} spikes" if k.startswith("spikes/") else ""
        console.print(f"{shown(k)}: shape {a.shape}{extra}")
    if run.saturations:
        console.print(f"[yellow]note:[/] {run.saturations:,} synaptic sums saturated at the "
                      "accumulator's range (clipped, not wrapped)")
    warn_silent(program, run)
    console.print(f"wrote {out} ({run.steps} chip steps, backend {backend})")
    if summary:
        info = summarize(program, placement, run) | {"backend": backend,
                                                     "settings": rs.to_dict(),
                                                     "config": _cfg_json(cfg)}
        console.print(f"wrote {write_json(summary, info)}")
    if report:
        paths = deploy_report(report, g, x, cfg, program, placement, run, rs.operating_point,
                              rs.tick_s, settings=rs)
        console.print(f"wrote {paths['html']}")


def _cfg_json(cfg: S2Config) -> dict:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(cfg).items()}


def export_cmd(
    graph: Path = GraphArg,
    out: Path = typer.Option(..., "--out", help="Where to write the integer NIR graph."),
    target: str = typer.Option("spinnaker2", "--target", help="Only spinnaker2 for now."),
    dt: float = DtOpt,
    reset: str = ResetOpt,
    convention: str = ConventionOpt,
    delayed_reset: bool = DelayedResetOpt,
    integrator: str = IntegratorOpt,
    weight_scale: str = WeightScaleOpt,
    bits: str = BitsOpt,
    graph_scales: bool = GraphScalesOpt,
) -> None:
    """Write the integer graph py-spinnaker2's from_nir(..., scale_weights=False) takes as is."""
    from spinnq.graph.model import read_graph, write_graph

    if target != "spinnaker2":
        raise InputError(f"--target must be spinnaker2, got {target!r}")
    check_outputs((out, "file", "--out"), inputs=[(graph, "GRAPH")])
    from spinnq.s2.export import export_graph

    g = read_graph(graph)
    rs = run_settings(g, dt=dt, reset=reset, convention=convention, integrator=integrator,
                      weight_scale=weight_scale, bits=bits, graph_scales=graph_scales,
                      delayed_reset=delayed_reset)
    q = export_graph(g, rs.s2())
    write_graph(q, out)
    scales = {k: v.metadata["s2_w_scale"] for k, v in q.nodes.items()
              if "s2_w_scale" in (getattr(v, "metadata", None) or {})}
    console.print("weight scales: " + ", ".join(f"{k} {v:.4g}" for k, v in scales.items()))
    console.print(f"wrote {out}: integer weights, thresholds scaled; load it with py-spinnaker2's "
                  "s2_nir.from_nir(graph, ConversionConfig(scale_weights=False, ...))")
