"""The field's activity metrics beside the joules, per population: NeuroBench's definitions
(neurobench 2.3.0, `neurobench.metrics.workload`), so a spinnq figure reads like a NeuroBench
one.

  effective_acs        SynapticOperations' Effective_ACs: for every spike arriving at a
                       projection, its nonzero synapses (the inputs are spikes, so these are
                       accumulates, never MACs), into the population, per inference
  dense_synops         SynapticOperations' Dense: the same with every input active and every
                       weight nonzero, at every step (what a frame-based network of this shape
                       would do)
  activation_sparsity  ActivationSparsityByLayer: the share of (neuron, step) pairs without a
                       spike; `total` is ActivationSparsity over every population but the
                       input (data, not a layer); the input's own row is its data's sparsity

Two ways to the same numbers (tests/s2/test_activity.py checks they agree):
  from_counters(program, run)    the emulator's event counters (`syn_events`, `spikes`):
                                 any network size, any command (what `energy()` stores)
  with_neurobench(program, run)  NeuroBench's own metric classes, through its `TorchModel`
                                 wrapper and hooks, on a replay of the run: each population's
                                 recorded spikes through the program's synapses (torch
                                 Linear/Conv2d holding the chip's integer weights; a fused
                                 k x k sum-pool as the equivalent conv on the raw input).
                                 Needs neurobench (installed --no-deps: it declares torchaudio,
                                 which only its audio pre-processors import) and every
                                 population recorded (`emulate(..., record=all)`).
`metrics(program, run)` takes NeuroBench's where it fits (installed, every population
recorded, a replay within `REPLAY_BUDGET`), else the counters; its `source` says which.
Every number is per inference (the run's batch mean); the counters' are "emulated", so are
NeuroBench's on the emulated spikes.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch
from torch import nn

from spinnq.s2.program import Program, Projection, Run

NEUROBENCH_VERSION = "2.3.0"  # the version the definitions and the agreement test are of
REPLAY_BUDGET = 1 << 30  # dense synaptic operations the NeuroBench replay may compute
RASTER_BUDGET = 1 << 22  # (sample, step, neuron) spike entries a command records for it
SOURCE_COUNTERS = (f"the emulator's event counters, with NeuroBench {NEUROBENCH_VERSION}'s "
                   "definitions")
SOURCE_NEUROBENCH = (f"NeuroBench {NEUROBENCH_VERSION} (SynapticOperations, "
                     "ActivationSparsityByLayer, ActivationSparsity) on the emulated spikes")


def neurobench_available() -> bool:
    return importlib.util.find_spec("neurobench") is not None


def _dense_per_step(proj: Projection, program: Program) -> float | None:
    """NeuroBench's Dense synaptic operations of one step of a projection: every input active,
    every weight nonzero (a conv: the taps that land inside the output, padding excluded;
    None for a conv without its geometry)."""
    pre = program.populations[proj.pre]
    if proj.kind == "dense":
        return float(pre.size) * float(program.populations[proj.post].size)
    if "stride" not in proj.conv or len(pre.shape) != 3:
        return None
    layer, prep = _layer(proj, tuple(pre.shape))
    with torch.no_grad():
        layer.weight.fill_(1.0)
        return float(layer(prep(torch.ones((1, pre.size)))).sum())


def from_counters(program: Program | None, run: Run) -> dict:
    """The metrics from the emulator's counters (see the module docstring)."""
    sizes = ({n: p.size for n, p in program.populations.items()} if program is not None
             else {n: None for n in run.counters})
    dense: dict[str, float | None] = {n: 0.0 for n in sizes}
    if program is not None:
        for p in program.projections:
            d = _dense_per_step(p, program)
            dense[p.post] = None if d is None or dense[p.post] is None else (
                dense[p.post] + run.steps * d)
    per = {}
    for name, c in run.counters.items():
        n = sizes.get(name)
        spikes = float(np.sum(c.get("spikes", 0.0)))
        per[name] = {"neurons": n, "spikes": spikes,
                     "activation_sparsity": _sparsity(spikes, n, run.steps),
                     "effective_acs": float(np.sum(c.get("syn_events", 0.0))),
                     "dense_synops": dense.get(name) if program is not None else None}
    return _with_total(per, program, run.steps, SOURCE_COUNTERS)


