"""One trial of a sweep: quantize -> compile -> place -> emulate -> energy, for one settings
dict, on one worker. Everything that depends on *what* is swept (a graph with labelled data,
or a control task) sits behind a `Problem`; the quantize/compile/emulate/energy path is here,
in one place.

    problem = GraphProblem.from_files("net.nir", "digits.npz")
    record = run_trial(problem, settings({"bits": 4, "operating_point": "0.5V"}), seed=0)

A trial is deterministic in its settings and the seed (seeded before it runs, one torch and
numba thread unless told otherwise), so re-running it gives the same numbers bit for bit.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from spinnq.errors import InputError, SpinnqError
from spinnq.graph.model import Graph, read_graph
from spinnq.helpers import seed_everything, set_threads
from spinnq.resolver import RunSettings, resolve
from spinnq.s2.compile import S2Config, compile
from spinnq.s2.emulate import emulate
from spinnq.s2.energy import energy
from spinnq.s2.place import place
from spinnq.s2.program import Program, Run
from spinnq.sweep.space import CALIBRATE, GRAPH_SCALES, SHORTEST, settings

COST_COLUMNS = ("energy_j", "dynamic_j", "base_j", "latency_s", "tick_s", "realtime", "pes",
                "chips", "energy_low_j", "energy_high_j", "weights_bytes")


class Problem(Protocol):
    """What a sweep evaluates: a graph per settings, and a score of a compiled program."""

    name: str
    metric: str  # "accuracy" (higher is better, 0..1) | "return"

    def default(self) -> dict: ...  # spinnq's default configuration (settings)

    def seed_config(self) -> dict: ...  # the seed paper's configuration (settings)

    def graph(self, s: dict) -> Graph: ...

    def run_settings(self, s: dict) -> RunSettings: ...  # through `spinnq.resolver`

    def s2_config(self, s: dict) -> S2Config: ...  # run_settings(s).s2()

    def score(self, program: Program, s: dict) -> tuple[float, Run]: ...

    def energy_input(self, program: Program, s: dict) -> np.ndarray: ...  # what `score` costed

    def labels(self, s: dict) -> np.ndarray | None: ...  # of `energy_input`, if it has them


def tick_seconds(s: dict) -> float | None:
    """The trial's tick: None for the shortest every PE meets."""
    return None if s["tick_ms"] == SHORTEST else float(s["tick_ms"]) * 1e-3


def trial_flags(s: dict) -> dict:
    """The run settings a trial's settings set, as `spinnq.resolver` flags (the rest comes
    from the problem: its graph's metadata, convention, reset, dt)."""
    tick = tick_seconds(s)
    return {"bits": s["bits"], "operating_point": s["operating_point"],
            "tick_s": SHORTEST if tick is None else tick,
            "neurons_per_pe": int(s["neurons_per_pe"])}


def needs_quant_stage(s: dict) -> str | None:
    """The `spinnq.quant` function a setting needs (calibrate, finetune), if any."""
    if s["weight_scale"] == CALIBRATE:
        return "calibrate"
    if s["finetune"]:
        return "finetune"
    return None


def quant_stages(space: dict) -> dict[str, str]:
    """{stage: "key=value"} for each `spinnq.quant` stage some value of the space needs."""
    out: dict[str, str] = {}
    for k, vals in space.items():
        for v in vals:
            stage = needs_quant_stage(settings({k: v}))
            if stage:
                out.setdefault(stage, f"{k}={v}")
    return out


def quant_function(name: str):
    """`spinnq.quant.<name>` (the quant stage of issue 10), or a one-line error."""
    import spinnq.quant as quant

    fn = getattr(quant, name, None)
    if fn is None:
        what = "weight_scale=calibrate" if name == "calibrate" else "finetune"
        raise InputError(f"--space {what} needs spinnq.quant.{name}, which this build does "
                         "not have")
    return fn


