"""Post-training quantization of any NIR graph, chosen on the emulated chip.

Each population has one integer weight scale, `q / percentile(|w entering it|, p)` (q = 127 at
8 bits, 15 at 4); the compiler multiplies the population's threshold (and i_offset) by the
same scale, so thresholds follow the weights. `calibrate` tries every candidate percentile --
one choice for the whole network, then optionally greedily per population -- and keeps the
best by an objective:

  * labels given: accuracy on the emulated chip;
  * no labels: agreement of the chip's class (argmax of the read-out) with the float
    reference's on the same input;
  * or any `objective(graph, cfg) -> float` (higher is better), e.g. a control task's
    greedy-action agreement.

Ties go to the larger percentile (fewer clipped weights). The result is a graph whose weight
nodes hold the chip's values (integer / scale) with `w_scale` and `bits` metadata, stamped
with its run settings, so `spinnq evaluate Q.nir --target chip` runs it as calibrated.

A candidate is scored by emulation alone (no placement, no energy model): each percentile is
compiled once, and a per-population mix is assembled from those programs (a population's
parameters and the projections into it depend on its own scale only), not compiled again.
The float reference runs once; it and the chosen candidate's emulation stay on the
`Calibration` for an evaluation on the same data to reuse (`quantize(final=True)`). Which
weight nodes enter a population, and what compile folded into them (AvgPool's 1/k^2, Scale
factors), is read from the compiled program (`Projection.fold`), not re-derived here.

Choosing among candidates on the data that scores them can overfit it. `calibrate` warns
(`Calibration.warnings`) when the chosen candidate scores above the float reference on the
calibration data, or when there are fewer than `SAMPLES_PER_CANDIDATE` samples per candidate.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from spinnq.config import PERCENTILES
from spinnq.errors import InputError
from spinnq.graph import meta
from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig
from spinnq.helpers import progress
from spinnq.quant.data import Data, has_labels, load_data
from spinnq.quant.evaluation import (
    Emulation,
    TargetResult,
    as_graph,
    emulate_all,
    float_eval,
    prepare_batches,
)
from spinnq.resolver import RunSettings, resolve
from spinnq.s2.compile import W_SCALE_KEY, S2Config, compile
from spinnq.s2.formats import ScaleMode, to_int
from spinnq.s2.program import Program, fingerprint, folded_weights
from spinnq.settings import bits_label, bits_value

# Below this many calibration samples per candidate, the best score is mostly the luck of the
# draw: the spread of an accuracy on n samples is about sqrt(p (1 - p) / n), and the best of k
# candidates exceeds its true value by about sqrt(2 ln k) of those; 100 per candidate keeps
# that under about 1 pt for accuracies near 95 % and 5 candidates.
SAMPLES_PER_CANDIDATE = 100
Objective = Callable[[Graph, S2Config], float]


@dataclass
class Calibration:
    graph: Graph  # the quantized graph (chip values, w_scale metadata, run settings)
    scales: dict[str, float]  # population -> integer weight scale
    modes: dict[str, str]  # population -> the percentile its scale came from
    bits: int | str  # one width, or per population ('8,l1=4': `spinnq.settings.parse_bits`)
    score: float  # the objective of the chosen scales
    objective: str  # "accuracy" | "agreement" | "custom"
    table: list[dict] = field(default_factory=list)  # every candidate tried
    program: Program | None = None  # the chosen graph compiled
    seconds: float = 0.0
    samples: int = 0  # calibration samples (0 with a custom objective)
    float_score: float | None = None  # the float reference's accuracy on the same data
    warnings: list[str] = field(default_factory=list)  # overfitting signs, and what to do
    compiles: int = 0  # programs compiled (one per percentile, + the written graph)
    # what scoring computed on the calibration data, for an evaluation to reuse (not run
    # again): the float reference of the input graph, the labels (None: agreement), and the
    # chosen candidate's emulation where `program` computes exactly what was scored
    reference: TargetResult | None = None
    labels: np.ndarray | None = None
    emulation: Emulation | None = None

    def to_dict(self) -> dict:
        return {"bits": self.bits, "objective": self.objective, "score": self.score,
                "modes": self.modes, "scales": self.scales, "candidates": self.table,
                "samples": self.samples, "float_score": self.float_score,
                "warnings": list(self.warnings), "compiles": self.compiles,
                "seconds": self.seconds}


def population_scales(graph: Graph, cfg: S2Config, prog: Program | None = None
                      ) -> dict[str, dict]:
    """Per population of `graph` compiled with `cfg` (or of `prog`, that compilation): weight
    scale, bits, clipped weights, and the chip threshold next to the float one it came from
    (threshold scaling)."""
    prog = prog if prog is not None else compile(graph, cfg)
    out: dict[str, dict] = {}
    for p in prog.projections:
        pop = prog.populations[p.post]
        th = getattr(graph.nodes[p.post], "v_threshold", None)
        d = out.setdefault(p.post, {
            "w_scale": float(p.w_scale), "bits": int(p.bits), "saturated": 0,
            "threshold_chip": float(np.asarray(pop.params["threshold"]).ravel()[0]),
            "threshold_float": None if th is None else float(np.asarray(th).ravel()[0])})
        d["saturated"] += int(p.saturated)
    return out


def with_scales(graph: Graph, scales: dict[str, float], bits: dict[str, int] | int = 8,
                cfg: S2Config | None = None, quantize: bool = False,
                program: Program | None = None) -> Graph:
    """A copy of `graph` whose weight nodes carry `w_scale` (and `bits`) metadata per target
    population; with `quantize`, their weights become the chip's values (integer / scale,
    divided by the factor compile folded in) so the float reference runs the quantized
    network and the compiler recovers the same integers. Which weight nodes enter which
    population, and with what factor, is what `program` (`graph` compiled at any scale;
    compiled here with `cfg` when not given) records in its projections' `fold`."""
    cfg = cfg or S2Config()
    program = program if program is not None else compile(graph, cfg)
    g = copy.copy(graph)
    g.nodes = dict(graph.nodes)
    for proj in program.projections:
        fold = proj.fold
        # no weight node (a SumPool into neurons), or one compile added (delayed_reset)
        if proj.post not in scales or fold is None or fold.node not in graph.nodes:
            continue
        s, b = scales[proj.post], bits if isinstance(bits, int) else bits[proj.post]
        node = graph.nodes[fold.node]
        new = copy.copy(node)
        new.metadata = {**(getattr(node, "metadata", None) or {}),
                        W_SCALE_KEY: float(s), "bits": int(b)}
        if quantize and fold.factor is not None:
            rounding = cfg.dense_rounding if proj.kind == "dense" else cfg.conv_rounding
            w_int, _ = to_int(folded_weights(node.weight, fold), s, b, rounding)
            new.weight = (w_int / s / fold.factor).astype(np.float32)
        g.nodes[fold.node] = new
    return g


