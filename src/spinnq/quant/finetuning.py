"""Hardware-aware fine-tuning of any NIR graph: a trainable torch module whose forward pass
is the chip's arithmetic, and the training loop around it.

`ChipNet(graph, cfg)` compiles the graph and mirrors the compiled program:
  * each projection's integers are `fake_int(w * factor, w_scale)` of a trainable float
    weight shaped like the graph's weight node (straight-through rounding, the population's
    scale fixed, clipped to +-q, the compiler's rounding per kind); pooling before a weight
    layer is applied to the spikes, as the folded/fused projection does;
  * float32 state, the chip step every engine runs (`spinnq.s2.step`: alpha v + I, then
    i_offset, from step 0; strict threshold; the configured reset), synaptic sums clipped to
    the accumulator; `lif_curr_exp` splits excitatory and inhibitory currents as the chip;
  * every projection takes its delay (one step), so the run is T + depth steps, as emulated;
  * spikes are Heaviside forward, fast-sigmoid surrogate (in units of the threshold) backward.
Its spikes equal the emulator's (tested, 0 mismatches), and `export()` writes a graph (weights
= integer / scale, `w_scale` metadata) that compiles to the same integers.

`finetune(graph, data, val=...)` trains it: cross-entropy on labels (spike counts, or the
read-out voltage at the last step), or without labels distillation (MSE) of the float graph's
read-out; after every epoch the exported graph is compiled and scored on the emulated chip on
validation data the network is not trained on (a share of the training data, where PTQ may
already be saturated, cannot show a gain), training stops after `patience` epochs without a
better score, and the best epoch is returned -- the starting (PTQ) graph unless it beats PTQ
there. With `learn_thresholds`, one factor per spiking population on its threshold is learnt
with the weights (paper B's adaptive threshold scaling): the module recomputes the chip's
float32 threshold as the compiler does from the exported v_threshold, so it still equals the
emulator spike for spike.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spinnq.errors import GraphError, InputError
from spinnq.graph import meta
from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig
from spinnq.helpers import progress
from spinnq.nn.neurons import spike
from spinnq.quant.calibration import chip_accuracy
from spinnq.quant.data import Data, has_labels, load_data
from spinnq.quant.evaluation import as_graph, float_eval
from spinnq.resolver import RunSettings, has_scales, resolve
from spinnq.s2 import chip
from spinnq.s2.compile import INCLUSIVE, NEURON_RULES, W_SCALE_KEY, S2Config, compile, recurrent
from spinnq.s2.emulate import ChipParams, chip_params, membrane
from spinnq.s2.formats import fake_int, qmax
from spinnq.s2.program import Program, Projection
from spinnq.s2.step import TORCH as STEP
from spinnq.settings import bits_value

Tensor = torch.Tensor
# learnt threshold factors stay within [1/R, R] of the start: the chip's float32 threshold
# stays finite and positive, and a factor that wants to leave this range is better served by
# another weight scale (calibration) than by a threshold that silences or saturates its layer
THRESHOLD_RANGE = 4.0


class _Proj(nn.Module):
    """One projection: trainable float weight -> the chip's integers -> the synaptic sums.
    What compile folded into the projection (the graph's weight node, a pool before it,
    AvgPool's 1/k^2 and Scale factors) is read from the program (`Projection.fold`)."""

    def __init__(self, proj: Projection, graph: Graph, pre_shape: tuple, cfg: S2Config):
        super().__init__()
        self.proj, self.pre_shape, self.delay = proj, tuple(pre_shape), int(proj.delay)
        self.kind, self.bits, self.scale = proj.kind, int(proj.bits), float(proj.w_scale)
        fold = proj.fold
        if fold is None or fold.node not in (None, *graph.nodes):
            raise GraphError("finetune needs the projections compile makes from the graph's "
                             "weight nodes (this one has none it can train)", node=proj.post)
        if fold.delayed:
            raise GraphError("finetune does not support Delay nodes yet", node=proj.post)
        if fold.factor is None:
            raise GraphError("finetune supports only Scale nodes with one value for all neurons",
                             node=proj.post)
        self.node, self.pool, self.factor = fold.node, fold.pool, fold.factor
        self.pool_factor, self.scales = fold.pool_factor, tuple(float(f) for f in fold.scales)
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
        for f in self.scales:
            w = w * f
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

    def __init__(self, graph: Graph, cfg: S2Config, slope: float = 5.0,
                 learn_thresholds: bool = False):
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
            for p in (p for p in prog.projections if p.post == post):
                self.into[post].append(len(self.projs))
                self.projs.append(_Proj(p, graph, prog.populations[p.pre].shape, cfg))
        nodes = [pr.node for pr in self.projs if pr.node is not None]
        shared = sorted({n for n in nodes if nodes.count(n) > 1})
        if shared:  # export writes one weight per node
            raise GraphError("finetune needs each weight node to feed one projection; "
                             f"{', '.join(shared)} feed several", node=shared[0])
        bad = {pr.proj.pre + "->" + pr.proj.post: pr.check() for pr in self.projs}
        if any(bad.values()):
            raise GraphError(f"finetune's integers differ from the compiled program's ({bad});"
                             " the compiler maps a node type finetune does not mirror yet")
        self.th_pops: list[str] = []
        self.log_k: nn.Parameter | None = None
        if learn_thresholds:
            self._threshold_terms()

    def start_from(self, teacher: Graph) -> int:
        """Put the trainable weights where `teacher`'s float weights are, wherever those give
        the same integers (so the module computes exactly what it did): training then starts
        from the float network's positions between the integers, not from their centres,
        where every weight pushed the same way crosses a rounding boundary at the same step
        (hundreds of integers jump together and the loss leaps up). Returns how many
        weights moved."""
        moved = 0
        with torch.no_grad():
            for pr in self.projs:
                node = teacher.nodes.get(pr.node) if pr.weight is not None else None
                w_t = getattr(node, "weight", None)
                if w_t is None or np.shape(w_t) != tuple(pr.weight.shape):
                    continue
                before = pr.ints()
                old = pr.weight.detach().clone()
                bound = (qmax(pr.bits) + 0.49) / (pr.scale * abs(pr.factor))
                w_t = torch.as_tensor(np.asarray(w_t, dtype=np.float32)).clamp(-bound, bound)
                pr.weight.copy_(w_t)
                same = pr.ints() == before
                pr.weight.copy_(torch.where(same, w_t, old))
                if not torch.equal(pr.ints(), before):  # a rounding corner case: keep old
                    pr.weight.copy_(old)
                    continue
                moved += int((pr.weight != old).sum())
        return moved

    def dither(self, gen: torch.Generator, width: float = 0.4) -> int:
        """Without a float network to start from: move every weight that sits on an integer
        centre by a seeded uniform offset of up to `width` integer steps, wherever that keeps
        its integer (same reason as `start_from`). Returns how many weights moved."""
        moved = 0
        with torch.no_grad():
            for pr in self.projs:
                if pr.weight is None:
                    continue
                before, old = pr.ints(), pr.weight.detach().clone()
                unit = 1.0 / (pr.scale * abs(pr.factor))
                x = old.double() * pr.scale * pr.factor
                centred = (x - x.round()).abs() <= 1e-4
                u = (torch.rand(old.shape, generator=gen) * 2 - 1) * width * unit
                pr.weight.copy_(torch.where(centred, old + u.float(), old))
                pr.weight.copy_(torch.where(pr.ints() == before, pr.weight, old))
                if not torch.equal(pr.ints(), before):
                    pr.weight.copy_(old)
                    continue
                moved += int((pr.weight != old).sum())
        return moved

    # ------------------------------------------------------ adaptive threshold scaling
    def _threshold_terms(self) -> None:
        """Per spiking population: its NIR v_threshold and the compiler's voltage scale
        (float64), so `threshold` recomputes the chip's float32 threshold as compile does."""
        prog, cfg = self.program, self.cfg
        self.th_pops = [n for n in self.order if not prog.populations[n].record_only]
        self._th_terms: dict[str, tuple[Tensor, Tensor]] = {}
        for n in self.th_pops:
            node = self.graph.nodes[n]
            size = prog.populations[n].size
            w_scale = next(p.w_scale for p in prog.projections if p.post == n)
            nscale = NEURON_RULES[type(node)][0](node, w_scale, np.zeros(size), size, cfg).scale
            vth = np.asarray(node.v_threshold, dtype=np.float64)
            vth = np.broadcast_to(vth.ravel() if vth.size > 1 else vth.reshape(()), (size,))
            self._th_terms[n] = (torch.from_numpy(vth.copy()), torch.from_numpy(
                np.broadcast_to(np.asarray(nscale, dtype=np.float64), (size,)).copy()))
            with torch.no_grad():
                th = self._chip_threshold(n, torch.zeros((), dtype=torch.float64))
            if not torch.equal(th, self.params[n].threshold):
                raise GraphError("finetune cannot learn this population's threshold: its chip "
                                 "threshold is not v_threshold x the voltage scale", node=n)
        self.log_k = nn.Parameter(torch.zeros(len(self.th_pops), dtype=torch.float64))

    def _chip_threshold(self, name: str, log_k: Tensor) -> Tensor:
        """float32 chip threshold of `name` for a factor exp(log_k) on its NIR v_threshold,
        rounded as the exported node (float32) and the compiler (x scale in float64, then
        float32; the float32 below it for inclusive conventions); gradients pass the casts."""
        vth, nscale = self._th_terms[name]
        node_v = (vth * torch.exp(log_k)).float()
        th = (node_v.double() * nscale).float()
        if self.cfg.convention in INCLUSIVE:
            th = th + (torch.nextafter(th, torch.tensor(-math.inf)) - th).detach()
        return th

    def threshold(self, name: str) -> Tensor:
        """The population's chip threshold as the module runs it (learnt or compiled)."""
        if self.log_k is None or name not in self.th_pops:
            return self.params[name].threshold
        return self._chip_threshold(name, self.log_k[self.th_pops.index(name)])

    def clamp_thresholds(self) -> None:
        """Keep every learnt factor within THRESHOLD_RANGE (and so a finite float32)."""
        if self.log_k is not None:
            with torch.no_grad():
                lim = math.log(THRESHOLD_RANGE)
                self.log_k.clamp_(-lim, lim)

    def threshold_factors(self, graph: Graph | None = None) -> dict[str, float]:
        """Per population: the factor on the NIR v_threshold in `graph` (default: the
        module's current one) against the graph the module was built from."""
        if graph is None:
            return {n: float(torch.exp(k)) for n, k in zip(self.th_pops, self.log_k.detach(),
                                                           strict=True)}
        return {n: float(np.mean(np.asarray(graph.nodes[n].v_threshold, dtype=np.float64)
                                 / np.asarray(self.graph.nodes[n].v_threshold,
                                              dtype=np.float64))) for n in self.th_pops}

    # ------------------------------------------------------------------- one neuron step
    def _fire(self, v: Tensor, p: ChipParams, spiking: bool, name: str
              ) -> tuple[Tensor, Tensor]:
        """The chip's fire and reset (`spinnq.s2.step`) with a surrogate gradient: spikes are
        the Heaviside of (v - th) / |th|, positive exactly where `step.fire` (v > th) fires
        for finite float32 (a difference of two float32 is zero only where they are equal;
        the division keeps its sign), with the fast-sigmoid surrogate backward; the reset
        sees them detached."""
        if not spiking:
            return torch.zeros_like(v), v
        th = self.threshold(name)
        s = spike((v - th) / th.abs().clamp(min=1e-12), self.slope)
        return s, STEP.reset(v, s.detach().bool(), th, p.v_reset, p.subtract)

    def _step(self, name: str, I: list[Tensor], state: list[Tensor]
              ) -> tuple[Tensor, list[Tensor]]:
        """One chip step of population `name`: `spinnq.s2.step`'s currents (lif_curr_exp)
        and membrane, then `_fire`."""
        p, pop = self.params[name], self.program.populations[name]
        spiking = not pop.record_only
        if pop.model in chip.CUBA_MODELS:
            v, ie, ii = state
            cur, new_e, new_i = STEP.currents(ie, ii, I[0], I[1], p.syn_alpha, p.bias_exc,
                                              p.bias_inh, p.current_first)
            s, v = self._fire(membrane(v, cur, p), p, spiking, name)
            return s, [v, new_e, new_i]
        s, v = self._fire(membrane(state[0], I[0], p), p, spiking, name)
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
            for i, n in enumerate(self.th_pops):
                node = copy.copy(g.nodes[n])
                k = float(torch.exp(self.log_k[i]))
                vth = np.asarray(self.graph.nodes[n].v_threshold, dtype=np.float64) * k
                node.v_threshold = vth.astype(np.float32)
                if not np.all(np.isfinite(node.v_threshold)):
                    raise GraphError("a learnt threshold is not a finite float32", node=n)
                g.nodes[n] = node
        return g


@dataclass
class FinetuneResult:
    graph: Graph  # the best graph (PTQ start unless training beat it), stamped
    score_start: float  # PTQ's validation score on the chip
    score: float  # the returned graph's validation score on the chip
    history: list[dict] = field(default_factory=list)  # per epoch: loss (train), score (val)
    improved: bool = False  # fine-tuning kept (it beat PTQ on the validation data)
    seconds: float = 0.0
    best_epoch: int = 0  # the epoch whose graph is returned (0: PTQ's)
    stopped_early: bool = False  # `patience` epochs without a better validation score
    metric: str = "accuracy"  # accuracy on labels | agreement with the teacher's classes
    val_source: str = ""  # where the validation samples came from
    val_samples: int = 0
    thresholds: dict[str, float] = field(default_factory=dict)  # learnt factor per population
    options: dict = field(default_factory=dict)  # epochs, lr, batch, patience, seed, ...

    def to_dict(self) -> dict:
        return {"score_start": self.score_start, "score": self.score,
                "improved": self.improved, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "metric": self.metric,
                "validation": {"source": self.val_source, "samples": self.val_samples,
                               "kind": "emulated"},
                "history": self.history, "thresholds": self.thresholds,
                "options": self.options, "seconds": self.seconds}


Split = tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None, str]


