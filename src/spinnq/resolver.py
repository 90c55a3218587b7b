"""How a graph is run, answered once: every command, sweep trial, task and API call resolves its
settings here, so the same graph and flags give the same chip and the same numbers everywhere.

    rs = resolve(graph, convention="spikingjelly", bits=4)    # flags as keywords, or
    rs = resolve(graph, settings=rs0, tick_s="shortest")       # one settings object (+ flags)
    cfg, sim = rs.s2(), rs.sim()                               # the stage configs
    print(rs.line()); json.dump(rs.to_dict(), f)               # what ran, printed and recorded

Ranking, per setting: a flag given (not None) > the graph's metadata (`spinnq.graph.meta`:
`spinnq.convention/reset/dt/integrator/delayed_reset/bits`, and the `w_scale`/`bits` of its
weight nodes) > the
convention's defaults (`meta.CONVENTION_DEFAULTS`) > spinnq's defaults (`RunSettings`). Rules:

* a graph whose weight nodes carry `w_scale` (QAT, `spinnq quantize`, `calibrate`, `finetune`)
  runs with those scales (`graph_scales`) unless a weight scale is given, and at the bits the
  graph records (`spinnq.bits`, else its weight nodes' `bits`, per population where they
  differ); one written by `spinnq export` (weight nodes with `s2_w_scale`: integers already)
  with weight scale none;
* bits are per population (`bits` for all, `bits_by_population` for the named ones): `bits=`
  takes 8, '4', 'l1=4,l2=8', '4,out=8' or {name: width} (`spinnq.settings.parse_bits`); a bare
  width replaces the graph's widths, names alone override theirs; names are the graph's
  neuron nodes (`populations`), checked here when there is a graph;
* one default tick everywhere: 1 ms (`DEFAULT_TICK_S`), the system tick py-spinnaker2 runs and
  every published SpiNNaker2 figure used, so modelled energies compare with published ones
  (a run pays for the whole tick: the PEs sleep out the rest of it). `tick_s="shortest"`
  (`--tick-ms shortest`) prices at the shortest tick every PE meets instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from spinnq.config import DEFAULT_DT, DEFAULT_OP, REALTIME_TICK_S, SHORTEST_TICK
from spinnq.errors import InputError
from spinnq.graph import meta, nodes
from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig
from spinnq.s2.compile import EXPORTED_KEY, W_SCALE_KEY, S2Config, check_bits_names
from spinnq.s2.energy import OP_CHOICES
from spinnq.settings import bits_value, merge_bits, parse_bits, parse_tick_text

DEFAULT_TICK_S = REALTIME_TICK_S  # the one default tick (see the module docstring)
SHORTEST = SHORTEST_TICK  # tick_s / --tick-ms: the shortest tick every PE meets


def parse_neurons_per_pe(values: Any) -> tuple[int, dict[str, int]]:
    """(default, {population: n}) from an int, a mapping, or CLI text: 'N' sets the default
    for every population, 'NAME=N' one population."""
    if values is None:
        return 0, {}
    if isinstance(values, int) and not isinstance(values, bool):
        return _npe_int(values, str(values), allow_zero=True), {}
    if isinstance(values, Mapping):
        return 0, {str(k): _npe_int(v, f"{k}={v}") for k, v in values.items()}
    default, per = 0, {}
    for v in values:
        name, sep, num = str(v).rpartition("=")
        try:
            n = int(num)
        except ValueError:
            raise InputError(f"--neurons-per-pe takes N or NAME=N, got {v!r}") from None
        if sep:
            per[name] = _npe_int(n, str(v))
        else:
            default = _npe_int(n, str(v))
    return default, per


def _npe_int(n: Any, text: str, allow_zero: bool = False) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < (0 if allow_zero else 1):
        raise InputError(f"--neurons-per-pe must be >= 1, got {text!r}")
    return n


def parse_tick_ms(text: str | float | None) -> float | str | None:
    """`--tick-ms`: None (not given), 'shortest', or a positive number of ms -> seconds."""
    if text is None:
        return None
    ms = parse_tick_text(text, "--tick-ms must be")
    return SHORTEST if ms == SHORTEST else ms * 1e-3


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides how a graph runs on the chip and in the float reference, and
    how its cost is priced; the defaults are spinnq's. Build it with `resolve`."""

    convention: str = "nir"
    reset: str = "zero"
    dt: float = DEFAULT_DT
    integrator: str = "forward"
    bits: int = 8  # every population's weight width, but those named below
    bits_by_population: dict[str, int] = field(default_factory=dict)  # --bits NAME=WIDTH
    weight_scale: str = "max"  # max | pNN.N | none (ignored where graph_scales gives one)
    graph_scales: bool = False  # the weight nodes' `w_scale` metadata as population scales
    delayed_reset: bool = False  # snnTorch's one-step-late reset as a self-projection
    tick_s: float | None = DEFAULT_TICK_S  # None: the shortest tick every PE meets
    operating_point: str = DEFAULT_OP
    neurons_per_pe: int = 0  # every population; 0: the chip model's default
    neurons_per_pe_by_population: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.operating_point not in OP_CHOICES:
            raise InputError(f"--operating-point must be one of {', '.join(OP_CHOICES)}, "
                             f"got {self.operating_point!r}")
        if self.tick_s is not None and not (isinstance(self.tick_s, int | float)
                                            and math.isfinite(self.tick_s) and self.tick_s > 0):
            raise InputError(f"tick must be a positive number of seconds, got {self.tick_s!r}")
        self.s2()  # the chip's own checks (reset, convention, bits, weight scale, ...)
        self.sim()

    def s2(self, **chip: Any) -> S2Config:
        """The compiler's, placer's and emulator's config; `chip`: its [assumed] knobs
        (fma, cuba_order, engine, ...), which are not run settings."""
        return S2Config(dt=self.dt, reset=self.reset, integrator=self.integrator,
                        weight_scale=self.weight_scale, bits=self.bits,
                        bits_by_population=dict(self.bits_by_population),
                        graph_scales=self.graph_scales, convention=self.convention,
                        delayed_reset=self.delayed_reset,
                        neurons_per_pe=dict(self.neurons_per_pe_by_population),
                        neurons_per_pe_default=self.neurons_per_pe, **chip)

    def sim(self, **kw: Any) -> SimConfig:
        """The float reference simulator's config (`kw`: record, float64, chip_timing)."""
        return SimConfig(dt=self.dt, reset=self.reset, integrator=self.integrator,
                         convention=self.convention, **kw)

    def with_(self, **kw: Any) -> RunSettings:
        return replace(self, **kw)

    def to_dict(self) -> dict:
        """JSON: every setting; `tick_s` null means the shortest tick every PE meets."""
        d = asdict(self)
        d["neurons_per_pe_by_population"] = dict(self.neurons_per_pe_by_population)
        d["bits_by_population"] = dict(self.bits_by_population)
        return d

    @property
    def bits_spec(self) -> int | str:
        """The bits as one value, `--bits` text ('4', '8,l1=4'): `parse_bits` reads it."""
        return bits_value(self.bits, self.bits_by_population)

    def line(self) -> str:
        """One line for a command's output."""
        w = "graph scales (w_scale metadata)" if self.graph_scales else self.weight_scale
        tick = SHORTEST if self.tick_s is None else f"{self.tick_s * 1e3:g} ms"
        parts = [f"convention {self.convention}", f"reset {self.reset}", f"dt {self.dt:g} s",
                 f"integrator {self.integrator}", self._bits_text(), f"weight scale {w}",
                 f"tick {tick}", f"operating point {self.operating_point}"]
        if self.delayed_reset:
            parts.append("delayed reset")
        if self.neurons_per_pe or self.neurons_per_pe_by_population:
            per = ", ".join(f"{k}={v}" for k, v in self.neurons_per_pe_by_population.items())
            parts.append(f"neurons per PE {self.neurons_per_pe or 'default'}"
                         + (f" ({per})" if per else ""))
        return "settings: " + ", ".join(parts)

    def _bits_text(self) -> str:
        per = ", ".join(f"{k}={v}" for k, v in self.bits_by_population.items())
        return f"{self.bits} bit" + (f" ({per})" if per else "")

    def flags(self, pricing: bool = False) -> list[str]:
        """The command-line flags that give these settings whatever the graph says; with
        `pricing`, the operating point and tick too (commands that price a run take them)."""
        out = ["--convention", self.convention, "--reset", self.reset, "--dt", repr(self.dt),
               "--integrator", self.integrator, "--bits", str(self.bits_spec)]
        out += (["--graph-scales"] if self.graph_scales
                else ["--weight-scale", self.weight_scale, "--no-graph-scales"])
        if self.delayed_reset:
            out.append("--delayed-reset")
        if self.neurons_per_pe:
            out += ["--neurons-per-pe", str(self.neurons_per_pe)]
        for k, v in self.neurons_per_pe_by_population.items():
            out += ["--neurons-per-pe", f"{k}={v}"]
        if pricing:
            out += ["--operating-point", self.operating_point, "--tick-ms",
                    SHORTEST if self.tick_s is None else repr(self.tick_s * 1e3)]
        return out

    @classmethod
    def from_configs(cls, cfg: S2Config, tick_s: float | None | str = DEFAULT_TICK_S,
                     operating_point: str = DEFAULT_OP) -> RunSettings:
        """The settings an already-built `S2Config` runs with (callers that pass `cfg=`)."""
        return cls(convention=cfg.convention, reset=cfg.reset, dt=float(cfg.dt),
                   integrator=cfg.integrator, bits=int(cfg.bits),
                   bits_by_population=dict(cfg.bits_by_population),
                   weight_scale=str(cfg.weight_scale), graph_scales=bool(cfg.graph_scales),
                   delayed_reset=bool(cfg.delayed_reset),
                   tick_s=None if tick_s == SHORTEST else tick_s,
                   operating_point=operating_point,
                   neurons_per_pe=int(cfg.neurons_per_pe_default),
                   neurons_per_pe_by_population=dict(cfg.neurons_per_pe))


