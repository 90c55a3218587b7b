"""The quant stage end to end, as `spinnq quantize` runs it: calibration (PTQ chosen on the
emulated chip), optional hardware-aware fine-tuning chosen on data it is not trained on, and
the table of what each stage scored.

    q = quantize(graph, "calib.npz", bits=4, train="train.npz", val="val.npz")
    q.graph                 # what to deploy (fine-tuned only if it beat PTQ on val)
    q.stages                # [{"name", "value", "kind", "metric", "data"}], float -> chip
    q.warnings              # calibration overfitting signs, each with what to do

Validation for fine-tuning: `val`, else the calibration data (data the network was not
trained on), never a share of the training data the network already fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spinnq.errors import InputError
from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig
from spinnq.quant.calibration import PERCENTILES, Calibration, calibrate
from spinnq.quant.data import Data, has_labels, load_data
from spinnq.quant.evaluation import as_graph, float_eval
from spinnq.quant.finetuning import FinetuneResult, check_options, finetune
from spinnq.resolver import RunSettings, resolve
from spinnq.s2.compile import S2Config

CALIB_FROM = ("data", "train")


@dataclass
class Quantized:
    graph: Graph  # the graph to deploy (stamped with its run settings)
    calibration: Calibration
    finetune: FinetuneResult | None
    stages: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return "accuracy" if self.calibration.objective == "accuracy" else \
            "agreement with float"

    def to_dict(self) -> dict:
        return {"stages": self.stages, "warnings": list(self.warnings),
                "calibration": self.calibration.to_dict(),
                "finetune": self.finetune.to_dict() if self.finetune else None}


def stage_table(cal: Calibration, ft: FinetuneResult | None = None,
                val_float: float | None = None, val_name: str = "validation data"
                ) -> list[dict]:
    """Every stage's score, labelled: the float reference and each PTQ candidate on the
    calibration data, then (fine-tuning) PTQ and the fine-tuned graph on the validation data,
    each with the data it was scored on."""
    metric = "accuracy" if cal.objective == "accuracy" else "agreement with float"
    rows: list[dict] = []

    def row(name: str, value: float, kind: str, data: str, **extra) -> None:
        rows.append({"name": name, "value": float(value), "kind": kind, "metric": metric,
                     "data": data, **extra})

    if cal.float_score is not None:
        row("float reference", cal.float_score, "measured", "calibration")
    for r in cal.table:
        row(f"PTQ {r['mode']} on chip" + (f" [{r['population']}]" if r["population"] else ""),
            r["score"], "emulated", "calibration")
    chosen = ", ".join(f"{p} {m}" for p, m in cal.modes.items())
    row(f"chosen: {chosen} ({cal.bits} bit)", cal.score, "emulated", "calibration")
    if ft is None:
        return rows
    if val_float is not None:
        row("float reference", val_float, "measured", val_name)
    row("PTQ on chip", ft.score_start, "emulated", val_name)
    kept = (f"kept, epoch {ft.best_epoch}" if ft.improved else "not better: PTQ kept")
    row(f"fine-tuned on chip ({kept})", ft.score, "emulated", val_name)
    return rows


def quantize(graph, data: Data, *, bits: int | None = None,
             percentiles: tuple[str, ...] = PERCENTILES, per_layer: bool = False,
             train: Data | None = None, val: Data | None = None, calib_from: str = "data",
             epochs: int = 10, lr: float = 0.05, batch: int = 32, patience: int | None = 3,
             learn_thresholds: bool = False, readout: str = "count",
             cfg: S2Config | None = None, sim: SimConfig | None = None, seed: int = 0,
             quiet: bool = True, settings: RunSettings | dict | None = None,
             **flags) -> Quantized:
    """PTQ on the emulated chip on `data` (or on `train` with `calib_from="train"`), then,
    with `train`, fine-tuning on the chip's arithmetic whose epoch and keep decision are
    chosen on `val` (default: `data`). See the module docstring. Run settings: as
    `calibrate`'s (keywords like convention=, reset=, dt=, or `settings`; `cfg`/`sim` win)."""
    if calib_from not in CALIB_FROM:
        raise InputError(f"calib-from must be one of {', '.join(CALIB_FROM)}, got "
                         f"{calib_from!r}")
    if calib_from == "train" and train is None:
        raise InputError("calib-from 'train' calibrates on the training data: give it "
                         "(--finetune TRAIN.npz)")
    if train is not None:  # before calibration: a bad option fails at once
        check_options(readout, epochs, lr, batch, patience)
    g = as_graph(graph)
    # given both configs, the graph's metadata is not read: they win (`resolve`)
    rs = resolve(g if cfg is None or sim is None else None, settings, bits=bits, **flags)
    cfg, sim = cfg or rs.s2(), sim or rs.sim()
    calib = train if calib_from == "train" else data
    cal = calibrate(g, calib, bits=bits, percentiles=percentiles, per_layer=per_layer,
                    readout=readout, cfg=cfg, sim=sim, quiet=quiet)
    out = Quantized(cal.graph, cal, None, warnings=list(cal.warnings))
    if train is None:
        out.stages = stage_table(cal)
        return out
    val_data = val if val is not None else data
    ft = finetune(cal.graph, train, val=val_data, epochs=epochs, lr=lr, batch=batch,
                  patience=patience, readout=readout, cfg=cfg.with_(bits=cal.bits), sim=sim,
                  seed=seed, teacher=g, learn_thresholds=learn_thresholds, quiet=quiet)
    ft.val_source = "--val data" if val is not None else "the calibration data (--data)"
    val_float = None
    if has_labels(val_data) and cal.objective == "accuracy":
        vx, vy = load_data(val_data, g)
        val_float = float_eval(g, vx, vy, sim, readout).accuracy
    out.graph, out.finetune = ft.graph, ft
    out.stages = stage_table(cal, ft, val_float, "validation" if val is not None else
                             "calibration (validation)")
    return out