def _split(g: Graph, train_data: Data, val: Data | None, labelled: bool, val_fraction: float,
           seed: int) -> Split:
    """(x, y, val x, val y, where the validation came from): `val` as given, else a seeded
    `val_fraction` of the training data held out of training."""
    x, y = load_data(train_data, g, labels=labelled)
    if val is not None:
        vx, vy = load_data(val, g, labels=labelled)
        return x, y, vx, vy, "validation data"
    perm = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(val_fraction * len(x))) if len(x) >= 8 else 0
    if n_val == 0:
        return x, y, x, y, "the training data (too few samples to hold any out)"
    vi, ti = perm[:n_val], perm[n_val:]
    return (x[ti], None if y is None else y[ti], x[vi], None if y is None else y[vi],
            f"a held-out {val_fraction:.0%} of the training data")


def _epoch(net: ChipNet, opt: torch.optim.Optimizer, xt: Tensor, yt: Tensor | None,
           target: Tensor | None, batch: int, gen: torch.Generator, readout: str,
           gap_weight: float) -> float:
    """One pass over the training data in shuffled minibatches; the mean loss."""
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
        net.clamp_thresholds()
        losses.append(loss.item())
    return float(np.mean(losses))


def _epochs(net: ChipNet, one_epoch: Callable[[], float], score: Callable[[Graph], float],
            start: Graph, first: float, epochs: int, patience: int | None, quiet: bool
            ) -> tuple[Graph, float, int, list[dict], bool]:
    """Train epoch by epoch, scoring each exported graph; (best graph, its score, its epoch,
    the per-epoch curve, whether `patience` stopped it early)."""
    best_g, best, best_ep, since = start, first, 0, 0
    hist: list[dict] = []
    with progress(disable=quiet) as bar:
        task = bar.add_task("finetune on the chip's arithmetic", total=epochs, info="")
        for ep in range(1, epochs + 1):
            loss = one_epoch()
            cand = net.export()
            s = score(cand)
            hist.append({"epoch": ep, "loss": loss, "score": s})
            if s > best:
                best, best_g, best_ep, since = s, cand, ep, 0
            else:
                since += 1
            bar.update(task, advance=1, info=f"val {s:.4f} (best {best:.4f})")
            if patience and since >= patience and ep < epochs:
                return best_g, best, best_ep, hist, True
    return best_g, best, best_ep, hist, False


