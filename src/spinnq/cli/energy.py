"""`spinnq energy`: what a NIR graph costs on SpiNNaker2 (modelled) for a given input, and
the report writer `deploy --report DIR` shares; `spinnq energy-fit`: the chip model's free
constants fitted to a user's measured runs.

    spinnq energy GRAPH.nir --input X.npy [--operating-point LEVEL|dvfs] [--tick-ms T|shortest]
                  [--chip-model FILE] [--dvfs-threshold N]
                  [--json OUT.json] [--report DIR [--no-baseline]]
    spinnq energy-fit MEASUREMENTS.json --out FITTED.json [--chip-model FILE]
                  [--free K1,K2,...] [--json RESULT.json]

LEVEL: one of the 4 DVFS levels of a PE (0.5V/75MHz, 0.5V, 0.8V/150MHz, 0.8V); dvfs: the
chip software's two-level packet-threshold policy.
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
    shown,
)
from spinnq.cli.s2 import (
    BitsOpt,
    DelayedResetOpt,
    GraphScalesOpt,
    NeuronsPerPeOpt,
    OpOpt,
    StepsOpt,
    TickOpt,
    WeightScaleOpt,
    check_run_inputs,
    run_settings,
    warn_silent,
)
from spinnq.errors import InputError
from spinnq.files import check_outputs, read_json_input, write_json

if TYPE_CHECKING:  # torch and the compiler load when a command runs, not for --help
    from spinnq.s2.chip import ChipModel
    from spinnq.s2.energy import Cost

ChipModelOpt = typer.Option(None, "--chip-model", help="The energy model's constants as JSON "
                            "(any subset of `spinnq.s2.chip.ChipModel.to_dict()`, e.g. the "
                            "file `spinnq energy-fit` writes); default: spinnq's sourced "
                            "values.")
ThresholdOpt = typer.Option(None, "--dvfs-threshold", help="dvfs: received packets per tick "
                            "from which a PE runs at 0.8V, for every neuron model (default: "
                            "the chip model's per-model thresholds).")


def tick_text(cost: Cost, dt: float | None = None, speedup: float = 1.0) -> str:
    """What the tick means: met or stretched, and real time only when the requested tick
    equals dt x speed-up (one tick per model step of dt)."""
    from spinnq.report.write import fmt

    tick = fmt(cost.tick_s, "s")
    if cost.tick_requested_s is None:
        return f"{tick} (the shortest every PE meets at {cost.operating_point})"
    if not cost.realtime:
        return (f"{tick} NOT met at {cost.overrun_steps} steps (the busiest PE-step needs "
                f"{fmt(cost.tick_needed_s, 's')} at its level): not real time; energy "
                "counted at the requested tick, the run is not stretched")
    text = f"{tick} (feasible: every PE meets it at every step"
    if dt is None:
        return text + ")"
    model = dt * speedup
    if np.isclose(cost.tick_requested_s, model, rtol=1e-9):
        return text + f"; real time: one tick per {fmt(dt, 's')} step)"
    x = cost.tick_requested_s / model
    how = f"{x:.3g}x slower than" if x > 1 else f"{1 / x:.3g}x faster than"
    return text + f"; {how} real time for dt {fmt(dt, 's')})"


def extra_rows(cost: Cost) -> list[tuple[str, str]]:
    """Rows only some costs have: the unmodelled term, the dvfs policy and its bound."""
    from spinnq.report.write import fmt

    rows = []
    if cost.unmodelled_j:
        rows.append(("  unmodelled static power (chip model)", fmt(cost.unmodelled_j, "J")))
    if cost.dvfs_lower_bound_j is not None:
        thr = ", ".join(f"{k} {v:g}" for k, v in cost.dvfs_thresholds.items())
        rows += [("dvfs thresholds (packets per tick)", thr),
                 ("lower bound: per-PE-tick optimum", fmt(cost.dvfs_lower_bound_j, "J"))]
    rows.append(("range", "every constant at the low / high end of its sourced range; "
                 f"chip model: {cost.chip_model}"))
    return rows


def chip_model(path: Path | None, threshold: float | None) -> ChipModel:
    """The chip model of --chip-model (or the defaults), with --dvfs-threshold applied."""
    from spinnq.s2.chip import ChipModel

    model = ChipModel.load(path) if path is not None else ChipModel.default()
    if threshold is not None:
        if not np.isfinite(threshold) or threshold < 0:
            raise InputError(f"--dvfs-threshold must be a number of packets >= 0, got "
                             f"{threshold}")
        model.dvfs_threshold_packets = {"default": float(threshold)}
    return model


def weights_text(cost: Cost) -> str:
    """Weight bytes over all PEs, and per population at the width it stores them in."""
    per = ", ".join(f"{shown(n)} {d['weights_bytes']:,} ({d['bits']} bit)"
                    for n, d in cost.per_population.items() if d.get("bits"))
    return f"{cost.weights_bytes:,} bytes" + (f": {per}" if per else "")


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
                 ("weights memory, all PEs", weights_text(cost)),
                 ("timesteps", f"{cost.steps} (depth {cost.depth})"),
                 ("tick", tick_text(cost, dt, speedup)),
                 ("latency", fmt(cost.latency_s, "s")),
                 ("average power", fmt(cost.power_w, "W")),
                 ("energy", f"{fmt(cost.energy_j, 'J')} (range {fmt(cost.energy_low_j, 'J')}"
                            f" - {fmt(cost.energy_high_j, 'J')})"),
                 ("  base (chip off + PEs asleep, x time)", fmt(cost.base_j, "J")),
                 ("  dynamic (busy cycles + MACs)",
                  f"{fmt(cost.dynamic_j, 'J')} (range {fmt(cost.dynamic_low_j, 'J')} - "
                  f"{fmt(cost.dynamic_high_j, 'J')})"),
                 ("busiest PE-step load", f"{cost.peak_load:.1%} of the tick"),
                 ("PE-ticks per level", levels),
                 *extra_rows(cost)):
        t.add_row(k, v)
    console.print(t)
    p = Table(title="per population (modelled; rows add up to the energy)")
    p.add_column("population", overflow="fold")
    for c in ("PEs", "neurons", "energy", "base", "dynamic", "spk/step"):
        p.add_column(c, no_wrap=True, justify="right")
    for name, d in cost.per_population.items():
        p.add_row(shown(name), str(d["pes"]), f"{d['neurons']:,}", fmt(d["energy_j"], "J"),
                  fmt(d["base_j"], "J"), fmt(d["dynamic_j"], "J"),
                  f"{d['counters'].get('spikes', 0) / cost.steps:,.1f}")
    p.add_row("chip base", "", "", fmt(cost.chip_base_j, "J"), fmt(cost.chip_base_j, "J"),
              fmt(0.0, "J"), "")
    p.add_row("total", str(cost.pes), "", fmt(cost.energy_j, "J"), fmt(cost.base_j, "J"),
              fmt(cost.dynamic_j, "J"), "")
    console.print(p)
    print_activity(cost.activity)


def print_activity(act: dict) -> None:
    """NeuroBench's activity metrics per population (s2/activity.py) and their source."""
    from spinnq.report.write import fmt

    if not act.get("per_population"):
        return
    t = Table(title="activity per inference (emulated; NeuroBench's metrics)")
    t.add_column("population", overflow="fold")
    for c in ("spikes", "activation sparsity", "effective ACs", "dense syn. ops"):
        t.add_column(c, justify="right")
    for name, a in act["per_population"].items():
        t.add_row(shown(name), fmt(a["spikes"]), _pct(a.get("activation_sparsity")),
                  fmt(a["effective_acs"]), fmt(a.get("dense_synops")))
    total = act["total"]
    t.add_row("total (sparsity: all but the input)", "", _pct(total["activation_sparsity"]),
              fmt(total["effective_acs"]), fmt(total["dense_synops"]))
    console.print(t)
    console.print(f"activity computed by: {act['source']}")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:.1%}"


