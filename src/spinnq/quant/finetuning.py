"""Hardware-aware fine-tuning of any NIR graph: a trainable torch module whose forward pass
is the chip's arithmetic, and the training loop around it.

`ChipNet(graph, cfg)` compiles the graph and mirrors the compiled program:
  * each projection's integers are `fake_int(w * factor, w_scale)` of a trainable float
    weight shaped like the graph's weight node (straight-through rounding, the population's
    scale fixed, clipped to +-q, the compiler's rounding per kind); pooling before a weight
    layer is applied to the spikes, as the folded/fused projection does;
  * float32 state, the emulator's own update (`spinnq.s2.emulate.membrane`: alpha v + I, then
    i_offset, from step 0), strict threshold, the configured reset, synaptic sums clipped to
    the accumulator; `lif_curr_exp` splits excitatory and inhibitory currents as the chip;
  * every projection takes its delay (one step), so the run is T + depth steps, as emulated;
  * spikes are Heaviside forward, fast-sigmoid surrogate (in units of the threshold) backward.
Its spikes equal the emulator's (tested, 0 mismatches), and `export()` writes a graph (weights
= integer / scale, `w_scale` metadata) that compiles to the same integers.

`finetune(graph, data)` trains it: cross-entropy on labels (spike counts, or the read-out
voltage at the last step), or without labels distillation (MSE) of the float graph's read-out;
after every epoch the exported graph is scored on the emulated chip, and the best graph seen
is returned -- the starting (PTQ) graph unless training beats it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spinnq.errors import GraphError, InputError
from spinnq.graph import meta
from spinnq.graph.model import Graph, pair
from spinnq.graph.nodes import CHIP_WEIGHTS as WEIGHTS
from spinnq.graph.nodes import POOLS
from spinnq.graph.simulate import SimConfig
from spinnq.helpers import progress
from spinnq.nn.neurons import spike
from spinnq.quant.calibration import chain_factors, chains
from spinnq.quant.data import Data, has_labels, load_data
from spinnq.quant.evaluation import as_graph, chip_eval, float_eval
from spinnq.resolver import RunSettings, has_scales, resolve
from spinnq.s2 import chip
from spinnq.s2.compile import W_SCALE_KEY, S2Config, compile, recurrent
from spinnq.s2.emulate import ChipParams, chip_params, membrane
from spinnq.s2.formats import fake_int
from spinnq.s2.program import Program, Projection

Tensor = torch.Tensor


class _Proj(nn.Module):
    """One projection: trainable float weight -> the chip's integers -> the synaptic sums."""

    def __init__(self, proj: Projection, graph: Graph, mids: list[str], pre_shape: tuple,
                 cfg: S2Config):
        super().__init__()
        self.proj, self.pre_shape, self.delay = proj, tuple(pre_shape), int(proj.delay)
        self.kind, self.bits, self.scale = proj.kind, int(proj.bits), float(proj.w_scale)
        self.node, self.pool = None, 0
        factors = chain_factors(graph, mids)
        if factors is None:
            raise GraphError("finetune supports only Scale nodes with one value for all neurons",
                             node=proj.post)
        self.pool_factor, self.scale_factor = factors
        self.factor = factors[0] * factors[1]
        for m in mids:
            node = graph.nodes[m]
            if isinstance(node, nir.Delay):
                raise GraphError("finetune does not support Delay nodes yet", node=m)
            if isinstance(node, POOLS):
                self.pool = pair(node.kernel_size)[0]
            if isinstance(node, WEIGHTS):
                self.node = m
        if proj.kind == "pool":  # SumPool straight into neurons: fixed weights
            self.register_buffer("fixed", torch.as_tensor(proj.weight, dtype=torch.float32))
            self.weight = None
        else:
            w = np.asarray(graph.nodes[self.node].weight, dtype=np.float32)
            self.weight = nn.Parameter(torch.from_numpy(w.copy()))
        self.rounding = cfg.dense_rounding if proj.kind == "dense" else cfg.conv_rounding
        self.conv = dict(proj.conv)

    def ints(self) -> Tensor:
        if self.weight is None:
            return self.fixed
        # as the compiler: AvgPool's 1/k^2 stored in the node's float32, a Scale applied in
        # float64, then w * scale in float64, rounded the same way
        w = self.weight.double()
        if self.pool_factor != 1.0:
            w = (w * self.pool_factor).float().double()
        w = w * self.scale_factor
        return fake_int(w, self.scale, self.bits, self.rounding).float()

    def forward(self, s: Tensor, w: Tensor | None = None) -> Tensor:
        """s (M, pre) 0/1 float -> (M, post) integer-valued sums."""
        w = self.ints() if w is None else w
        if self.kind == "pool":
            x = s.reshape(s.shape[0], *self.pre_shape)
            c = self.conv
            return F.conv2d(x, w, None, c["stride"], c["padding"]).reshape(s.shape[0], -1)
        x = s.reshape(s.shape[0], *self.pre_shape) if self.pool or self.kind == "conv" else s
        if self.pool:
            x = F.avg_pool2d(x, self.pool, self.pool, divisor_override=1)
        if self.kind == "dense":
            return F.linear(x.reshape(s.shape[0], -1), w)
        c = self.conv
        y = F.conv2d(x, w, None, c["stride"], c["padding"], c["dilation"], c["groups"])
        return y.reshape(s.shape[0], -1)

    def check(self) -> int:
        """Integers that differ from the compiled program's (0 when this mirrors compile)."""
        with torch.no_grad():
            w = self.ints()
            if self.kind == "dense" and self.pool:  # folded: compare as a matrix
                n = math.prod(self.pre_shape)
                w = self.forward(torch.eye(n)).t()
            ref = torch.as_tensor(self.proj.weight, dtype=torch.float32)
            if tuple(w.shape) != tuple(ref.shape):
                return int(ref.numel())
            return int((w != ref).sum())


