"""Compile a validated NIR graph into a SpiNNaker2 program (populations + integer projections).

Follows py-spinnaker2's `s2_nir.from_nir` (docs/spinnaker2-target.md, sections 1-2):

  Input                      -> `spike_list` source population
  LIF / IF                   -> `lif_no_delay` (`lif_conv2d` when fed by a Conv2d,
                                `lif` with 4-bit weights when a `nir.Delay` feeds it)
  CubaLIF                    -> `lif_curr_exp_no_delay` (`lif_curr_exp` with delays)
  LI / CubaLI / I            -> the same models, but a read-out that never fires (threshold
                                +inf); its voltage is recorded
  Affine/Linear              -> dense projection (biases go into the target's `i_offset`)
  Conv2d                     -> conv projection (on the PE's MAC accelerator)
  SumPool2d -> Conv2d        -> the pool is fused into the conv (kernel == stride, no padding)
  SumPool2d -> Flatten -> Affine  -> the pool is folded into the dense matrix
  SumPool2d -> neurons       -> a sparse pooling projection
  AvgPool2d                  -> SumPool2d, 1/k^2 folded into the next weights or neuron gain
  Flatten                    -> nothing

Between two populations lies a *chain* of non-neuron nodes. Each chain is built by applying
one small function per node type (`CHAIN_RULES`) and becomes one projection, which records
what was folded into it (`Projection.fold`: the weight node, a pool before it, AvgPool's
1/k^2, Scale factors) so quant reads it from the program; each neuron node becomes a
population through `NEURON_RULES`. Two weight layers in a row, or a spike source
wired straight into neurons, are refused (the chip has no such projection).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import nir
import numpy as np

from spinnq.config import DEFAULT_DT
from spinnq.errors import CompileError, InputError
from spinnq.graph.conventions import REGISTRY, flat
from spinnq.graph.meta import CONVENTIONS, INTEGRATORS, RESETS
from spinnq.graph.model import Graph, conv_padding, pair
from spinnq.graph.nodes import NEURONS
from spinnq.graph.rewrite import avgpool_factors, avgpool_to_sumpool
from spinnq.s2 import chip
from spinnq.s2.formats import ScaleMode, population_scale, qmax, to_int
from spinnq.s2.program import (
    ADD_ORDERS,
    CUBA_ORDERS,
    ENGINES,
    ChipArithmetic,
    EngineConfig,
    Fold,
    PlaceConfig,
    Population,
    Program,
    Projection,
)
from spinnq.settings import merge_bits, parse_bits

CUBA_BIAS = ("current", "offset")
# conventions that fire at v >= v_threshold (read from the registry; `quant.finetuning`)
INCLUSIVE = tuple(name for name, c in REGISTRY.items() if c.inclusive)
W_SCALE_KEY = "w_scale"  # metadata on a weight node: the scale QAT trained with (a float)
EXPORTED_KEY = "s2_w_scale"  # metadata written by `export`: weights are integers already


@dataclass(frozen=True)
class S2Config:
    """How a graph is mapped onto SpiNNaker2. [assumed] points of docs/spinnaker2-target.md
    are options here, with the doc's default."""

    dt: float = DEFAULT_DT
    reset: str = "zero"  # zero | subtract
    integrator: str = "forward"  # forward (Euler) | exponential
    weight_scale: str = "max"  # ScaleMode text: max | pNN.N | none
    bits: int = 8  # weight bits of the 8-bit models (8 or 4); the `lif` model is always 4
    bits_by_population: dict[str, int] = field(default_factory=dict)  # per population override
    graph_scales: bool = False  # use `w_scale` metadata of weight nodes (QAT) when present
    neurons_per_pe: dict[str, int] = field(default_factory=dict)  # per population override
    neurons_per_pe_default: int = 0  # global override; 0: the model's default (chip.py)
    memory_per_pe: int = chip.PE_DATA_BYTES
    pes_per_chip: int = chip.USABLE_PES_PER_CHIP
    max_chips: int = chip.CHIPS_PER_BOARD * 16  # placement refuses more than this
    conn_delay: int = 0  # extra steps on every projection (py-spinnaker2 `conn_delay`)
    fma: bool = False  # [assumed] alpha*v + I as one fused multiply-add
    add_order: str = "input_first"  # [assumed] add I, then i_offset
    cuba_order: str = "current_first"  # [assumed] update the synaptic current, then v
    cuba_bias: str = "current"  # [assumed] CubaLIF bias: into the current (exact NIR) | offset
    dense_rounding: str = "nearest"  # [assumed]
    conv_rounding: str = "trunc"  # [code] astype(int8)
    chunk: int = 128  # torch engine: steps evaluated per block (memory vs speed; exact)
    engine: str = "auto"  # emulator: events (numba, spike-driven) | torch | auto (events if
    #                       numba is importable and the program has no lif_curr_exp)
    convention: str = "nir"  # how the graph's producer reads its neuron parameters: sets the
    #                          translation into chip units (see NEURON_RULES), not the chip
    delayed_reset: bool = False  # snntorch + subtract: reproduce snnTorch's one-step-late
    #                              reset with a self-projection per LIF population (costs N
    #                              synapses each; spinnq.graph.rewrite.delayed_reset_projection)

    def __post_init__(self):
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise InputError(f"dt must be a positive number of seconds, got {self.dt}")
        for name, val, allowed in (("reset", self.reset, RESETS),
                                   ("integrator", self.integrator, INTEGRATORS),
                                   ("add_order", self.add_order, ADD_ORDERS),
                                   ("cuba_order", self.cuba_order, CUBA_ORDERS),
                                   ("cuba_bias", self.cuba_bias, CUBA_BIAS),
                                   ("engine", self.engine, ENGINES),
                                   ("convention", self.convention, CONVENTIONS)):
            if val not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {val!r}")
        conv = REGISTRY[self.convention]
        if self.delayed_reset and not (conv.late_reset and self.reset == "subtract"):
            raise InputError("delayed_reset reproduces snnTorch's subtract reset: it needs "
                             f"convention snntorch and reset subtract (got {self.convention}, "
                             f"{self.reset})")
        if conv.own_steps and self.integrator != "forward":
            raise InputError(f"convention '{self.convention}' is forward Euler only; "
                             f"--integrator {self.integrator} applies to convention 'nir'")
        ScaleMode.parse(self.weight_scale)
        qmax(self.bits)
        parse_bits(dict(self.bits_by_population), "bits")  # each width one the chip stores
        for k, v in {**self.neurons_per_pe, "(default)": self.neurons_per_pe_default}.items():
            if not isinstance(v, int) or v < 0 or (v == 0 and k != "(default)"):
                raise InputError(f"neurons per PE for {k} must be a positive integer, got {v!r}")
        for name in ("memory_per_pe", "pes_per_chip", "max_chips", "chunk"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.conn_delay < 0:
            raise InputError(f"conn_delay must be >= 0, got {self.conn_delay}")

    def with_(self, **kw) -> S2Config:
        return replace(self, **kw)

    def bits_of(self, population: str) -> int:
        """The weight width asked for `population` (its model may store fewer: `compile`)."""
        return int(self.bits_by_population.get(population, self.bits))

    def with_bits(self, spec) -> S2Config:
        """This config with a bit setting over it (`spinnq.settings.merge_bits`: a bare width
        replaces every population's, NAME=WIDTH items override theirs); None: unchanged."""
        bits, per = merge_bits(self.bits, self.bits_by_population, spec)
        return replace(self, bits=bits, bits_by_population=per)

    # The later stages' own configs, from the one set of flags a user gives.
    @property
    def arithmetic(self) -> ChipArithmetic:
        """What the chip computes per step (the emulator engines and `quant.finetune`)."""
        return ChipArithmetic(self.reset, self.fma, self.add_order, self.cuba_order)

    @property
    def placement(self) -> PlaceConfig:
        """How `place` cuts the program onto PEs and chips."""
        return PlaceConfig(dict(self.neurons_per_pe), self.neurons_per_pe_default,
                           self.memory_per_pe, self.pes_per_chip, self.max_chips)

    @property
    def engine_config(self) -> EngineConfig:
        """Which emulator engine runs the program (and in blocks of how many steps)."""
        return EngineConfig(self.engine, self.chunk)


# ------------------------------------------------------------------------------- chains
@dataclass
class Chain:
    """What lies between a pre population and a neuron node, accumulated node by node."""

    pre: str
    pre_shape: tuple[int, ...]
    shape: tuple[int, ...]  # shape at the current point of the chain
    kind: str = "none"  # none | dense | conv
    weight: np.ndarray | None = None  # float: (post, pre) dense, (Co, Ci, kh, kw) conv
    bias: np.ndarray | None = None  # float, flat over the chain's output
    conv: dict = field(default_factory=dict)
    pool: int = 0  # pending SumPool kernel (== stride) before the weight layer
    delay_pre: np.ndarray | None = None  # steps, per pre neuron
    delay_post: np.ndarray | None = None  # steps, per post neuron
    weight_nodes: list[str] = field(default_factory=list)
    graph_scale: float | None = None
    path: tuple[str, ...] = ()  # the nodes between pre and the neuron node
    pooled: int = 0  # the SumPool kernel before the weight layer (kept after it is folded)
    scales: list = field(default_factory=list)  # Scale factors folded in, in order

    def fold(self, pool_factors: dict[str, float]) -> Fold:
        """What this chain folded into its projection (`Program` records it for quant)."""
        node = self.weight_nodes[-1] if self.weight_nodes else None
        return Fold(node, tuple(self.path), self.pooled,
                    pool_factors.get(node, 1.0) if node is not None else 1.0,
                    tuple(self.scales),
                    self.delay_pre is not None or self.delay_post is not None)


def _refuse(name: str, msg: str) -> CompileError:
    return CompileError(msg, node=name)


def _flatten_rule(c: Chain, name: str, node, g: Graph, cfg: S2Config) -> Chain:
    c.shape = g.shapes[name]
    return c


def _sumpool_rule(c: Chain, name: str, node, g: Graph, cfg: S2Config) -> Chain:
    k, st, pad = pair(node.kernel_size), pair(node.stride), pair(node.padding)
    if c.kind != "none":
        raise _refuse(name, f"SumPool2d after the weight layer '{c.weight_nodes[-1]}': SpiNNaker2 "
                      "has no projection for two weight layers in a row")
    if c.pool:
        raise _refuse(name, "two SumPool2d in a row cannot be fused")
    if k[0] != k[1] or st != k or pad != (0, 0):
        raise _refuse(name, f"SumPool2d is fused on SpiNNaker2 only with a square kernel equal "
                      f"to its stride and no padding (kernel {k}, stride {st}, padding {pad})")
    c.pool, c.pooled, c.shape = k[0], k[0], g.shapes[name]
    return c


def _take_scale(c: Chain, name: str, node) -> None:
    meta = getattr(node, "metadata", None) or {}
    if W_SCALE_KEY in meta:
        c.graph_scale = float(np.asarray(meta[W_SCALE_KEY]).ravel()[0])
    c.weight_nodes.append(name)


def _conv_rule(c: Chain, name: str, node, g: Graph, cfg: S2Config) -> Chain:
    if c.kind != "none":
        raise _refuse(name, f"Conv2d right after the weight layer '{c.weight_nodes[-1]}': two "
                      "weight layers in a row have no SpiNNaker2 projection")
    if c.delay_pre is not None:
        raise _refuse(name, "delays before a Conv2d are not supported on SpiNNaker2")
    in_shape = g.in_shape(name)
    c.kind, c.weight = "conv", np.asarray(node.weight, dtype=np.float64)
    c.conv = {"stride": tuple(int(x) for x in np.broadcast_to(np.asarray(node.stride), (2,))),
              "padding": conv_padding(node, in_shape[1:]),
              "dilation": tuple(int(x) for x in np.broadcast_to(np.asarray(node.dilation), (2,))),
              "groups": int(node.groups), "pool": c.pool, "in_shape": tuple(c.pre_shape),
              "out_shape": tuple(g.shapes[name])}
    out = g.shapes[name]
    if node.bias is not None and np.any(np.asarray(node.bias) != 0):
        c.bias = np.repeat(np.asarray(node.bias, dtype=np.float64), out[1] * out[2])
    c.shape = out
    _take_scale(c, name, node)
    return c


def _pool_columns(pre_shape: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each pre neuron (C,H,W flat): its index in the k-pooled map, and whether it has one."""
    C, H, W = pre_shape
    Ho, Wo = H // k, W // k
    c, h, w = np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    ok = (h // k < Ho) & (w // k < Wo)
    idx = (c * Ho * Wo + np.minimum(h // k, Ho - 1) * Wo + np.minimum(w // k, Wo - 1))
    return idx.ravel(), ok.ravel()


def _dense_rule(c: Chain, name: str, node, g: Graph, cfg: S2Config) -> Chain:
    if c.kind != "none":
        raise _refuse(name, f"{type(node).__name__} right after the weight layer "
                      f"'{c.weight_nodes[-1]}': two weight layers in a row have no SpiNNaker2 "
                      "projection")
    w = np.asarray(node.weight)  # float32 stays float32 (memory): to_int rounds in float64
    w = w if w.dtype.kind == "f" else w.astype(np.float64)
    if c.pool:  # fold SumPool (-> Flatten) into the dense matrix: columns per pre neuron
        idx, ok = _pool_columns(c.pre_shape, c.pool)
        w = w[:, idx] * ok[None, :]
        c.pool = 0
    c.kind, c.weight = "dense", w
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        c.bias = np.broadcast_to(np.asarray(bias, dtype=np.float64), (w.shape[0],)).copy()
    c.shape = g.shapes[name]
    _take_scale(c, name, node)
    return c


def _scale_rule(c: Chain, name: str, node, g: Graph, cfg: S2Config) -> Chain:
    s = np.asarray(node.scale, dtype=np.float64)
    if c.kind == "dense":
        s = np.broadcast_to(s.ravel() if s.size > 1 else s.reshape(()), (c.weight.shape[0],))
        c.weight = c.weight * s[:, None]
        c.bias = None if c.bias is None else c.bias * s
        c.scales.append(float(s[0]) if s.size and np.all(s == s[0]) else s.copy())
    elif c.kind == "conv" and s.size == 1:
        c.weight = c.weight * float(s.ravel()[0])
        c.bias = None if c.bias is None else c.bias * float(s.ravel()[0])
        c.scales.append(float(s.ravel()[0]))
    else:
        raise _refuse(name, "Scale is supported only after an Affine/Linear (or a scalar after "
                      "a Conv2d): it is folded into the weights")
    return c


def _delay_rule(c: Chain, name: str, node, g: Graph, cfg: S2Config) -> Chain:
    steps = np.rint(np.asarray(node.delay, dtype=np.float64) / cfg.dt).astype(np.int64)
    n = math.prod(g.shapes[name])
    steps = np.broadcast_to(steps.ravel() if steps.size > 1 else steps.reshape(()), (n,)).copy()
    if c.kind == "conv":
        raise _refuse(name, "delays on a conv projection are not supported on SpiNNaker2")
    if c.kind == "dense":
        c.delay_post = steps + (0 if c.delay_post is None else c.delay_post)
    else:
        if c.pool:
            raise _refuse(name, "a Delay between SumPool2d and a weight layer is not supported")
        c.delay_pre = steps + (0 if c.delay_pre is None else c.delay_pre)
    return c


CHAIN_RULES: dict[type, Callable[[Chain, str, object, Graph, S2Config], Chain]] = {
    nir.Flatten: _flatten_rule,
    nir.SumPool2d: _sumpool_rule,
    nir.Conv2d: _conv_rule,
    nir.Affine: _dense_rule,
    nir.Linear: _dense_rule,
    nir.Scale: _scale_rule,
    nir.Delay: _delay_rule,
}


def chains_into(g: Graph, target: str, cfg: S2Config) -> list[Chain]:
    """Every path from a population (Input or neuron node) to `target`, as built chains."""
    paths: list[list[str]] = []

    def back(node: str, tail: list[str], seen: frozenset) -> None:
        for p in g.predecessors(node):
            if p == g.input or isinstance(g.nodes[p], NEURONS):
                paths.append([p, *tail])
            elif p in seen:
                raise _refuse(p, "a cycle with no neuron on it")
            else:
                back(p, [p, *tail], seen | {p})

    back(target, [], frozenset())
    chains = []
    for pre, *mids in paths:
        c = Chain(pre=pre, pre_shape=g.shapes[pre], shape=g.shapes[pre], path=tuple(mids))
        for m in mids:
            node = g.nodes[m]
            rule = CHAIN_RULES.get(type(node))
            if rule is None:
                raise _refuse(m, f"{type(node).__name__} cannot be mapped onto SpiNNaker2 "
                              f"(supported between neurons: "
                              f"{', '.join(t.__name__ for t in CHAIN_RULES)})")
            c = rule(c, m, node, g, cfg)
        if c.kind == "none" and not c.pool:
            raise _refuse(target, f"'{pre}' is wired straight into neurons with no weight layer "
                          "between them; SpiNNaker2 needs a projection (add an Affine/Linear)")
        chains.append(c)
    return chains


# ------------------------------------------------------------------------------ neurons
@dataclass
class NeuronParams:
    """Chip parameters of one population (flat float64 arrays before the float32 cast)."""

    alpha: np.ndarray
    scale: np.ndarray  # chip voltage per NIR voltage
    threshold: np.ndarray
    i_offset: np.ndarray
    v_reset: np.ndarray
    syn_alpha: np.ndarray | None = None
    i_offset_syn: np.ndarray | None = None


_flat = flat  # (a, n) -> n float64 values: `graph.conventions.flat`


def _membrane(node, n: int, cfg: S2Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, input gain, leak gain) of a neuron's membrane under `cfg.convention`: the
    membrane is `v <- alpha v + gain I + leak_gain v_leak` in every convention; only how the
    NIR parameters give these numbers differs (`graph.conventions.Convention.membrane`)."""
    return REGISTRY[cfg.convention].membrane(node, n, cfg.dt, cfg.integrator)


def _lif_params(node, w_scale, bias, n, cfg) -> NeuronParams:
    alpha, gain, leak = _membrane(node, n, cfg)
    scale = w_scale / gain
    return NeuronParams(alpha, scale, _flat(getattr(node, "v_threshold", np.inf), n) * scale,
                        leak * _flat(getattr(node, "v_leak", 0.0), n) * scale + bias * w_scale,
                        _flat(getattr(node, "v_reset", None), n) * scale)


def _cuba_params(node, w_scale, bias, n, cfg) -> NeuronParams:
    """NIR (and snnTorch, SpikingJelly) read CubaLIF's input as `I += a_syn (w_in x - I)`;
    Norse's LIFCell as a current jump `I += w_in x` before the decay; Rockpool's LIFTorch
    jumps and decays, `I <- beta (I + x)`, before the membrane adds it. All are the chip's
    `lif_curr_exp` (`I_chip = syn_alpha I_chip + W x`, current first) with another input
    gain (a_syn w_in | w_in | beta) folded into the voltage scale: exact in real arithmetic."""
    alpha, gain, leak = _membrane(node, n, cfg)
    syn_alpha, syn_gain = REGISTRY[cfg.convention].synapse(node, n, cfg.dt, cfg.integrator)
    scale = w_scale / (gain * syn_gain)
    off = leak * _flat(node.v_leak, n) * scale
    bias_c = bias * w_scale
    if cfg.cuba_bias == "offset":  # py-spinnaker2 style: the bias as a constant into v
        off, bias_c = off + bias_c, np.zeros(n)
    th = _flat(getattr(node, "v_threshold", np.inf), n) * scale
    return NeuronParams(alpha, scale, th, off, _flat(getattr(node, "v_reset", None), n) * scale,
                        syn_alpha, bias_c)


def _li_params(node, w_scale, bias, n, cfg) -> NeuronParams:
    return replace(_lif_params(node, w_scale, bias, n, cfg), threshold=np.full(n, np.inf))


def _cubali_params(node, w_scale, bias, n, cfg) -> NeuronParams:
    return replace(_cuba_params(node, w_scale, bias, n, cfg), threshold=np.full(n, np.inf))


# node type -> (parameter translation, model, model with delays, read-out only).
# Conventions (S2Config.convention): each `graph.conventions.Convention` gives the membrane
# and synapse gains (`_membrane`, `_cuba_params`), whether the threshold is inclusive, and
# `chip_prepare`: the graph the chip runs and the differences it cannot remove (snnTorch's
# one-step-late subtract reset, which `S2Config(delayed_reset=True)` makes up for in dense
# LIF layers; Sinabs's multi-spike and IAF floor). Those differences become compile notes.
NEURON_RULES: dict[type, tuple[Callable, str, str, bool]] = {
    nir.LIF: (_lif_params, "lif_no_delay", "lif", False),
    nir.IF: (_lif_params, "lif_no_delay", "lif", False),  # IF/I: alpha 1, no leak
    nir.CubaLIF: (_cuba_params, "lif_curr_exp_no_delay", "lif_curr_exp", False),
    nir.LI: (_li_params, "lif_no_delay", "lif", True),
    nir.I: (_li_params, "lif_no_delay", "lif", True),
    nir.CubaLI: (_cubali_params, "lif_curr_exp_no_delay", "lif_curr_exp", True),
}


# ------------------------------------------------------------------------------ compile
def _scale_for(name: str, chains: list[Chain], mode: ScaleMode, bits: int,
               cfg: S2Config) -> float:
    graph_scales = [c.graph_scale for c in chains]
    if (cfg.graph_scales or mode.kind == "none") and any(s is not None for s in graph_scales):
        if any(s is None for s in graph_scales) or len(set(graph_scales)) > 1:
            raise _refuse(name, f"its incoming weight layers carry different '{W_SCALE_KEY}' "
                          f"metadata ({graph_scales}); a population has one weight scale on "
                          "SpiNNaker2")
        return float(graph_scales[0])
    return population_scale([c.weight for c in chains], mode, bits)


def _integer_weights(c: Chain, w_scale: float, bits: int,
                     rounding: str) -> tuple[np.ndarray, int]:
    """The chain's weights as chip integers (int8). Dense weights are stored (post, pre) in
    column-major order: each pre neuron's fan-out is contiguous, so the emulator uses them as
    its spike tables without a copy. Converted a block of rows at a time (bounded memory)."""
    if c.kind != "dense":
        return to_int(c.weight, w_scale, bits, rounding)
    w = c.weight
    out = np.empty(w.shape[::-1], np.int8).T  # (post, pre), Fortran order
    rows = max(1, (1 << 22) // max(1, w.shape[1]))
    sat = 0
    for i in range(0, w.shape[0], rows):
        out[i:i + rows], s = to_int(w[i:i + rows], w_scale, bits, rounding)
        sat += s
    return out, sat


def _projections(name: str, chains: list[Chain], w_scale: float, bits: int,
                 cfg: S2Config, pool_factors: dict[str, float]) -> list[Projection]:
    out = []
    for c in chains:
        fold = c.fold(pool_factors)
        if c.kind == "none":  # SumPool straight into neurons: a sparse projection, weight 1
            C = c.pre_shape[0]
            kern = np.zeros((C, C, c.pool, c.pool))
            kern[np.arange(C), np.arange(C)] = 1.0
            c.kind, c.weight = "pool", kern
            c.conv = {"stride": (c.pool, c.pool), "padding": (0, 0), "dilation": (1, 1),
                      "groups": 1, "pool": 0, "in_shape": tuple(c.pre_shape),
                      "out_shape": tuple(c.shape)}
        rounding = cfg.dense_rounding if c.kind == "dense" else cfg.conv_rounding
        w_int, sat = _integer_weights(c, w_scale, bits, rounding)
        base = 1 + cfg.conn_delay
        delays = None
        if c.delay_pre is not None or c.delay_post is not None:
            dpre = c.delay_pre if c.delay_pre is not None else np.zeros(w_int.shape[1], np.int64)
            dpost = (c.delay_post if c.delay_post is not None
                     else np.zeros(w_int.shape[0], np.int64))
            delays = base + dpost[:, None] + dpre[None, :]
            if delays.max() > chip.MAX_DELAY_STEPS:
                raise _refuse(name, f"a delay of {int(delays.max())} steps (incl. the one step "
                              f"every projection takes) is over the chip's limit of "
                              f"{chip.MAX_DELAY_STEPS}")
        if delays is None:
            out.append(Projection(c.pre, name, c.kind, w_int, w_scale, base, dict(c.conv),
                                  sat, bits, fold=fold))
            continue
        for d in np.unique(delays[w_int != 0]) if np.any(w_int) else [base]:
            part = np.where(delays == d, w_int, 0)
            out.append(Projection(c.pre, name, c.kind, part, w_scale, int(d), dict(c.conv),
                                  sat if d == delays.min() else 0, bits, fold=fold))
    return out


def compile(graph: Graph, cfg: S2Config = S2Config()) -> Program:  # noqa: A001
    """Map `graph` onto SpiNNaker2 populations and integer projections (AvgPool2d first
    becomes SumPool2d with 1/k^2 in the next weights: `spinnq.graph.rewrite`)."""
    conv = REGISTRY[cfg.convention]  # its rewrite and notes for what the chip cannot copy
    pool_factors = avgpool_factors(graph)  # what the rewrite folds into which node: recorded
    graph, notes = conv.chip_prepare(avgpool_to_sumpool(graph), cfg.reset, cfg.delayed_reset)
    mode = ScaleMode.parse(cfg.weight_scale)
    pops: dict[str, Population] = {
        graph.input: Population(graph.input, "spike_list", tuple(graph.input_shape))}
    projs: list[Projection] = []
    for name in graph.order:
        node = graph.nodes[name]
        if not isinstance(node, NEURONS):
            continue
        chains = chains_into(graph, name, cfg)
        translate, model, delayed_model, readout = NEURON_RULES[type(node)]
        if any(c.delay_pre is not None or c.delay_post is not None for c in chains):
            model = delayed_model
        if any(c.kind == "conv" for c in chains):
            if model != "lif_no_delay":
                raise _refuse(name, f"{type(node).__name__} fed by a Conv2d: SpiNNaker2's conv "
                              "path exists only for LIF/IF neurons (lif_conv2d)")
            model = "lif_conv2d"
        bits = min(cfg.bits_of(name), chip.WEIGHT_BITS[model])
        if name in cfg.bits_by_population and bits < cfg.bits_of(name):
            notes.append(f"{name}: {model} stores {bits}-bit weights, not the "
                         f"{cfg.bits_of(name)} bits asked for it")
        w_scale = _scale_for(name, chains, mode, bits, cfg)
        n = math.prod(graph.shapes[name])
        bias = np.zeros(n)
        for c in chains:
            if c.bias is not None:
                bias = bias + c.bias
        p = translate(node, w_scale, bias, n, cfg)
        params = {"alpha": p.alpha, "threshold": p.threshold, "i_offset": p.i_offset,
                  "v_reset": p.v_reset}
        if p.syn_alpha is not None:
            params |= {"syn_alpha": p.syn_alpha, "i_offset_syn": p.i_offset_syn}
        params = {k: v.astype(np.float32) for k, v in params.items()}
        if conv.inclusive:  # v >= th is v > (the float32 just below th)
            th = params["threshold"]
            params["threshold"] = np.where(np.isfinite(th), np.nextafter(th, np.float32(-np.inf)),
                                           th)
        if not readout and not np.all(np.isfinite(params["threshold"])):
            raise _refuse(name, "threshold is not finite after scaling (check tau, r, w_in)")
        scale = p.scale.astype(np.float32)
        pops[name] = Population(name, model, tuple(graph.shapes[name]), params,
                                float(scale[0]) if np.all(scale == scale[0]) else scale,
                                readout, cfg.neurons_per_pe.get(name, cfg.neurons_per_pe_default))
        new = _projections(name, chains, w_scale, bits, cfg, pool_factors)
        projs += new
        sat = sum(pr.saturated for pr in new)
        if sat:
            notes.append(f"{name}: {sat} weights saturated at +-{qmax(bits)} (scale "
                         f"{w_scale:.4g}); they were clipped, not wrapped")
        if readout:
            notes.append(f"{name}: {type(node).__name__} read-out -> {model} that never fires; "
                         "its voltage is recorded")
    check_bits_names(cfg.bits_by_population, [p for p in pops if p != graph.input])
    unknown = set(cfg.neurons_per_pe) - set(pops)
    if unknown:
        raise InputError(f"neurons per PE given for unknown population(s) {sorted(unknown)}; "
                         f"populations: {', '.join(pops)}")
    prog = Program(pops, projs, graph.input, _outputs(graph, pops), 0, notes,
                   cfg.arithmetic, cfg.engine_config)
    prog.depth = depth(prog)
    return prog


def check_bits_names(per: dict[str, int], populations: list[str]) -> None:
    """Per-population bits name populations that receive weights (what `spinnq deploy`
    lists); one line naming the first unknown name and the valid ones."""
    for name in per:
        if name not in populations:
            raise InputError(f"--bits {name}={per[name]}: no population {name!r} receives "
                             f"weights; populations: {', '.join(populations)}")


def _outputs(graph: Graph, pops: dict[str, Population]) -> list[str]:
    """The populations feeding the graph's Output nodes (each one a population, or refused)."""
    outputs = []
    for o in graph.outputs:
        for p in graph.predecessors(o):
            if p not in pops or p == graph.input:
                raise _refuse(o, f"the output is fed by '{p}' ({type(graph.nodes[p]).__name__}),"
                              " not by neurons: on SpiNNaker2 an output is a population "
                              "(add an LIF or an LI read-out)")
            outputs.append(p)
    return list(dict.fromkeys(outputs))


def recurrent(program: Program) -> list[Projection]:
    """Projections that go back (to the same or an earlier population in program order)."""
    pos = {n: i for i, n in enumerate(program.populations)}
    return [p for p in program.projections if pos[p.pre] >= pos[p.post]]


def depth(program: Program) -> int:
    """Steps from the input to the latest output along forward projections (longest path)."""
    back = {id(p) for p in recurrent(program)}
    dist = {program.input: 0}
    for name in program.populations:
        for p in program.projections:
            if p.post == name and id(p) not in back and p.pre in dist:
                dist[name] = max(dist.get(name, 0), dist[p.pre] + p.delay)
    return max((dist.get(o, 0) for o in program.outputs), default=0)