FLAGS = tuple(f.name for f in fields(RunSettings))
# the settings a graph's metadata records beside its bits (`spinnq.graph.meta.SETTINGS`)
STORED = ("convention", "reset", "dt", "integrator", "delayed_reset")


def has_scales(graph: Graph | None, key: str = W_SCALE_KEY) -> bool:
    """Whether the graph's weight nodes carry integer scales (QAT, calibrate, finetune), or
    with `key=EXPORTED_KEY`, hold the chip's integers already (`spinnq export`)."""
    return graph is not None and any(
        key in (getattr(n, "metadata", None) or {})
        for n in graph.nodes.values() if isinstance(n, nodes.WEIGHTS))


def populations(graph: Graph) -> list[str]:
    """The populations that receive weights, in graph order: the names `--bits NAME=WIDTH`
    takes (what `spinnq deploy` lists, less the input)."""
    return [n for n in graph.order if isinstance(graph.nodes[n], nodes.NEURONS)]


def _weight_meta(graph: Graph, pop: str) -> list[dict]:
    """The metadata of the weight nodes on the paths into population `pop`."""
    out, todo, seen = [], list(graph.predecessors(pop)), set()
    while todo:
        n = todo.pop()
        if n in seen or n == graph.input or isinstance(graph.nodes[n], nodes.NEURONS):
            continue
        seen.add(n)
        if isinstance(graph.nodes[n], nodes.WEIGHTS):
            out.append(getattr(graph.nodes[n], "metadata", None) or {})
        todo += graph.predecessors(n)
    return out


