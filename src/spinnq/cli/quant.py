"""`spinnq evaluate` and `spinnq quantize`: accuracy of any NIR graph on labelled spikes (float
reference and emulated chip), and calibration (+ optional hardware-aware fine-tuning) that
writes a graph the chip runs as calibrated.

    spinnq evaluate GRAPH.nir --data D.npz [--target float|chip|both] [--json OUT] [--report DIR]
    spinnq quantize GRAPH.nir --data CALIB.npz --out Q.nir [--bits 8|4] [--percentiles ...]
                    [--per-layer] [--calib-from data|train] [--finetune TRAIN.npz
                    --val VAL.npz --epochs N --patience P --lr LR --batch B
                    --learn-thresholds] [--json OUT] [--report DIR]

D.npz holds `x` (N, T, *input_shape) 0/1 spikes and `y` (N,) integer labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from spinnq.cli.app import console
from spinnq.cli.common import (
    ConventionOpt,
    DtOpt,
    GraphArg,
    IntegratorOpt,
    ResetOpt,
    check_data_memory,
    shown,
)
from spinnq.cli.s2 import (
    BitsOpt,
    DelayedResetOpt,
    GraphScalesOpt,
    NeuronsPerPeOpt,
    OpOpt,
    TickOpt,
    WeightScaleOpt,
    run_settings,
    warn_silent,
)
from spinnq.config import PERCENTILES
from spinnq.errors import InputError
from spinnq.files import check_outputs, write_json
from spinnq.settings import SEED, Limit, check_flag

if TYPE_CHECKING:  # torch and the compiler load when a command runs, not for --help
    from spinnq.quant.evaluation import EvalResult

DataOpt = typer.Option(..., "--data", help="Labelled spikes .npz: x (N, T, *input_shape) 0/1, "
                       "y (N,) integer labels.", show_default=False)
ReadoutOpt = typer.Option("count", "--readout", help="count (output spikes) or membrane "
                          "(output voltage at the last step, for LI read-outs).")
JsonOpt = typer.Option(None, "--json", help="Write the results as JSON here.")
ReportOpt = typer.Option(None, "--report", help="Write report.json/.md/.html here.")
BatchOpt = typer.Option(64, "--batch", help="Samples per emulator call.")
LIMITS = {"batch": Limit(1, 1_000_000), "seed": SEED, "epochs": Limit(0, 100_000)}


def _check_run(g, data: Path, dt: float, samples: int, **flags: int) -> None:
    """`flags` (--batch, --seed, --epochs) in range, then the run's memory (`samples` at once x
    the data's steps, the graph's state and Delay histories at dt) from the data file's
    header: one line naming the flag or the figure, before any work."""
    for flag, value in flags.items():
        check_flag(f"--{flag}", value, LIMITS[flag])
    check_data_memory(g, data, batch=max(1, samples), dt=dt)


def _reads(graph: Path, data: Path, finetune_data: Path | None = None,
           val: Path | None = None) -> list:
    """What a quant command reads, for `check_outputs` (no output may be one of them)."""
    return [(graph, "GRAPH"), (data, "--data"), (finetune_data, "--finetune"), (val, "--val")]


def print_eval(res: EvalResult) -> None:
    t = Table(title=f"accuracy ({res.readout} read-out of '{shown(res.output)}')")
    for c in ("target", "accuracy", "spikes/sample", "energy/inference (modelled)", "samples"):
        t.add_column(c)
    for r in (res.float, res.chip):
        if r is None:
            continue
        acc = "" if r.accuracy is None else f"{r.accuracy:.2%}"
        c = r.cost
        e = "" if c is None else (f"{c.energy_j * 1e6:.2f} uJ ({c.energy_low_j * 1e6:.2f}-"
                                  f"{c.energy_high_j * 1e6:.2f})")
        name = "float reference" if r.target == "float" else "chip (emulated)"
        t.add_row(name, acc, f"{sum(r.spikes_per_sample.values()):,.1f}", e, str(r.samples))
    console.print(t)
    if res.agreement is not None:
        console.print(f"chip and float choose the same class on {res.agreement:.2%} of samples")
    for n in res.notes:
        console.print(f"[yellow]note:[/] {shown(n)}")


def print_stages(name: str, q) -> None:
    """The stage table of `quantize` (`spinnq.quant.Quantized.stages`), the fine-tuning
    curve and the calibration warnings."""
    t = Table(title=f"quantize {name}: {q.metric} per stage")
    for c in ("stage", "data", q.metric, "kind"):
        t.add_column(c)
    for r in q.stages:
        t.add_row(r["name"], r["data"], f"{r['value']:.2%}", r["kind"])
    console.print(t)
    ft = q.finetune
    if ft is not None and ft.history:
        curve = ", ".join(f"{h['epoch']}: {h['loss']:.3f} / {h['score']:.2%}"
                          for h in ft.history)
        console.print(f"fine-tuning per epoch (train loss / validation {ft.metric} on chip): "
                      f"{curve}" + (" (stopped early)" if ft.stopped_early else ""))
    for w in q.warnings:
        console.print(f"[yellow]warning:[/] calibration: {w}")


def eval_report(run_dir: Path, graph_name: str, res: EvalResult, extra_rows=(),
                metric: str = "accuracy", training_csv: Path | None = None,
                warnings: list[str] | None = None) -> Path:
    """report.json/md/html of an evaluation: accuracy per stage (drop vs the first), chip cost;
    `extra_rows`: (stage, value, kind) rows of `quantize` before the final one; its
    fine-tuning curve (`training_csv`) and calibration warnings."""
    from spinnq.report import chip_report, stage

    stages = [stage(n, metric, v, "measured") for n, v, _ in extra_rows]
    if res.float is not None and res.float.accuracy is not None:
        stages.insert(0, stage("float reference", "accuracy", res.float.accuracy))
    if res.chip is not None and res.chip.accuracy is not None:
        stages.append(stage("on chip (emulated)", "accuracy", res.chip.accuracy))
    c = res.chip
    if c is None:
        raise InputError("--report needs the chip target (--target chip or both)")
    notes = [f"{c.samples} samples; {res.readout} read-out of '{res.output}'; accuracy "
             "measured on the float reference simulator and on the bit-exact emulator; chip "
             "energy modelled from the emulator's activity counters (per inference)", *res.notes,
             *(f"warning: {w}" for w in warnings or ())]
    if res.settings is not None:
        notes.append(f"run {res.settings.line()}")
    paths = chip_report(run_dir, f"evaluate {graph_name}", c.program, c.placement, c.run,
                        c.cost, stages, (), notes, training_csv=training_csv,
                        evaluation=res.to_dict())
    return paths["html"]


def evaluate_cmd(
    graph: Path = GraphArg,
    data: Path = DataOpt,
    target: str = typer.Option("chip", "--target", help="float, chip or both."),
    readout: str = ReadoutOpt,
    convention: str = ConventionOpt,
    reset: str = ResetOpt,
    dt: float = DtOpt,
    delayed_reset: bool = DelayedResetOpt,
    integrator: str = IntegratorOpt,
    bits: str = BitsOpt,
    weight_scale: str = WeightScaleOpt,
    graph_scales: bool = GraphScalesOpt,
    neurons_per_pe: list[str] = NeuronsPerPeOpt,
    batch: int = BatchOpt,
    operating_point: str = OpOpt,
    tick_ms: str = TickOpt,
    json_out: Path = JsonOpt,
    report: Path = ReportOpt,
) -> None:
    """Accuracy of a NIR graph on labelled spikes: float reference and/or emulated chip."""
    from spinnq.graph.model import read_graph
    from spinnq.quant.evaluation import evaluate
    from spinnq.resolver import parse_tick_ms

    tick = parse_tick_ms(tick_ms)
    check_outputs((json_out, "file", "--json"), (report, "empty_dir", "--report"),
                  inputs=_reads(graph, data))
    g = read_graph(graph)
    rs = run_settings(g, reset=reset, convention=convention, dt=dt, bits=bits,
                      weight_scale=weight_scale, graph_scales=graph_scales,
                      integrator=integrator, delayed_reset=delayed_reset,
                      neurons_per_pe=neurons_per_pe, operating_point=operating_point,
                      tick_s=tick)
    _check_run(g, data, rs.dt, batch, batch=batch)
    res = evaluate(g, data, target=target, readout=readout, settings=rs, batch=batch,
                   quiet=False)
    print_eval(res)
    if res.chip is not None:
        warn_silent(res.chip.program, res.chip.run)
    if json_out:
        console.print(f"wrote {write_json(json_out, res.to_dict())}")
    if report:
        console.print(f"wrote {eval_report(report, graph.name, res)}")


def parse_percentiles(text: str) -> tuple[str, ...]:
    from spinnq.s2.formats import ScaleMode

    return tuple(str(ScaleMode.parse(p)) for p in text.split(",") if p.strip())


def quantize_cmd(
    graph: Path = GraphArg,
    data: Path = typer.Option(..., "--data", help="Calibration spikes .npz: x, and y labels "
                              "(without y: agreement with the float reference). Also the "
                              "fine-tuning validation data when no --val is given.",
                              show_default=False),
    out: Path = typer.Option(..., "--out", help="Where to write the quantized graph (.nir).",
                             show_default=False),
    bits: str = BitsOpt,
    percentiles: str = typer.Option(",".join(PERCENTILES), "--percentiles", help="Candidate "
                                    "weight scales, comma separated (max = 100th percentile)."),
    per_layer: bool = typer.Option(False, "--per-layer", help="After the global choice, try "
                                   "every candidate per population (greedy)."),
    calib_from: str = typer.Option("data", "--calib-from", help="Calibrate on 'data' (--data)"
                                   " or 'train' (the --finetune data: more samples, less "
                                   "overfitting of the choice)."),
    finetune_data: Path = typer.Option(None, "--finetune", help="Fine-tune on the chip's "
                                       "arithmetic with this training .npz (the best epoch on "
                                       "--val is kept only if it beats PTQ there)."),
    val: Path = typer.Option(None, "--val", help="Validation .npz for fine-tuning: picks the "
                             "epoch and the keep decision on the emulated chip (default: "
                             "--data). Never the training data."),
    epochs: int = typer.Option(10, "--epochs", help="Fine-tuning epochs (at most)."),
    patience: int = typer.Option(3, "--patience", help="Stop fine-tuning after this many "
                                 "epochs without a better validation score (0: never)."),
    lr: float = typer.Option(0.05, "--lr", help="Fine-tuning learning rate, in integer weight "
                             "steps per Adam update."),
    learn_thresholds: bool = typer.Option(False, "--learn-thresholds", help="Learn a threshold "
                                          "scale per population with the weights (adaptive "
                                          "threshold scaling)."),
    readout: str = ReadoutOpt,
    convention: str = ConventionOpt,
    reset: str = ResetOpt,
    dt: float = DtOpt,
    delayed_reset: bool = DelayedResetOpt,
    integrator: str = IntegratorOpt,
    neurons_per_pe: list[str] = NeuronsPerPeOpt,
    operating_point: str = OpOpt,
    tick_ms: str = TickOpt,
    batch: int = typer.Option(32, "--batch", help="Samples per fine-tuning step."),
    seed: int = typer.Option(0, "--seed", help="Fine-tuning seed."),
    json_out: Path = JsonOpt,
    report: Path = ReportOpt,
) -> None:
    """Calibrate a graph's integer weights on the emulated chip (and optionally fine-tune)."""
    from spinnq.graph.model import read_graph, write_graph
    from spinnq.quant.stages import quantize
    from spinnq.resolver import parse_tick_ms

    check_outputs((out, "file", "--out"), (json_out, "file", "--json"), (report, "empty_dir",
                  "--report"), inputs=_reads(graph, data, finetune_data, val))
    g = read_graph(graph)
    rs = run_settings(g, reset=reset, convention=convention, dt=dt, bits=bits,
                      integrator=integrator, delayed_reset=delayed_reset,
                      neurons_per_pe=neurons_per_pe, operating_point=operating_point,
                      tick_s=parse_tick_ms(tick_ms))
    _check_run(g, data, rs.dt, batch, seed=seed, epochs=epochs)
    cfg, sim = rs.s2(), rs.sim()
    # final: the written graph on --data, reusing what calibration ran there (no re-runs)
    q = quantize(g, data, bits=rs.bits_spec, percentiles=parse_percentiles(percentiles),
                 per_layer=per_layer, train=finetune_data, val=val, calib_from=calib_from,
                 epochs=epochs, lr=lr, batch=batch, patience=patience or None,
                 learn_thresholds=learn_thresholds, readout=readout, cfg=cfg, sim=sim,
                 seed=seed, quiet=False, settings=rs, final=True)
    write_graph(q.graph, out)
    final_rs = rs.with_(graph_scales=True)  # the written graph runs with its scales
    res = q.evaluation
    print_stages(graph.name, q)
    console.print(f"wrote {out} (scales in weight-node metadata; it runs with {final_rs.line()})",
                  highlight=False, soft_wrap=True)
    summary = {"settings": final_rs.to_dict(), **q.to_dict(), "final": res.to_dict(),
               "out": str(out)}
    if json_out:
        console.print(f"wrote {write_json(json_out, summary)}")
    if report:
        console.print(f"wrote {quantize_report(report, graph.name, res, q)}")


def quantize_report(run_dir: Path, graph_name: str, res: EvalResult, q) -> Path:
    """eval_report with the stage table and, after fine-tuning, its curve as a plot."""
    from spinnq.files import atomic_write

    rows = [(f"{r['name']} ({r['data']})", r["value"], r["kind"]) for r in q.stages]
    curve = None
    if q.finetune is not None and q.finetune.history:
        lines = ["epoch,train_loss,val_score_on_chip", f"0,,{q.finetune.score_start}",
                 *(f"{h['epoch']},{h['loss']},{h['score']}" for h in q.finetune.history)]
        curve = atomic_write(Path(run_dir) / "finetune_curve.csv",
                             ("\n".join(lines) + "\n").encode())
    return eval_report(run_dir, graph_name, res, rows, q.metric, training_csv=curve,
                       warnings=list(q.warnings))