def chip_accuracy(program: Program, x: np.ndarray, y: np.ndarray, readout: str = "count",
                  batch: int = 64) -> float:
    """Share of samples whose emulated read-out's argmax is `y` (labels, or the float
    reference's classes for agreement): emulation alone, no placement, no energy model."""
    return float((emulate_all(program, x, readout, batch).scores.argmax(1) == y).mean())


def mixed_program(programs: dict[str, Program], choice: dict[str, str]) -> Program | None:
    """The program of a per-population choice of percentiles, assembled from the programs
    compiled per percentile: a population's parameters and the projections into it depend on
    its own weight scale only. None when the programs do not line up (then compile)."""
    modes = list(dict.fromkeys(choice.values()))
    if len(modes) == 1:
        return programs[modes[0]]
    base = programs[modes[0]]
    keys = [(p.pre, p.post, p.kind) for p in base.projections]
    if any([(p.pre, p.post, p.kind) for p in programs[m].projections] != keys for m in modes):
        return None
    pops = {n: programs[choice[n]].populations[n] if n in choice else pop
            for n, pop in base.populations.items()}
    projs = [programs[choice[p.post]].projections[i] if p.post in choice else p
             for i, p in enumerate(base.projections)]
    return replace(base, populations=pops, projections=projs, notes=[])