def _optimizer(net: ChipNet, lr: float, threshold_lr: float) -> torch.optim.Optimizer:
    """Adam with each projection's step in integer units (lr / its scale), and the learnt
    threshold factors' step in log units."""
    groups = [{"params": [p.weight], "lr": lr / p.scale} for p in net.projs
              if p.weight is not None]
    if net.log_k is not None:
        groups.append({"params": [net.log_k], "lr": threshold_lr})
    return torch.optim.Adam(groups)


def check_options(readout: str, epochs: int, lr: float, batch: int,
                   patience: int | None) -> None:
    if readout not in ("count", "membrane"):
        raise InputError(f"readout must be 'count' or 'membrane', got {readout!r}")
    if epochs < 0:
        raise InputError(f"epochs must be >= 0, got {epochs}")
    if not (lr > 0 and math.isfinite(lr)):
        raise InputError(f"the fine-tuning learning rate must be a positive number, got {lr}")
    if batch < 1:
        raise InputError(f"the fine-tuning batch must be >= 1 sample, got {batch}")
    if patience is not None and patience < 0:
        raise InputError(f"patience must be >= 0 epochs (0: no early stopping), got {patience}")


def finetune(graph, train_data: Data, *, val: Data | None = None,
             val_data: Data | None = None, epochs: int = 5, lr: float = 0.05,
             batch: int = 32, patience: int | None = None, readout: str = "count",
             teacher: Graph | None = None, cfg: S2Config | None = None,
             sim: SimConfig | None = None, seed: int = 0, slope: float = 5.0,
             val_fraction: float = 0.25, gap_weight: float = 0.0, min_gain: float = 0.005,
             learn_thresholds: bool = False, threshold_lr: float = 0.01,
             quiet: bool = True, settings: RunSettings | dict | None = None,
             **flags) -> FinetuneResult:
    """Fine-tune `graph` (usually `calibrate(...).graph`) on the chip's arithmetic; see the
    module docstring. `lr` is in integer steps (Adam's step / the population's scale).
    Without labels in `train_data`, the loss is MSE to `teacher`'s (default: `graph`'s)
    float read-out, plus `gap_weight` x MSE of the read-outs' differences from their mean over
    classes (the gaps that decide the argmax, e.g. a Q-network's greedy action).

    After every epoch the exported graph is scored on the emulated chip on `val` (data the
    network is not trained on; `val_data` is the older name; default: a seeded `val_fraction`
    of `train_data`, held out of training). The best epoch is returned, and it replaces the
    start (PTQ) only if it beats it there by at least `min_gain` (a one-sample gain on a few
    hundred samples is noise, not a better network). Training stops after `patience` epochs
    without a better validation score (None or 0: never; `quantize`, the command's function,
    defaults to 10 epochs and patience 3). With `learn_thresholds`, every
    spiking population's threshold is scaled by a factor learnt with the weights (paper B's
    adaptive threshold scaling; Adam step `threshold_lr` in log units), kept within
    `THRESHOLD_RANGE` of the start and a finite float32 on the chip. Run settings
    (convention=, reset=, dt=, ... or `settings=`): as `calibrate`'s."""
    t0 = time.perf_counter()
    check_options(readout, epochs, lr, batch, patience)
    g = as_graph(graph)
    # given both configs, the graph's metadata is not read: they win (`resolve`)
    rs = resolve(g if cfg is None or sim is None else None, settings, **flags)
    cfg, sim = cfg or rs.s2(), sim or rs.sim()
    cfg = cfg.with_(graph_scales=has_scales(g))
    labelled = has_labels(train_data)
    x, y, vx, vy, source = _split(g, train_data, val if val is not None else val_data,
                                  labelled, val_fraction, seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = ChipNet(g, cfg, slope, learn_thresholds=learn_thresholds)
    if teacher is not None:
        net.start_from(teacher)
    net.dither(gen)  # weights the teacher did not place: off their integer centres
    ref = teacher if teacher is not None else g
    target = None
    if y is None:
        target = torch.from_numpy(float_eval(ref, x, None, sim, readout).scores).float()
        vy = float_eval(ref, vx, None, sim, readout).predictions
    opt = _optimizer(net, lr, threshold_lr)
    qcfg = cfg.with_(graph_scales=True)

    def score(graph_: Graph) -> float:
        return chip_accuracy(compile(graph_, qcfg), vx, vy, readout)

    start = net.export()
    first = score(start)
    xt = torch.from_numpy(np.ascontiguousarray(x)).float()
    yt = torch.from_numpy(y) if y is not None else None

    def one_epoch() -> float:
        return _epoch(net, opt, xt, yt, target, batch, gen, readout, gap_weight)

    best_g, best, best_ep, hist, stopped = _epochs(net, one_epoch, score, start, first,
                                                   epochs, patience, quiet)
    kept = best_ep > 0 and best >= first + min_gain
    if not kept:
        best_g, best, best_ep = start, first, 0
    stamp = meta.read_settings(g.metadata)
    best_g.metadata = meta.stamp(g.metadata, reset=cfg.reset, dt=cfg.dt,
                                 bits=stamp.get("bits", bits_value(cfg.bits,
                                                                   cfg.bits_by_population)),
                                 convention=sim.convention, integrator=cfg.integrator,
                                 delayed_reset=cfg.delayed_reset)
    opts = {"epochs": epochs, "lr": lr, "batch": batch, "patience": patience, "seed": seed,
            "min_gain": min_gain, "learn_thresholds": learn_thresholds, "readout": readout}
    return FinetuneResult(best_g, first, best, hist, kept, time.perf_counter() - t0, best_ep,
                          stopped, "accuracy" if labelled else "agreement", source, len(vx),
                          net.threshold_factors(best_g) if learn_thresholds else {}, opts)