def accuracy(out: torch.Tensor, y: np.ndarray, membrane: bool = False) -> float:
    """Share of samples whose output (spike count over time, or the last step's membrane for
    a read-out that never fires) is largest at the label."""
    a = out.flatten(2)
    score = a[:, -1] if membrane else a.sum(1)
    return float((score.argmax(-1).numpy() == np.asarray(y)).mean())


def run_trial(problem: Problem, s: dict, seed: int, threads: int = 1) -> dict:
    """The trial's record: its settings, metric and modelled cost, or the error that stopped
    it (a failed trial is a row of the results, never the end of the sweep)."""
    s = settings(s)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"settings": s, "seed": int(seed), "error": ""}
    try:
        set_threads(max(1, int(threads)))
        seed_everything(seed)
        g = problem.graph(s)
        rs = problem.run_settings(s)
        rec["run_settings"] = rs.to_dict()
        cfg = rs.s2()
        program = compile(g, cfg)
        placement = place(program, cfg)
        value, run = problem.score(program, s)
        cost = energy(placement, run, program, op=rs.operating_point, tick_s=rs.tick_s)
        rec[problem.metric] = float(value)
        rec.update({k: (bool(v) if k == "realtime" else int(v) if k in ("pes", "chips",
                                                                        "weights_bytes")
                        else float(v)) for k, v in
                    ((k, getattr(cost, k)) for k in COST_COLUMNS)})
    except SpinnqError as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001  a bug in one trial is reported, not fatal
        tb = traceback.extract_tb(e.__traceback__)[-1]
        rec["error"] = f"{type(e).__name__}: {e} ({Path(tb.filename).name}:{tb.lineno})"
    rec["wall_s"] = time.perf_counter() - t0
    return rec


