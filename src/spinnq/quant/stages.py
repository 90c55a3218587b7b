"""The quant stage end to end, as `spinnq quantize` runs it: calibration (PTQ chosen on the
emulated chip), optional hardware-aware fine-tuning chosen on data it is not trained on, and
the table of what each stage scored.

    q = quantize(graph, "calib.npz", bits=4, train="train.npz", val="val.npz")
    q.graph                 # what to deploy (fine-tuned only if it beat PTQ on val)
    q.stages                # [{"name", "value", "kind", "metric", "data"}], float -> chip
    q.warnings              # calibration overfitting signs, each with what to do
    q.evaluation            # with final=True: float reference and chip (placed, priced) on data

Nothing runs twice on the same data: the final evaluation and fine-tuning's float score on
the calibration data reuse the calibration's float reference, and the chip's result of the
calibrated graph is the chosen candidate's emulation (placed and priced once, here).

Validation for fine-tuning: `val`, else the calibration data (data the network was not
trained on), never a share of the training data the network already fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spinnq.errors import InputError
from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig
from spinnq.quant.calibration import PERCENTILES, Calibration, calibrate, same_emulation
from spinnq.quant.data import Data, has_labels, load_data, output_node
from spinnq.quant.evaluation import EvalResult, as_graph, chip_eval, chip_outcome, float_eval
from spinnq.quant.finetuning import FinetuneResult, check_options, finetune
from spinnq.resolver import RunSettings, resolve
from spinnq.s2.compile import S2Config, compile
from spinnq.settings import bits_label

CALIB_FROM = ("data", "train")


@dataclass
class Quantized:
    graph: Graph  # the graph to deploy (stamped with its run settings)
    calibration: Calibration
    finetune: FinetuneResult | None
    stages: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evaluation: EvalResult | None = None  # `final`: the deployed graph on the data

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
    row(f"chosen: {chosen} ({bits_label(cal.bits)})", cal.score, "emulated", "calibration")
    if ft is None:
        return rows
    if val_float is not None:
        row("float reference", val_float, "measured", val_name)
    row("PTQ on chip", ft.score_start, "emulated", val_name)
    kept = (f"kept, epoch {ft.best_epoch}" if ft.improved else "not better: PTQ kept")
    row(f"fine-tuned on chip ({kept})", ft.score, "emulated", val_name)
    return rows


def quantize(graph, data: Data, *, bits: int | str | dict | None = None,
             percentiles: tuple[str, ...] = PERCENTILES, per_layer: bool = False,
             train: Data | None = None, val: Data | None = None, calib_from: str = "data",
             epochs: int = 10, lr: float = 0.05, batch: int = 32, patience: int | None = 3,
             learn_thresholds: bool = False, readout: str = "count",
             cfg: S2Config | None = None, sim: SimConfig | None = None, seed: int = 0,
             quiet: bool = True, settings: RunSettings | dict | None = None,
             final: bool = False, **flags) -> Quantized:
    """PTQ on the emulated chip on `data` (or on `train` with `calib_from="train"`), then,
    with `train`, fine-tuning on the chip's arithmetic whose epoch and keep decision are
    chosen on `val` (default: `data`). With `final`, the graph to deploy is evaluated on
    `data` (`Quantized.evaluation`: the input graph's float reference, and the chip placed
    and priced at the settings' tick and operating point). See the module docstring. Run
    settings: as `calibrate`'s (keywords like convention=, reset=, dt=, or `settings`;
    `cfg`/`sim` win)."""
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
    on_calib = calib_from == "data"  # `data` is what calibration scored
    if train is None:
        out.stages = stage_table(cal)
    else:
        val_data = val if val is not None else data
        ft = finetune(cal.graph, train, val=val_data, epochs=epochs, lr=lr, batch=batch,
                      patience=patience, readout=readout, cfg=cfg.with_bits(cal.bits),
                      sim=sim, seed=seed, teacher=g, learn_thresholds=learn_thresholds,
                      quiet=quiet)
        ft.val_source = "--val data" if val is not None else "the calibration data (--data)"
        val_float = None
        if has_labels(val_data) and cal.objective == "accuracy":
            if val is None and on_calib:
                val_float = cal.float_score
            else:
                vx, vy = load_data(val_data, g)
                val_float = float_eval(g, vx, vy, sim, readout, checked=True).accuracy
        out.graph, out.finetune = ft.graph, ft
        out.stages = stage_table(cal, ft, val_float, "validation" if val is not None else
                                 "calibration (validation)")
    if final:
        out.evaluation = final_evaluation(g, out.graph, cal, data, on_calib, readout,
                                          cfg.with_bits(cal.bits).with_(graph_scales=True),
                                          sim, rs.with_(graph_scales=True))
    return out


def final_evaluation(g: Graph, final: Graph, cal: Calibration, data: Data, on_calib: bool,
                     readout: str, qcfg: S2Config, sim: SimConfig, rs: RunSettings
                     ) -> EvalResult:
    """`final` (the graph to deploy, compiled with `qcfg`) on `data`: the float reference of
    the input graph `g` and the chip, placed and priced once. Where calibration ran on the
    same data (`on_calib`), its float reference is reused, and so is the chosen candidate's
    emulation when `final` is the calibrated graph and compiles to that same program."""
    labelled = cal.objective == "accuracy"
    res = EvalResult(readout=readout, output=output_node(g), settings=rs)
    op, tick = rs.operating_point, rs.tick_s
    program = cal.program if final is cal.graph and cal.program else compile(final, qcfg)
    if on_calib and cal.reference is not None:
        y = cal.labels
        res.float = cal.reference
        if cal.emulation is not None and same_emulation(program, cal.program):
            res.chip = chip_outcome(program, cal.emulation, y, qcfg, op, tick)
    else:
        x, y = load_data(data, g, labels=labelled)
        res.float = float_eval(g, x, y, sim, readout, checked=True)
    if res.chip is None:
        if on_calib:
            x, _ = load_data(data, g, labels=labelled)
        res.chip = chip_eval(final, x, y, qcfg, readout, op=op, tick_s=tick, program=program)
    res.notes += res.chip.program.notes
    return res
