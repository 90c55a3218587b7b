"""Accuracy of any NIR graph on labelled spikes: float reference and emulated chip, one
implementation for every task and command.

    res = evaluate(graph, (x, y), target="both")       # or a D.npz path (see `load_data`)
    res.chip.accuracy, res.float.accuracy, res.chip.cost.energy_j
    energy(res.chip.placement, res.chip.run, res.chip.program, op="dvfs")   # other points

Read-out: `count` = the output population's spikes summed over the run, `membrane` = its
voltage (NIR units) at the last step (LI / I read-outs). The class is the argmax. The chip runs
T + depth steps (its one step of latency per projection), so its counts cover the same input;
its run's activity counters are averaged per sample, ready for the energy model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.graph.model import Graph, from_nir, read_graph
from spinnq.graph.nodes import SPIKING_NEURONS
from spinnq.graph.simulate import SimConfig, Simulator, as_batch
from spinnq.helpers import progress
from spinnq.quant.data import Data, load_data, output_node
from spinnq.resolver import DEFAULT_TICK_S, RunSettings, resolve
from spinnq.s2.compile import S2Config, compile
from spinnq.s2.emulate import emulate, prepare_input, silent_outputs
from spinnq.s2.energy import Cost, energy
from spinnq.s2.inputs import SpikeInput
from spinnq.s2.place import place
from spinnq.s2.program import Placement, Program, Run

TARGETS = ("float", "chip", "both")
READOUTS = ("count", "membrane")


@dataclass
class TargetResult:
    """One target's outcome. `scores` (N, classes) are counts or voltages; chip fields are
    None on the float target."""

    target: str
    accuracy: float | None  # None without labels
    scores: np.ndarray
    predictions: np.ndarray
    per_class: dict[int, dict[str, int]]  # label -> {"n", "correct"}
    spikes_per_sample: dict[str, float]  # population -> spikes per sample (all steps)
    seconds: float  # wall time (measured)
    samples: int
    program: Program | None = None
    placement: Placement | None = None
    run: Run | None = None  # counters averaged per sample; spikes/voltages of the first batch
    cost: Cost | None = None  # modelled, per inference
    saturations: int = 0
    silent: list[str] = field(default_factory=list)  # spiking outputs that never fired

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        d = {"accuracy": self.accuracy, "samples": self.samples,
             "per_class": {str(k): v for k, v in self.per_class.items()},
             "spikes_per_sample": self.spikes_per_sample,
             "total_spikes_per_sample": float(sum(self.spikes_per_sample.values())),
             "seconds": self.seconds, "kind": "measured" if self.target == "float"
             else "emulated"}
        if self.cost is not None:
            d |= {"energy_j": self.cost.energy_j, "dynamic_j": self.cost.dynamic_j,
                  "energy_range_j": [self.cost.energy_low_j, self.cost.energy_high_j],
                  "realtime": self.cost.realtime, "latency_s": self.cost.latency_s,
                  "operating_point": self.cost.operating_point, "tick_s": self.cost.tick_s, "pes":
                  self.cost.pes, "energy_kind": "modelled", "saturations": self.saturations,
                  "silent_outputs": list(self.silent), "activity": self.cost.activity}
        return d


@dataclass
class EvalResult:
    float: TargetResult | None = None
    chip: TargetResult | None = None
    readout: str = "count"
    output: str = ""
    notes: list[str] = field(default_factory=list)
    settings: RunSettings | None = None  # what it ran with (`spinnq.resolver`)

    @property
    def agreement(self) -> float | None:
        """Share of samples where chip and float choose the same class."""
        if self.float is None or self.chip is None:
            return None
        return float((self.float.predictions == self.chip.predictions).mean())

    def to_dict(self) -> dict:
        d: dict = {t: r.to_dict() for t, r in (("float", self.float), ("chip", self.chip))
                   if r is not None}
        d["readout"], d["output"] = self.readout, self.output
        if self.agreement is not None:
            d["chip_float_agreement"] = self.agreement
        if self.float is not None and self.chip is not None and self.float.accuracy is not None:
            d["drop_pt"] = 100 * (self.float.accuracy - self.chip.accuracy)
        if self.notes:
            d["notes"] = list(self.notes)
        if self.settings is not None:
            d["settings"] = self.settings.to_dict()
        return d


def as_graph(graph) -> Graph:
    if isinstance(graph, Graph):
        return graph
    if isinstance(graph, str) or hasattr(graph, "__fspath__"):
        return read_graph(graph)
    return from_nir(graph)


def _outcome(target: str, scores: np.ndarray, y: np.ndarray | None, spikes: dict,
             seconds: float) -> TargetResult:
    pred = scores.argmax(1) if scores.size else np.zeros(0, np.int64)
    per_class: dict[int, dict[str, int]] = {}
    acc = None
    if y is not None:
        acc = float((pred == y).mean()) if len(y) else float("nan")
        for c in np.unique(y):
            m = y == c
            per_class[int(c)] = {"n": int(m.sum()), "correct": int((pred[m] == c).sum())}
    return TargetResult(target, acc, scores, pred, per_class, spikes, seconds, len(scores))


def _check_readout(graph: Graph, out: str, readout: str) -> None:
    if readout not in READOUTS:
        raise InputError(f"readout must be one of {READOUTS}, got {readout!r}")
    spiking = hasattr(graph.nodes[out], "v_threshold")
    if readout == "count" and not spiking:
        raise InputError(f"the output '{out}' ({type(graph.nodes[out]).__name__}) never spikes:"
                         " use readout 'membrane' (its voltage at the last step)",
                         node=out)


def _listed(p: SpikeInput | None, t: int, size: int) -> tuple[np.ndarray, ...] | None:
    """Steps [t, t + size) of a prepared batch's spike lists as `Simulator.steps` takes
    them ((T, B) first and end of each frame's list, the lists), None without lists."""
    if p is None or p.ptr is None:
        return None
    b, n = p.x.shape[0], p.x.shape[1]
    first, end = p.ptr[:-1].reshape(b, n), p.ptr[1:].reshape(b, n)
    return (np.ascontiguousarray(first[:, t:t + size].T),
            np.ascontiguousarray(end[:, t:t + size].T), p.idx)


def float_eval(graph: Graph, x: np.ndarray, y: np.ndarray | None, sim: SimConfig,
               readout: str = "count", batch: int = 64, quiet: bool = True, *,
               checked: bool = False, prepared: list[SpikeInput] | None = None
               ) -> TargetResult:
    """The float reference simulator on every sample (scores per class, spikes per node).
    Counts as it goes, a chunk of steps at a time (graphs without recurrent edges: layer by
    layer, `Simulator.steps`, chains of layers in one compiled pass; others a step at a
    time): memory is one chunk, not a recording of every step. `checked`: x comes from
    `load_data` (0/1 values, already checked), so no second pass looks for NaN or inf.
    `prepared`: x's batches as `prepare_batches(x, graph.input_shape, batch)` listed their
    spikes; a chain of layers fed by the input reads those lists instead of x (the same
    events in the same order: the same sums)."""
    out = output_node(graph)
    _check_readout(graph, out, readout)
    spiking = [n for n in graph.order if isinstance(graph.nodes[n], SPIKING_NEURONS)]
    simulator = Simulator(graph, sim)
    scores, spikes = [], dict.fromkeys(spiking, 0.0)
    t0 = time.perf_counter()
    with progress(disable=quiet) as bar, torch.no_grad():
        task = bar.add_task("float reference", total=len(x), info="")
        for i in range(0, len(x), batch):
            xb = as_batch(torch.from_numpy(np.ascontiguousarray(x[i:i + batch])).float(),
                          graph.input_shape, finite=not checked)
            b = xb.shape[0]
            p = prepared[i // batch] if prepared is not None else None
            if p is not None and (p.x.shape[:2] != xb.shape[:2]
                                  or p.shape != tuple(graph.input_shape)):
                raise InputError("the prepared batches are not x's (prepare_batches(x, "
                                 "graph.input_shape, batch))")
            simulator.reset(b)
            count = torch.zeros((b, *graph.shapes[out]), dtype=torch.float64)
            size = simulator.chunk(b, (out,)) if simulator.layerwise else 1
            for t in range(0, xb.shape[1], size):  # layer by layer over `size` steps
                now = (simulator.steps(xb[:, t:t + size], need=(out,),
                                       spikes=_listed(p, t, size))[0]
                       if simulator.layerwise else
                       {k: v.unsqueeze(0) for k, v in simulator.step(xb[:, t]).items()})
                for n in spiking:  # time-major (T, B, ...); a chain's inner node: counted
                    spikes[n] += float(now[n].sum()) if n in now else simulator.counts[n]
                if readout == "count":
                    count += now[out].sum(0)
            if readout == "count":
                scores.append(count.reshape(b, -1).numpy())
            else:
                scores.append(simulator.state[out].v.reshape(b, -1).double().numpy())
            bar.update(task, advance=b)
    n = max(len(x), 1)
    return _outcome("float", np.concatenate(scores), y, {k: v / n for k, v in spikes.items()},
                    time.perf_counter() - t0)


@dataclass
class Emulation:
    """A program emulated on a data set: what scoring a candidate needs (the read-out) and
    what an evaluation adds to it without running again (activity for the energy model)."""

    scores: np.ndarray  # (N, classes): output spike counts, or voltage (NIR units) at the end
    run: Run  # counters averaged per sample; spikes/voltages of the first batch
    seconds: float  # wall time (measured)


def prepare_batches(x: np.ndarray, shape: tuple[int, ...], batch: int = 64
                    ) -> list[SpikeInput]:
    """x's batches of `batch` samples checked and decoded once (`prepare_input`), for
    `emulate_all(..., prepared=)` of every program with an input population of `shape`:
    calibration's candidates run on the same samples, and their emulations equal
    `emulate_all` on x. Memory: the spike lists, 4 bytes per input spike."""
    return [prepare_input(x[i:i + batch], shape) for i in range(0, len(x), batch)]


def emulate_all(program: Program, x: np.ndarray, readout: str = "count", batch: int = 64,
                quiet: bool = True, label: str = "chip",
                prepared: list[SpikeInput] | None = None) -> Emulation:
    """Emulate `program` on every sample of x, in batches (no placement, no energy model):
    the read-out per sample, and the activity counters averaged per sample. `prepared`:
    x's batches as `prepare_batches(x, shape, batch)` gave them, run instead of x's."""
    if readout not in READOUTS:
        raise InputError(f"readout must be one of {READOUTS}, got {readout!r}")
    out = program.outputs[0]
    if readout == "count" and program.populations[out].record_only:
        raise InputError(f"the output '{out}' never spikes: use readout 'membrane' (its "
                         "voltage at the last step)", node=out)
    scores, first, counters, sat = [], None, None, 0
    t0 = time.perf_counter()
    with progress(disable=quiet) as bar:
        task = bar.add_task(label, total=len(x), info="")
        for i in range(0, len(x), batch):
            # as stored: the emulator takes 0/1 bytes without a float copy
            xb = x[i:i + batch] if prepared is None else prepared[i // batch]
            run = emulate(program, xb)
            w = len(xb) if prepared is None else len(xb.x)
            if readout == "count":
                scores.append(run.spikes[out].sum(1).reshape(w, -1).double().numpy())
            else:
                scores.append(run.v[out][:, -1].reshape(w, -1).double().numpy())
            c = {p: {k: np.asarray(v, dtype=np.float64) * w for k, v in d.items()}
                 for p, d in run.counters.items()}
            counters = c if counters is None else {
                p: {k: counters[p][k] + c[p][k] for k in d} for p, d in c.items()}
            sat += run.saturations
            if first is None:
                first = run
            bar.update(task, advance=w)
    seconds = time.perf_counter() - t0
    n = max(len(x), 1)
    avg = {p: {k: v / n for k, v in d.items()} for p, d in (counters or {}).items()}
    return Emulation(np.concatenate(scores), Run(first.spikes, first.v, avg, first.steps, sat),
                     seconds)


def chip_outcome(program: Program, emu: Emulation, y: np.ndarray | None, cfg: S2Config,
                 op: str = "0.8V", tick_s: float | None = DEFAULT_TICK_S,
                 placement: Placement | None = None) -> TargetResult:
    """The chip target's result from an emulation already run (`emulate_all`): placed once
    and priced once (modelled, per inference)."""
    placement = placement if placement is not None else place(program, cfg)
    avg, merged = emu.run.counters, emu.run
    spikes = {p: float(d["spikes"].sum()) for p, d in avg.items() if p != program.input}
    res = _outcome("chip", emu.scores, y, spikes, emu.seconds)
    res.program, res.placement, res.run, res.saturations = (program, placement, merged,
                                                            merged.saturations)
    res.silent = silent_outputs(program, merged)
    res.cost = energy(placement, merged, program, op=op, tick_s=tick_s)
    return res


def chip_eval(graph: Graph, x: np.ndarray, y: np.ndarray | None, cfg: S2Config,
              readout: str = "count", batch: int = 64, quiet: bool = True,
              label: str = "chip", op: str = "0.8V", tick_s: float | None = DEFAULT_TICK_S,
              program: Program | None = None) -> TargetResult:
    """Compile, place and emulate `graph` on every sample, in batches; activity counters
    averaged per sample and the modelled cost of one inference."""
    program = program if program is not None else compile(graph, cfg)
    placement = place(program, cfg)
    _check_readout(graph, program.outputs[0], readout)
    emu = emulate_all(program, x, readout, batch, quiet, label)
    return chip_outcome(program, emu, y, cfg, op, tick_s, placement)


def evaluate(graph, data: Data, *, target: str = "chip", readout: str = "count",
             settings: RunSettings | dict | None = None, cfg: S2Config | None = None,
             sim: SimConfig | None = None, batch: int = 64, quiet: bool = True,
             op: str | None = None, labels: bool = True, **flags) -> EvalResult:
    """Accuracy per target ('float', 'chip' or 'both') of `graph` (a Graph, nir.NIRGraph or
    path) on `data` (a D.npz path, (x, y) or {"x", "y"}). Run settings: keywords named like
    `RunSettings`' fields (convention=, reset=, dt=, bits=, weight_scale=, tick_s=,
    operating_point= or op=, ...) and/or one `settings` object, over the graph's metadata and
    the defaults (`spinnq.resolver`); stage configs `cfg`/`sim`, when given, win."""
    if target not in TARGETS:
        raise InputError(f"target must be one of {TARGETS}, got {target!r}")
    g = as_graph(graph)
    x, y = load_data(data, g, labels=labels)
    # given both configs, the graph's metadata is not read: they win (`resolve`)
    rs = resolve(g if cfg is None or sim is None else None, settings,
                 **({"operating_point": op} | flags if op else flags))
    if cfg is not None:
        rs = RunSettings.from_configs(cfg, rs.tick_s, rs.operating_point)
    cfg, sim = cfg or rs.s2(), sim or rs.sim()
    res = EvalResult(readout=readout, output=output_node(g), settings=rs)
    if target in ("float", "both"):
        res.float = float_eval(g, x, y, sim, readout, batch, quiet, checked=True)
    if target in ("chip", "both"):
        res.chip = chip_eval(g, x, y, cfg, readout, batch, quiet, op=rs.operating_point,
                             tick_s=rs.tick_s)
        res.notes += res.chip.program.notes
    return res