def _objective(graph: Graph, x: np.ndarray, y: np.ndarray | None, sim: SimConfig,
               readout: str, batch: int, quiet: bool
               ) -> tuple[str, Callable[[Program], tuple[float, Emulation]], TargetResult]:
    """(name, program -> (score, its emulation), the float reference on the data)."""
    shape = tuple(graph.input_shape)
    # x's batches decoded once (input shape -> batches), for every candidate and the float
    # reference's chains (`prepare_batches`)
    shared: dict[tuple, list] = {shape: prepare_batches(x, shape, batch)}
    ref = float_eval(graph, x, y, sim, readout, batch, quiet, checked=True,  # load_data's
                     prepared=shared[shape])
    target = y if y is not None else ref.predictions

    def score(prog: Program) -> tuple[float, Emulation]:
        shape = tuple(prog.populations[prog.input].shape)
        if shape not in shared:
            shared[shape] = prepare_batches(x, shape, batch)
        emu = emulate_all(prog, x, readout, batch, prepared=shared[shape])
        return float((emu.scores.argmax(1) == target).mean()), emu
    return ("accuracy" if y is not None else "agreement"), score, ref


def same_emulation(a: Program, b: Program) -> bool:
    """Whether two programs emulate to the same read-out: the same integers, parameters,
    voltage scales and outputs (so one's emulation stands for the other's)."""
    return (fingerprint(a) == fingerprint(b) and a.outputs == b.outputs
            and a.depth == b.depth and a.arithmetic == b.arithmetic
            and all(np.array_equal(np.asarray(p.v_scale), np.asarray(b.populations[n].v_scale))
                    for n, p in a.populations.items()))


def overfit_warnings(cal: Calibration, candidates: int) -> list[str]:
    """Signs that the choice fits the calibration samples rather than the network, each
    with what to do."""
    out = []
    what = ("calibrate on more data (`spinnq quantize --calib-from train`, or the training "
            "data in `calibrate`) or try fewer candidates")
    if cal.float_score is not None and cal.score > cal.float_score:
        out.append(f"the chosen candidate ({_describe(cal.modes)}) scores {cal.score:.2%} on "
                   f"the {cal.samples} calibration samples, above the float reference's "
                   f"{cal.float_score:.2%} there: it fits these samples' noise, not the "
                   f"network; {what}")
    if cal.samples and cal.samples < SAMPLES_PER_CANDIDATE * candidates:
        out.append(f"{cal.samples} calibration samples for {candidates} candidates (fewer "
                   f"than {SAMPLES_PER_CANDIDATE} per candidate): the best score may be luck; "
                   f"{what}")
    return out


def _describe(modes: dict[str, str]) -> str:
    vals = list(dict.fromkeys(modes.values()))
    return vals[0] if len(vals) == 1 else ", ".join(f"{p} {m}" for p, m in modes.items())