def energy_cmd(
    graph: Path = GraphArg,
    input: Path = typer.Option(..., "--input", help="Input spikes .npy (0/1): (T, *input_shape)"
                               " or (B, T, *input_shape); counters are averaged over samples.",
                               show_default=False),
    operating_point: str = OpOpt,
    tick_ms: str = TickOpt,
    dt: float = DtOpt,
    reset: str = ResetOpt,
    convention: str = ConventionOpt,
    delayed_reset: bool = DelayedResetOpt,
    integrator: str = IntegratorOpt,
    weight_scale: str = WeightScaleOpt,
    bits: str = BitsOpt,
    graph_scales: bool = GraphScalesOpt,
    neurons_per_pe: list[str] = NeuronsPerPeOpt,
    steps: int = StepsOpt,
    chip_model_file: Path = ChipModelOpt,
    dvfs_threshold: float = ThresholdOpt,
    json_out: Path = typer.Option(None, "--json", help="Write the full cost (per PE too) here."),
    report: Path = typer.Option(None, "--report", help="Write report.json/.md/.html here."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="With --report: "
                                  "measure the float reference on this CPU (and GPU)."),
) -> None:
    """Model what a NIR graph costs on SpiNNaker2: tick, latency, power, energy per inference."""
    from spinnq.graph.model import read_graph
    from spinnq.pipeline import deploy_report
    from spinnq.report.write import fmt
    from spinnq.resolver import parse_tick_ms
    from spinnq.s2.activity import metrics, record_all
    from spinnq.s2.compile import compile
    from spinnq.s2.emulate import emulate
    from spinnq.s2.energy import CycleCosts, energy, shortest_ticks
    from spinnq.s2.place import place

    tick = parse_tick_ms(tick_ms)
    check_outputs((json_out, "file", "--json"), (report, "empty_dir", "--report"), inputs=[
        (graph, "GRAPH"), (input, "--input"), (chip_model_file, "--chip-model")])
    model = chip_model(chip_model_file, dvfs_threshold)
    g = read_graph(graph)
    rs = run_settings(g, dt=dt, reset=reset, convention=convention, integrator=integrator,
                      weight_scale=weight_scale, bits=bits, graph_scales=graph_scales,
                      delayed_reset=delayed_reset, neurons_per_pe=neurons_per_pe,
                      operating_point=operating_point, tick_s=tick)
    cfg = rs.s2()
    x = load_input(input)
    check_run_inputs(g, x, steps, None, dt=cfg.dt)
    program = compile(g, cfg)
    placement = place(program, cfg)
    run = emulate(program, x, steps)
    cost = energy(placement, run, program, op=rs.operating_point, tick_s=rs.tick_s, model=model)
    # NeuroBench's metrics where they can replay the run: the same run with every population
    # recorded (a second run: recording is work the chip is charged for)
    samples = x.shape[0] if x.ndim == len(g.input_shape) + 2 else 1
    record = record_all(program, samples, run.steps)
    if record is not None:
        cost.activity = metrics(program, emulate(program, x, steps, record))
    print_cost(cost, dt=cfg.dt)
    ticks = shortest_ticks(placement, run, program, CycleCosts.of(model))
    console.print("shortest feasible tick per level: "
                  + ", ".join(f"{k} {fmt(v, 's')}" for k, v in ticks.items()))
    warn_silent(program, run)
    if json_out:
        out = cost.to_dict() | {"shortest_ticks": ticks, "settings": rs.to_dict()}
        console.print(f"wrote {write_json(json_out, out)}")
    if report:
        paths = deploy_report(report, g, x, cfg, program, placement, run, rs.operating_point,
                              rs.tick_s, baseline, task=f"energy {graph.name}", settings=rs,
                              model=model)
        console.print(f"wrote {paths['html']}")