class ChipNet(nn.Module):
    """A compiled graph as a trainable torch module with the emulator's arithmetic."""

    def __init__(self, graph: Graph, cfg: S2Config, slope: float = 5.0):
        super().__init__()
        if getattr(cfg, "delayed_reset", False):
            raise GraphError("finetune does not mirror delayed_reset (snnTorch's late reset as "
                             "a self-projection) yet: fine-tune with delayed_reset=False",
                             file=graph.source)
        self.graph, self.cfg, self.slope = graph, cfg, float(slope)
        self.program: Program = compile(graph, cfg)
        prog = self.program
        self.order = [n for n in prog.populations if n != prog.input]
        self.params: dict[str, ChipParams] = {n: chip_params(prog.populations[n], prog.arithmetic)
                                              for n in self.order}
        self.recurrent = bool(recurrent(prog))
        self.projs = nn.ModuleList()
        self.into: dict[str, list[int]] = {n: [] for n in self.order}
        for post in self.order:
            paths = chains(graph, post)
            for p in (p for p in prog.projections if p.post == post):
                mids = [m for pre, m in paths if pre == p.pre]
                if len(mids) != 1:
                    raise GraphError(f"finetune needs one path from '{p.pre}' into each "
                                     f"population; found {len(mids)}", node=post)
                self.into[post].append(len(self.projs))
                self.projs.append(_Proj(p, graph, mids[0], prog.populations[p.pre].shape, cfg))
        bad = {pr.proj.pre + "->" + pr.proj.post: pr.check() for pr in self.projs}
        if any(bad.values()):
            raise GraphError(f"finetune's integers differ from the compiled program's ({bad});"
                             " the compiler maps a node type finetune does not mirror yet")

    # ------------------------------------------------------------------- one neuron step
    def _fire(self, v: Tensor, p: ChipParams, spiking: bool) -> tuple[Tensor, Tensor]:
        if not spiking:
            return torch.zeros_like(v), v
        th = p.threshold
        s = spike((v - th) / th.abs().clamp(min=1e-12), self.slope)
        if p.subtract:
            v = v - s.detach() * th
        else:
            v = torch.where(s.detach().bool(), p.v_reset, v)
        return s, v

    def _step(self, name: str, I: list[Tensor], state: list[Tensor]
              ) -> tuple[Tensor, list[Tensor]]:
        p, pop = self.params[name], self.program.populations[name]
        spiking = not pop.record_only
        if pop.model in chip.CUBA_MODELS:
            v, ie, ii = state
            new_e = p.syn_alpha * ie + I[0] + p.bias_exc
            new_i = p.syn_alpha * ii + I[1] + p.bias_inh
            cur = new_e + new_i if p.current_first else ie + ii
            s, v = self._fire(membrane(v, cur, p), p, spiking)
            return s, [v, new_e, new_i]
        s, v = self._fire(membrane(state[0], I[0], p), p, spiking)
        return s, [v]

    def _sums(self, name: str, src: dict[str, Tensor], t: slice | int, B: int) -> list[Tensor]:
        """Synaptic sums into `name` from the spike histories (steps, B, n) at `t`."""
        pop = self.program.populations[name]
        cuba = pop.model in chip.CUBA_MODELS
        acc: list[Tensor | None] = [None, None] if cuba else [None]
        for k in self.into[name]:
            pr = self.projs[k]
            h = src[pr.proj.pre]
            if isinstance(t, int):
                s = h[t - pr.delay] if t - pr.delay >= 0 else torch.zeros_like(h[0])
                s = s.unsqueeze(0)
            else:
                s = torch.cat([torch.zeros_like(h[:pr.delay]), h[:-pr.delay]], 0) \
                    if pr.delay < h.shape[0] else torch.zeros_like(h)
            n = s.shape[0]
            w = pr.ints()
            parts = [w.clamp(min=0), w.clamp(max=0)] if cuba else [w]
            for i, wi in enumerate(parts):
                y = pr(s.reshape(n * B, -1), wi).reshape(n, B, -1)
                acc[i] = y if acc[i] is None else acc[i] + y
        lim = chip.ACC_LIMIT
        return [torch.zeros((1 if isinstance(t, int) else src[self.program.input].shape[0],
                             B, pop.size)) if a is None else a.clamp(-lim, lim)
                for a in acc]

    def forward(self, x: Tensor, steps: int | None = None) -> tuple[dict, dict]:
        """x (B, T, *input_shape) 0/1 -> (spikes, v): per population (B, steps, n), v in chip
        units, over T + depth steps (or `steps`)."""
        prog = self.program
        B, T = x.shape[0], x.shape[1]
        steps = T + prog.depth if steps is None else steps
        xin = x.reshape(B, T, -1).transpose(0, 1).float()
        hist: dict[str, Tensor] = {prog.input: torch.cat(
            [xin[:steps], xin.new_zeros((max(0, steps - T), B, xin.shape[2]))], 0)}
        state = {n: [torch.zeros(B, prog.populations[n].size)
                     for _ in range(3 if prog.populations[n].model in chip.CUBA_MODELS else 1)]
                 for n in self.order}
        v_out: dict[str, list[Tensor]] = {n: [] for n in self.order}
        if not self.recurrent:  # population by population, all steps of its input at once
            for name in self.order:
                I_all = self._sums(name, hist, slice(None), B)
                s_list, st = [], state[name]
                for t in range(steps):
                    s, st = self._step(name, [a[t] for a in I_all], st)
                    s_list.append(s)
                    v_out[name].append(st[0])
                hist[name] = torch.stack(s_list, 0)
        else:  # recurrence: every population one step at a time
            s_hist: dict[str, list[Tensor]] = {n: [] for n in self.order}
            for t in range(steps):
                cur = {prog.input: hist[prog.input],
                       **{n: torch.stack(s_hist[n], 0) if s_hist[n] else
                          torch.zeros(1, B, prog.populations[n].size) for n in self.order}}
                for name in self.order:
                    I = [a[0] for a in self._sums(name, cur, t, B)]
                    s, state[name] = self._step(name, I, state[name])
                    s_hist[name].append(s)
                    v_out[name].append(state[name][0])
            hist.update({n: torch.stack(s_hist[n], 0) for n in self.order})
        spikes = {n: hist[n].transpose(0, 1) for n in self.order}
        v = {n: torch.stack(v_out[n], 1) for n in self.order}
        return spikes, v

    def scores(self, x: Tensor, readout: str = "count") -> Tensor:
        """(B, classes): output spike counts, or output voltage (NIR units) at the last step."""
        out = self.program.outputs[0]
        spikes, v = self.forward(x)
        if readout == "count":
            return spikes[out].sum(1)
        vs = torch.as_tensor(np.asarray(self.program.populations[out].v_scale,
                                        dtype=np.float32))
        return v[out][:, -1] / vs

    # ----------------------------------------------------------------------- export
    def export(self) -> Graph:
        """The graph with the trained chip values (integer / scale, float32) in its weight
        nodes and `w_scale`/`bits` metadata: compiles (graph_scales) to the same integers."""
        g = copy.copy(self.graph)
        g.nodes = dict(self.graph.nodes)
        with torch.no_grad():
            for pr in self.projs:
                if pr.weight is None:
                    continue
                node = copy.copy(g.nodes[pr.node])
                q = pr.ints().double().numpy()
                node.weight = (q / pr.scale / pr.factor).astype(np.float32)
                node.metadata = {**(getattr(node, "metadata", None) or {}),
                                 W_SCALE_KEY: pr.scale, "bits": pr.bits}
                g.nodes[pr.node] = node
        return g