def _sparsity(spikes: float, neurons: int | None, steps: int) -> float | None:
    return None if not neurons or not steps else 1.0 - spikes / (neurons * steps)


def _with_total(per: dict, program: Program | None, steps: int, source: str,
                sparsity: float | None = None) -> dict:
    """{source, per_population, total}: sums over populations; the total sparsity over every
    population but the input (NeuroBench's ActivationSparsity), unless given."""
    layers = [d for k, d in per.items() if program is None or k != program.input]
    if sparsity is None:
        neurons = sum(d["neurons"] or 0 for d in layers)
        sparsity = _sparsity(sum(d["spikes"] for d in layers), neurons, steps)
    dense = [d["dense_synops"] for d in per.values()]
    total = {"effective_acs": sum(d["effective_acs"] for d in per.values()),
             "dense_synops": None if None in dense else sum(dense),
             "activation_sparsity": sparsity}
    return {"source": source, "kind": "emulated", "per_population": per, "total": total}


# ------------------------------------------------------------------ NeuroBench's replay
class RecordedSpikes(nn.Module):
    """A population as NeuroBench sees an activation layer: its output is the recorded
    spikes it is given."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return s


def _layer(proj: Projection, pre_shape: tuple[int, ...]):
    """(torch layer with the projection's integer weights, input preparation (M, pre) ->
    the layer's input). A fused k x k sum-pool before a conv is the conv on the raw input
    with each tap repeated over a k x k block, stride and padding x k (rows and columns the
    pool drops are cropped): each input spike then reaches exactly the synapses it reaches on
    the chip."""
    w = torch.as_tensor(np.asarray(proj.weight), dtype=torch.float32)
    if proj.kind == "dense":
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
        lin.weight.data = w.contiguous()
        return lin, lambda s: s
    c = proj.conv
    k = int(c.get("pool") or 1)
    (sy, sx), (py, px), (dy, dx) = c["stride"], c["padding"], c.get("dilation", (1, 1))
    C, H, W = pre_shape
    if k > 1:
        w = w.repeat_interleave(k, 2).repeat_interleave(k, 3)
        if (dy, dx) != (1, 1):  # taps of a dilated pooled conv: k x k blocks, d*k apart
            kh, kw = proj.weight.shape[2:]
            big = torch.zeros((*w.shape[:2], ((kh - 1) * dy + 1) * k, ((kw - 1) * dx + 1) * k))
            for i in range(kh):
                for j in range(kw):
                    big[:, :, i * dy * k:i * dy * k + k, j * dx * k:j * dx * k + k] = \
                        w[:, :, i * k:i * k + k, j * k:j * k + k]
            w = big
        sy, sx, py, px, dy, dx = sy * k, sx * k, py * k, px * k, 1, 1
    conv = nn.Conv2d(C, w.shape[0], tuple(w.shape[2:]), (sy, sx), (py, px), (dy, dx),
                     int(c.get("groups", 1)), bias=False)
    conv.weight.data = w.contiguous()
    Hk, Wk = H // k * k, W // k * k
    return conv, lambda s: s.reshape(s.shape[0], C, H, W)[:, :, :Hk, :Wk]


class Replay(nn.Module):
    """Replays a run for NeuroBench's hooks: each population's recorded spikes through an
    activation module, and each projection's input (the pre spikes `delay` steps earlier,
    as the emulator delivers them) through its layer, all steps of all samples at once."""

    def __init__(self, program: Program):
        super().__init__()
        self.program = program
        self.names = list(program.populations)
        self.act = nn.ModuleList([RecordedSpikes() for _ in self.names])
        made = [_layer(p, tuple(program.populations[p.pre].shape))
                for p in program.projections]
        self.syn = nn.ModuleList([m for m, _ in made])
        self.prep = [f for _, f in made]

    def forward(self, spikes: dict[str, torch.Tensor]) -> None:
        for name, act in zip(self.names, self.act, strict=True):
            s = spikes[name]
            act(s.reshape(-1, s[0, 0].numel()))
        for p, layer, prep in zip(self.program.projections, self.syn, self.prep, strict=True):
            s = spikes[p.pre]
            B, T = s.shape[:2]
            d = torch.zeros_like(s)
            if p.delay < T:
                d[:, p.delay:] = s[:, :T - p.delay]
            layer(prep(d.reshape(B * T, -1)))


def replay_work(program: Program, run: Run) -> float:
    """Dense synaptic operations the replay computes (to keep it within `REPLAY_BUDGET`)."""
    B = next(iter(run.spikes.values())).shape[0] if run.spikes else 1
    per = [_dense_per_step(p, program) for p in program.projections]
    return math.inf if None in per else 2.0 * B * run.steps * sum(per)


def with_neurobench(program: Program, run: Run) -> dict:
    """The metrics computed by NeuroBench's metric classes on the run's recorded spikes
    (every population recorded; see the module docstring)."""
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ActivationSparsityByLayer,
        SynapticOperations,
    )
    from neurobench.models import TorchModel

    missing = [n for n in program.populations if n not in run.spikes]
    if missing:
        raise ValueError(f"NeuroBench's metrics need every population's spikes: "
                         f"'{missing[0]}' was not recorded")
    spikes = {n: run.spikes[n].float() for n in program.populations}
    B = next(iter(spikes.values())).shape[0]
    net = Replay(program)
    model = TorchModel(net)
    model.add_activation_module(RecordedSpikes)
    model.register_hooks()
    try:
        names = {id(m): n for m, n in zip(net.act, net.names, strict=True)}
        for h in model.activation_hooks:
            h.name = names[id(h.layer)]
        data = (torch.zeros(B), torch.zeros(B))  # NeuroBench divides by data[0].size(0)
        with torch.no_grad():
            model(spikes)
        hooks = list(model.connection_hooks)
        post = {id(layer): p.post for layer, p in zip(net.syn, program.projections, strict=True)}
        per = {}
        for name, pop in program.populations.items():
            model.connection_hooks = [h for h in hooks if post[id(h.layer)] == name]
            ops = SynapticOperations()(model, None, data)
            per[name] = {"neurons": pop.size, "spikes": float(spikes[name].sum()) / B,
                         "effective_acs": float(ops["Effective_ACs"]),
                         "effective_macs": float(ops["Effective_MACs"]),
                         "dense_synops": float(ops["Dense"])}
        model.connection_hooks = hooks
        by_layer = ActivationSparsityByLayer()(model, None, data)
        for name in per:
            per[name]["activation_sparsity"] = float(by_layer[name])
        model.activation_hooks = [h for h in model.activation_hooks if h.name != program.input]
        total = float(ActivationSparsity()(model, None, data))
    finally:
        model.cleanup_hooks()
    return _with_total(per, program, run.steps, SOURCE_NEUROBENCH, total)


def fits_neurobench(program: Program | None, run: Run) -> bool:
    """NeuroBench installed, every population recorded and the replay within budget."""
    return (program is not None and neurobench_available()
            and all(n in run.spikes for n in program.populations)
            and replay_work(program, run) <= REPLAY_BUDGET)


def metrics(program: Program | None, run: Run) -> dict:
    """NeuroBench's metrics where they fit (`fits_neurobench`), else the counters'."""
    if fits_neurobench(program, run):
        return with_neurobench(program, run)
    return from_counters(program, run)


def record_all(program: Program, samples: int, steps: int) -> list[str] | None:
    """Every population, for a run NeuroBench's replay can read, when neurobench is installed,
    the recording stays within `RASTER_BUDGET` entries and the replay within `REPLAY_BUDGET`;
    else None (no second run). Price the cost on a run with the default recording: the
    energy model charges recording as PE work."""
    n = sum(p.size for p in program.populations.values())
    if not neurobench_available() or samples * steps * n > RASTER_BUDGET:
        return None
    per = [_dense_per_step(p, program) for p in program.projections]
    if None in per or 2.0 * samples * steps * sum(per) > REPLAY_BUDGET:
        return None
    return list(program.populations)