def measured_tick(tick_ms) -> float | None:
    """A measured run's tick in seconds (None: the shortest every PE meets)."""
    from spinnq.resolver import parse_tick_ms

    tick = parse_tick_ms(tick_ms)
    return None if tick == "shortest" else tick


def read_measurements(path: Path) -> list:
    """The runs of a measurements file: {"runs": [{"graph", "input", "measured_j",
    "basis" (total|dynamic), "operating_point", "tick_ms", "steps", "config"}]}; paths
    relative to the file. Each run is compiled, placed and emulated here."""

    from spinnq.graph.model import read_graph
    from spinnq.s2.compile import S2Config, compile
    from spinnq.s2.emulate import emulate
    from spinnq.s2.energy import OP_CHOICES
    from spinnq.s2.energy_fit import Measurement
    from spinnq.s2.place import place
    d = read_json_input(path, "measurements")
    runs = d.get("runs") if isinstance(d, dict) else None
    if not isinstance(runs, list) or not runs:
        raise InputError(f"measurements {path}: expected {{\"runs\": [...]}} with at least one run")
    out = []
    for i, r in enumerate(runs):
        where = f"measurements {path}, run {i}"
        missing = [k for k in ("graph", "input", "measured_j") if k not in r]
        if missing:
            raise InputError(f"{where}: lacks '{missing[0]}'")
        try:
            cfg = S2Config(**r.get("config", {}))
        except TypeError as e:
            raise InputError(f"{where}: bad config: {e}") from None
        g = read_graph(path.parent / r["graph"])
        x = load_input(path.parent / r["input"])
        check_run_inputs(g, x, r.get("steps"), None, dt=cfg.dt)
        program = compile(g, cfg)
        placement = place(program, cfg)
        op = r.get("operating_point", "0.8V")
        if op not in OP_CHOICES:
            raise InputError(f"{where}: operating_point must be one of {', '.join(OP_CHOICES)}")
        out.append(Measurement(r.get("name", f"run {i}"), placement,
                               emulate(program, x, r.get("steps")), program, op,
                               measured_tick(r.get("tick_ms", 1.0)), float(r["measured_j"]),
                               r.get("basis", "total")))
    return out