def calibrate(graph, data: Data | None = None, *, bits: int | str | dict | None = None,
              percentiles: tuple[str, ...] = PERCENTILES, per_layer: bool = False,
              objective: Objective | None = None, readout: str = "count",
              cfg: S2Config | None = None, sim: SimConfig | None = None, batch: int = 64,
              labels: bool | None = None, quiet: bool = True,
              settings: RunSettings | dict | None = None, **flags) -> Calibration:
    """Choose every population's weight scale among `percentiles` on the emulated chip (see
    the module docstring). `data`: a D.npz path, (x, y) or x alone (agreement with the float
    reference); not needed with a custom `objective`. Run settings: keywords named like
    `RunSettings`' fields (convention=, reset=, dt=, ...) and/or one `settings` object,
    resolved with the graph's metadata (`spinnq.resolver`); `cfg`/`sim`, when given, win."""
    t0 = time.perf_counter()
    g = as_graph(graph)
    if not percentiles:
        raise InputError("give at least one candidate percentile")
    modes = [str(ScaleMode.parse(p)) for p in percentiles]
    if "none" in modes:
        raise InputError("'none' is not a calibration candidate (weights as they are)")
    # given both configs, the graph's metadata is not read: they win (`resolve`)
    rs = resolve(g if cfg is None or sim is None else None, settings, bits=bits, **flags)
    cfg, sim = cfg or rs.s2(), sim or rs.sim()
    cfg = cfg.with_bits(bits).with_(graph_scales=False)  # bits given win over cfg's
    spec = bits_value(cfg.bits, cfg.bits_by_population)
    y, ref, name, prog_fn = None, None, "custom", None
    if objective is None:
        if data is None:
            raise InputError("calibrate needs data (or a custom objective)")
        x, y = load_data(data, g, labels=has_labels(data) if labels is None else labels)
        name, prog_fn, ref = _objective(g, x, y, sim, readout, batch, quiet)
    programs = {m: compile(g, cfg.with_(weight_scale=m)) for m in modes}
    per_mode = {m: population_scales(g, cfg, programs[m]) for m in modes}
    pops = list(per_mode[modes[0]])
    table: list[dict] = []
    compiles = [len(modes)]
    kept: dict[tuple, tuple[float, Program, Emulation]] = {}  # the best score's emulations

    def scales_bits(choice: dict[str, str]) -> tuple[dict[str, float], dict[str, int]]:
        return ({p: per_mode[choice[p]][p]["w_scale"] for p in pops},
                {p: per_mode[choice[p]][p]["bits"] for p in pops})

    def score(choice: dict[str, str], step: str, pop: str | None) -> float:
        if prog_fn is None:
            cand = with_scales(g, *scales_bits(choice), cfg, program=programs[modes[0]])
            s = objective(cand, cfg.with_(graph_scales=True))
        else:
            prog = mixed_program(programs, choice)
            if prog is None:
                cand = with_scales(g, *scales_bits(choice), cfg, program=programs[modes[0]])
                prog = compile(cand, cfg.with_(graph_scales=True))
                compiles[0] += 1
            s, emu = prog_fn(prog)
            kept[tuple(choice.items())] = (s, prog, emu)
            top = max(v[0] for v in kept.values())  # a lower score is never chosen later
            for k in [k for k, v in kept.items() if v[0] < top]:
                del kept[k]
        table.append({"step": step, "population": pop, "mode": choice[pop] if pop else
                      choice[pops[0]], "modes": dict(choice), "score": s,
                      "saturated": sum(per_mode[choice[p]][p]["saturated"] for p in pops)})
        return s

    best_choice, best = _search(score, modes, pops, per_layer, name, spec, quiet)
    scales, pbits = scales_bits(best_choice)
    q = with_scales(g, scales, pbits, cfg, quantize=True, program=programs[modes[0]])
    q.metadata = meta.stamp(g.metadata, reset=cfg.reset, convention=sim.convention, dt=cfg.dt,
                            bits=spec, integrator=cfg.integrator,
                            delayed_reset=cfg.delayed_reset)
    program = compile(q, cfg.with_(graph_scales=True))
    chosen = kept.get(tuple(best_choice.items()))
    cal = Calibration(q, scales, best_choice, spec, float(best), name, table, program,
                      samples=0 if ref is None else len(ref.scores),
                      float_score=None if ref is None else ref.accuracy,
                      compiles=compiles[0] + 1, reference=ref, labels=y,
                      emulation=chosen[2] if chosen and same_emulation(chosen[1], program)
                      else None)
    cal.warnings = overfit_warnings(cal, len(table))
    cal.seconds = time.perf_counter() - t0
    return cal


def _search(score: Callable[[dict, str, str | None], float], modes: list[str],
            pops: list[str], per_layer: bool, name: str, bits: int | str, quiet: bool
            ) -> tuple[dict[str, str], float]:
    """(choice, score): every candidate percentile for the whole network (ties go to the
    larger percentile), then, with `per_layer`, each other one per population (greedy)."""
    pct = {m: (100.0 if m == "max" else ScaleMode.parse(m).percentile) for m in modes}
    n_try = len(modes) + (len(modes) * len(pops) if per_layer else 0)
    with progress(disable=quiet) as bar:
        task = bar.add_task(f"calibrate ({name}, {bits_label(bits)})", total=n_try, info="")
        best_choice, best = None, (-np.inf, -np.inf)
        for m in modes:
            choice = dict.fromkeys(pops, m)
            s = score(choice, "global", None)
            if (s, pct[m]) > best:
                best_choice, best = choice, (s, pct[m])
            bar.update(task, advance=1, info=f"{m}: {s:.4f}")
        if per_layer:
            for p in pops:
                for m in modes:
                    if m == best_choice[p]:
                        bar.update(task, advance=1)
                        continue
                    choice = {**best_choice, p: m}
                    s = score(choice, "per-layer", p)
                    if s > best[0]:
                        best_choice, best = choice, (s, best[1])
                    bar.update(task, advance=1, info=f"{p} {m}: {s:.4f}")
    return best_choice, best[0]