@dataclass
class FinetuneResult:
    graph: Graph  # the best graph (PTQ start unless training beat it), stamped
    score_start: float
    score: float
    history: list[dict] = field(default_factory=list)  # per epoch: loss, score
    improved: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"score_start": self.score_start, "score": self.score,
                "improved": self.improved, "history": self.history, "seconds": self.seconds}


def finetune(graph, train_data: Data, *, val_data: Data | None = None, epochs: int = 5,
             lr: float = 0.05, batch: int = 32, readout: str = "count",
             teacher: Graph | None = None, cfg: S2Config | None = None,
             sim: SimConfig | None = None, seed: int = 0, slope: float = 5.0,
             val_fraction: float = 0.25, gap_weight: float = 0.0, min_gain: float = 0.005,
             quiet: bool = True, settings: RunSettings | dict | None = None,
             **flags) -> FinetuneResult:
    """Fine-tune `graph` (usually `calibrate(...).graph`) on the chip's arithmetic; see the
    module docstring. `lr` is in integer steps (Adam's step / the population's scale).
    Without labels in `train_data`, the loss is MSE to `teacher`'s (default: `graph`'s)
    float read-out, plus `gap_weight` x MSE of the read-outs' differences from their mean over
    classes (the gaps that decide the argmax, e.g. a Q-network's greedy action).
    `val_data` (default: a seeded `val_fraction` of `train_data`, held out of training) picks
    the best epoch on the chip; it replaces the start only if it gains at least `min_gain`
    there (a one-sample gain on a few hundred samples is noise, not a better network).
    Run settings (convention=, reset=, dt=, ... or `settings=`): as `calibrate`'s."""
    t0 = time.perf_counter()
    g = as_graph(graph)
    rs = resolve(g, settings, **flags)
    cfg, sim = cfg or rs.s2(), sim or rs.sim()
    cfg = cfg.with_(graph_scales=has_scales(g))
    labelled = has_labels(train_data)
    x, y = load_data(train_data, g, labels=labelled)
    if val_data is not None:
        vx, vy = load_data(val_data, g, labels=labelled)
    else:  # hold out a seeded share of the training data to pick the epoch (not overfit it)
        perm = np.random.default_rng(seed).permutation(len(x))
        n_val = int(round(val_fraction * len(x))) if len(x) >= 8 else 0
        vi, ti = perm[:n_val], perm[n_val:]
        (vx, vy), (x, y) = ((x, y) if n_val == 0 else
                            ((x[vi], None if y is None else y[vi]),
                             (x[ti], None if y is None else y[ti])))
    if readout not in ("count", "membrane"):
        raise InputError(f"readout must be 'count' or 'membrane', got {readout!r}")
    if epochs < 0:
        raise InputError(f"epochs must be >= 0, got {epochs}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = ChipNet(g, cfg, slope)
    ref = teacher if teacher is not None else g
    target = None
    if y is None:
        target = torch.from_numpy(float_eval(ref, x, None, sim, readout).scores).float()
        vy = float_eval(ref, vx, None, sim, readout).predictions
    opt = torch.optim.Adam([{"params": [p.weight], "lr": lr / p.scale}
                            for p in net.projs if p.weight is not None])
    stamp = meta.read_settings(g.metadata)
    settings = {"reset": cfg.reset, "dt": cfg.dt, "bits": stamp.get("bits", cfg.bits),
                "convention": sim.convention}

    def score(graph_: Graph) -> float:
        return float(chip_eval(graph_, vx, vy, cfg.with_(graph_scales=True), readout).accuracy)

    start = net.export()
    best_g, best = start, score(start)
    first = best
    hist: list[dict] = []
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y) if y is not None else None
    with progress(disable=quiet) as bar:
        task = bar.add_task("finetune on the chip's arithmetic", total=epochs, info="")
        for ep in range(epochs):
            perm = torch.randperm(len(xt), generator=gen)
            losses = []
            for i in range(0, len(xt), batch):
                idx = perm[i:i + batch]
                out = net.scores(xt[idx], readout)
                if yt is not None:
                    loss = F.cross_entropy(out, yt[idx])
                else:
                    t = target[idx]
                    loss = F.mse_loss(out, t)
                    if gap_weight:
                        loss = loss + gap_weight * F.mse_loss(out - out.mean(1, keepdim=True),
                                                              t - t.mean(1, keepdim=True))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            cand = net.export()
            s = score(cand)
            hist.append({"epoch": ep + 1, "loss": float(np.mean(losses)), "score": s})
            if s > best and s >= first + min_gain:
                best, best_g = s, cand
            bar.update(task, advance=1, info=f"score {s:.4f} (best {best:.4f})")
    best_g.metadata = meta.stamp(g.metadata, **settings)
    return FinetuneResult(best_g, first, best, hist, best > first, time.perf_counter() - t0)