def energy_fit_cmd(
    measurements: Path = typer.Argument(..., help="JSON: {\"runs\": [{\"graph\", \"input\", "
                                        "\"measured_j\", \"basis\", \"operating_point\", "
                                        "\"tick_ms\"}]}", show_default=False),
    out: Path = typer.Option(..., "--out", help="Write the fitted chip model here (JSON, for "
                             "--chip-model).", show_default=False),
    chip_model_file: Path = ChipModelOpt,
    free: str = typer.Option(None, "--free", help="Constants to fit, comma-separated "
                             "(default: every cycle cost but the delay-buffer move, and the "
                             "unmodelled static power)."),
    json_out: Path = typer.Option(None, "--json", help="Write values, standard errors, "
                                  "residuals here."),
) -> None:
    """Fit the energy model's free constants, within their ranges, to measured runs."""
    from spinnq.report.write import fmt
    from spinnq.s2.energy_fit import fit
    check_outputs((out, "file", "--out"), (json_out, "file", "--json"), inputs=[
        (measurements, "MEASUREMENTS"), (chip_model_file, "--chip-model")])
    model = chip_model(chip_model_file, None)
    runs = read_measurements(measurements)
    res = fit(runs, model, tuple(k.strip() for k in free.split(",")) if free else None)
    t = Table(title=f"fitted constants ({len(runs)} measured runs; modelled vs measured)")
    for c in ("constant", "initial", "fitted", "range", "std. error", "pinned down"):
        t.add_column(c)
    consts = res.model.constants()
    for k, v in res.values.items():
        c = consts[k]
        t.add_row(k, f"{res.initial[k]:.4g}", f"{v:.4g}", f"{c.low:g}-{c.high:g}",
                  f"{res.std_rel[k]:.1%}" if np.isfinite(res.std_rel[k]) else "not identifiable",
                  "yes" if k in res.pinned else "NO" + (" (at a bound)" if k in res.at_bound
                                                         else ""))
    console.print(t)
    r = Table(title=f"residuals (rms {res.rms_rel:.1%})")
    for c in ("run", "basis", "measured", "modelled", "error"):
        r.add_column(c)
    for x in res.residuals:
        r.add_row(x["run"], x["basis"], fmt(x["measured_j"], "J"), fmt(x["modelled_j"], "J"),
                  f"{x['error']:+.1%}")
    console.print(r)
    if res.not_pinned:
        console.print("the measurements cannot pin down: " + ", ".join(res.not_pinned)
                      + " (kept inside their ranges; vary what drives them to pin them)")
    res.model.save(out)
    console.print(f"wrote {out}")
    if json_out:
        console.print(f"wrote {write_json(json_out, res.to_dict())}")
