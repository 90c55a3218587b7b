"""Reports: report.json, report.md and a self-contained report.html with plots. Only formats;
every number arrives computed and labelled (measured | modelled | published).

For task code (`spinnq run cartpole|gesture`) and `spinnq deploy --report DIR`::

    from spinnq.report import build_report, stage, standard_plots, write_report, chip_report

    rep = build_report(
        "cartpole",
        stages=[stage("float", "reward", 500.0), stage("PTQ", "reward", 480.0),
                stage("on chip", "reward", 478.0)],          # drop vs the first is added
        cost=cost,                                          # spinnq.s2.energy.Cost (or None)
        baselines=[measured_cpu, *published_rows("cartpole")],  # Measured / dict rows
        notes=["..."])
    plots = standard_plots(rep, cost=cost, placement=placement,
                           spikes={pop: run.spikes[pop][0].numpy() for pop in run.spikes},
                           training_csv=run_dir / "train.csv")
    paths = write_report(run_dir, rep, plots)   # {"json", "md", "html", <plot names>} -> Path

    # or in one call, from the s2 objects of a deployment:
    paths = chip_report(run_dir, task, program, placement, run, cost, stages=..., baselines=...)

Signatures:
    stage(name, metric, value, kind="measured", **extra) -> dict
    build_report(task, stages=(), cost=None, baselines=(), notes=(), **extra) -> dict
    standard_plots(report, cost=None, placement=None, spikes=None, training_csv=None)
        -> dict[str, bytes]
    write_report(run_dir, report, plots=None) -> dict[str, Path]
    chip_report(run_dir, task, program, placement, run, cost, stages=(), baselines=(),
                notes=(), training_csv=None, raster_run=None) -> dict[str, Path]
"""

from __future__ import annotations

from pathlib import Path

from spinnq.report.build import build_report, ratios, stage
from spinnq.report.plots import standard_plots
from spinnq.report.write import fmt, to_html, to_markdown, write_report


def chip_report(run_dir: Path | str, task: str, program, placement, run, cost,
                stages=(), baselines=(), notes=(), training_csv=None, raster_run=None,
                **extra) -> dict[str, Path]:
    """build_report + standard_plots + write_report for a deployment. The raster shows sample
    0 of `raster_run` (a run recording every population, if you have one) or of `run`."""
    rep = build_report(task, stages, cost, baselines, notes,
                       program={"populations": len(program.populations),
                                "projections": len(program.projections),
                                "depth": program.depth,
                                "saturations": int(getattr(run, "saturations", 0))},
                       **extra)
    spikes = {n: s[0].detach().cpu().numpy() for n, s in (raster_run or run).spikes.items()}
    plots = standard_plots(rep, cost=cost, placement=placement, spikes=spikes,
                           training_csv=training_csv)
    return write_report(run_dir, rep, plots)


__all__ = ["build_report", "chip_report", "fmt", "ratios", "stage", "standard_plots",
           "to_html", "to_markdown", "write_report"]