# ------------------------------------------------------------------------- graph + labels
@dataclass
class GraphProblem:
    """A NIR graph and labelled spike data (`x` (N, T, *input_shape) 0/1, `y` (N,) labels):
    accuracy on the emulated chip. `timesteps` keeps the first T steps of every sample.
    `convention`, `reset`, `dt` (None: not given) are resolved once with the graph's metadata
    (`spinnq.resolver`), and every trial runs with them."""

    graph_: Graph
    x: np.ndarray
    y: np.ndarray
    name: str = "graph"
    dt: float | None = None
    reset: str | None = None
    convention: str | None = None
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    metric: str = "accuracy"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        base = resolve(self.graph_, convention=self.convention, reset=self.reset, dt=self.dt)
        self.convention, self.reset, self.dt = base.convention, base.reset, base.dt

    @classmethod
    def from_files(cls, graph: str | Path, data: str | Path, *, convention: str | None = None,
                   reset: str | None = None, dt: float | None = None) -> GraphProblem:
        """Read the graph and `D.npz` (`x`, `y`; optional `x_train`, `y_train`). Run settings:
        flags > the graph's metadata > the convention's defaults > spinnq's
        (`spinnq.resolver`)."""
        g = read_graph(graph)
        x, y, xt, yt = load_labelled(data, g)
        return cls(g, x, y, name=Path(graph).name, dt=dt, reset=reset, convention=convention,
                   x_train=xt, y_train=yt)

    def run_settings(self, s: dict) -> RunSettings:
        """The trial's settings through the one resolver: the problem's convention, reset and
        dt, the trial's bits, weight scale, tick, operating point and neurons per PE; a
        calibrated or fine-tuned trial runs with the scales its graph carries."""
        scaled = needs_quant_stage(s) is not None or s["weight_scale"] == GRAPH_SCALES
        return resolve(self.graph_, convention=self.convention, reset=self.reset, dt=self.dt,
                       weight_scale=None if scaled else s["weight_scale"],
                       graph_scales=True if scaled else None, **trial_flags(s))

    def default(self) -> dict:
        """How the graph runs with no flag: its bits, and its own scales where it has them
        (a QAT or `spinnq quantize` graph), as `spinnq evaluate` runs it."""
        base = resolve(self.graph_, convention=self.convention, reset=self.reset, dt=self.dt)
        return settings({"bits": base.bits_spec,
                         "weight_scale": GRAPH_SCALES if base.graph_scales else "max"})

    def seed_config(self) -> dict:
        # the seed papers deployed at 8 bits, 0.8 V and a 1 ms tick: spinnq's defaults
        return settings()

    def steps(self, s: dict) -> int:
        T = int(self.x.shape[1])
        t = int(s["timesteps"]) or T
        if t > T:
            raise InputError(f"timesteps {t} > the {T} steps of the data")
        return t

    def graph(self, s: dict) -> Graph:
        """The graph as given, or with the scales `calibrate` chose on the training data
        and/or fine-tuned for `finetune` epochs (issue 10's `spinnq.quant`)."""
        stage = needs_quant_stage(s)
        if stage is None:
            return self.graph_
        if self.x_train is None:
            raise InputError(f"--space {stage} needs training data: x_train/y_train in the "
                             "data file")
        train = (self.x_train[:, :self.steps(s)], self.y_train)
        ws = s["weight_scale"]
        rs = self.run_settings(s).with_(graph_scales=False, weight_scale="max" if ws in (
            CALIBRATE, GRAPH_SCALES) else ws)
        cfg, sim = rs.s2(), rs.sim()
        if ws == CALIBRATE:
            g = quant_function("calibrate")(self.graph_, train, bits=s["bits"], cfg=cfg,
                                            sim=sim).graph
        elif ws == GRAPH_SCALES:  # fine-tune the scales the graph carries
            g = self.graph_
        else:  # the chosen scale recorded on the graph, as calibrate records its choice
            from spinnq.quant.calibration import population_scales, with_scales

            prog = compile(self.graph_, cfg)  # its scales, and its folds for with_scales
            scales = population_scales(self.graph_, cfg, prog)
            g = with_scales(self.graph_, {k: v["w_scale"] for k, v in scales.items()},
                            {k: v["bits"] for k, v in scales.items()}, cfg, program=prog)
        if s["finetune"]:
            g = quant_function("finetune")(g, train, epochs=int(s["finetune"]),
                                           cfg=cfg.with_(graph_scales=True), sim=sim).graph
        return g

    def s2_config(self, s: dict) -> S2Config:
        return self.run_settings(s).s2()

    def energy_input(self, program: Program, s: dict) -> np.ndarray:
        return self.x[:, :self.steps(s)]

    def labels(self, s: dict) -> np.ndarray | None:
        return self.y

    @property
    def notes(self) -> list[str]:
        return [f"{self.name}: timesteps = the first T of the data's {self.x.shape[1]} steps "
                f"(0: all); accuracy on {len(self.y)} labelled samples; run as reset "
                f"{self.reset}, dt {self.dt:g} s, convention {self.convention}."]

    def score(self, program: Program, s: dict) -> tuple[float, Run]:
        out = program.outputs[0]
        run = emulate(program, self.energy_input(program, s), record=[out])
        membrane = program.populations[out].record_only
        return accuracy(run.v[out] if membrane else run.spikes[out], self.y, membrane), run


def load_labelled(path: str | Path, graph: Graph | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """`x`, `y` of a D.npz (the quant stage's data contract, `spinnq.quant.load_data`) and,
    when the file has them, `x_train`, `y_train` for calibrate/finetune trials (same checks;
    errors name the file and the key)."""
    from spinnq.quant import load_data
    from spinnq.quant.data import read_npz

    x, y = load_data(path, graph)
    train = read_npz(path, ("x_train", "y_train"))  # headers checked: no object arrays
    if not train:
        return x, y, None, None
    if len(train) == 1:
        missing = ({"x_train", "y_train"} - set(train)).pop()
        raise InputError(f"key '{missing}' is missing (x_train and y_train come together)",
                         file=str(path))
    try:
        xt, yt = load_data({"x": train["x_train"], "y": train["y_train"]}, graph)
    except InputError as e:
        raise InputError(f"x_train/y_train: {e}", file=str(path)) from None
    return x, y, xt, yt