def recorded_bits(graph: Graph | None) -> int | dict[str, int] | None:
    """The bits the weight nodes that carry a scale record: one width when they all agree,
    else {population: width} (a per-layer `quantize`, `finetune` or QAT export)."""
    if graph is None:
        return None
    per = {p: {int(m["bits"]) for m in _weight_meta(graph, p) if W_SCALE_KEY in m
               and "bits" in m} for p in populations(graph)}
    found = {b for v in per.values() for b in v}
    if len(found) <= 1:
        return found.pop() if found else None
    return {p: max(v) for p, v in per.items() if v}


def _given(flags: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise InputError(f"unknown run setting(s) {', '.join(unknown)}; known: "
                         + ", ".join(FLAGS))
    out = {k: v for k, v in flags.items() if v is not None}
    if "tick_s" in out:
        t = out["tick_s"]
        out["tick_s"] = None if isinstance(t, str) and t.lower() == SHORTEST else t
    if "bits" in out or "bits_by_population" in out:  # a bare width, NAME=WIDTH items
        default, per = parse_bits(out.pop("bits", None))
        _, named = parse_bits(out.pop("bits_by_population", None) or {})
        if default is not None:
            out["bits"] = default
        out["bits_by_population"] = {**named, **per}
    if "neurons_per_pe" in out:
        default, per = parse_neurons_per_pe(out["neurons_per_pe"])
        out["neurons_per_pe"] = default
        if per:
            out["neurons_per_pe_by_population"] = {
                **out.get("neurons_per_pe_by_population", {}), **per}
    return out


def resolve(graph: Graph | None = None, settings: RunSettings | Mapping | None = None,
            **flags: Any) -> RunSettings:
    """The settings `graph` runs with: `flags` (keywords named like `RunSettings`' fields;
    None: not given) > `settings` > the graph's metadata > the convention's defaults >
    spinnq's defaults. A `RunSettings` given as `settings` is already resolved: the graph's
    metadata is not read again; a mapping counts as flags."""
    if isinstance(settings, RunSettings):
        given = _given(flags)
        given |= _bits(given, settings.bits, settings.bits_by_population)
        return _check_names(graph, replace(settings, **given))
    given = _given({**(settings or {}), **{k: v for k, v in flags.items() if v is not None}})
    md = graph.metadata if graph is not None else None
    st = meta.run_settings(md, getattr(graph, "source", None),
                           **{k: given.get(k) for k in meta.SETTINGS})
    out = {k: st[k] for k in STORED} | given
    if "graph_scales" not in given:
        out["graph_scales"] = "weight_scale" not in given and has_scales(graph)
    if "weight_scale" not in given and has_scales(graph, EXPORTED_KEY):
        out["weight_scale"] = "none"  # an exported graph's weights are the chip's integers
    stored = st.get("bits")
    if stored is None and out["graph_scales"]:
        stored = recorded_bits(graph)
    default, per = parse_bits(stored, "metadata 'spinnq.bits'")
    out |= _bits(given, RunSettings.bits if default is None else default, per)
    out["dt"] = float(out["dt"])
    return _check_names(graph, RunSettings(**out))


def _bits(given: Mapping[str, Any], default: int, per: Mapping[str, int]) -> dict[str, Any]:
    """bits and bits_by_population: given (a bare width replaces the graph's widths, names
    override theirs) over the graph's or the settings' (`spinnq.settings.merge_bits`)."""
    if "bits" in given:
        return {"bits": given["bits"], "bits_by_population": given.get("bits_by_population", {})}
    bits, named = merge_bits(default, per, given.get("bits_by_population") or None)
    return {"bits": bits, "bits_by_population": named}


def _check_names(graph: Graph | None, rs: RunSettings) -> RunSettings:
    if graph is not None and rs.bits_by_population:
        check_bits_names(rs.bits_by_population, populations(graph))
    return rs


def configs(graph: Graph | None = None, settings: RunSettings | Mapping | None = None,
            **flags: Any) -> tuple[S2Config, SimConfig]:
    """(S2Config, SimConfig) of `resolve(graph, settings, **flags)`."""
    rs = resolve(graph, settings, **flags)
    return rs.s2(), rs.sim()
