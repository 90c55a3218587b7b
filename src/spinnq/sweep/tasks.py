"""Sweep targets that bring their own network and data: the control tasks (closed-loop return
on the emulated chip) and DVS gesture (test accuracy on the emulated chip).

`timesteps` changes the network: a control task is trained at that T (steps per decision); a
gesture network at a frame bin of `window / T` ms over the same 600 ms window (the fast preset:
30 bins of 20 ms). One float network is trained per T value, once, in
`OUT/tasks/<task>-T<T>/` (checkpoints reused: a resumed or repeated sweep trains nothing twice);
every trial then quantizes that float graph at compile time (bits, weight scale) and runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spinnq.errors import InputError
from spinnq.graph.model import Graph, from_nir, read_graph, write_graph
from spinnq.resolver import RunSettings, resolve
from spinnq.s2.compile import S2Config
from spinnq.s2.emulate import emulate
from spinnq.s2.program import Program, Run
from spinnq.sweep.space import settings
from spinnq.sweep.trial import quant_stages, trial_flags
from spinnq.tasks.common import RunDir, load_checkpoint, load_state_dict, save_checkpoint

CONTROL = ("cartpole", "acrobot")
GESTURE_WINDOW_MS = 600.0  # the fast preset: 30 frames of 20 ms
SEED_T = {"cartpole": 20, "acrobot": 20}  # paper A: "10 or 20 timesteps per inference"
EPISODES = 20  # closed-loop episodes per control trial (--episodes)


def _timesteps(space: dict, default: int, seed: int) -> list[int]:
    return list(dict.fromkeys([default, seed, *(int(t) for t in space.get("timesteps", ())
                                                if t)]))


def _no_quant_stage(space: dict) -> None:
    for stage, where in quant_stages(space).items():
        raise InputError(f"--space {where}: {stage} is for graph targets; the tasks quantize "
                         "their float network at compile time")


# ------------------------------------------------------------------------------ control
@dataclass
class TrainedPerTimesteps:
    """One trained float graph per T; every trial quantizes it at compile time (PTQ with the
    trial's bits and weight scale; reset by subtraction, as the tasks train)."""

    graphs: dict[int, Graph]  # T -> trained float graph
    dt: float
    default_t: int
    seed_t: int

    def default(self) -> dict:
        return settings({"timesteps": self.default_t})

    def seed_config(self) -> dict:
        return settings({"timesteps": self.seed_t})

    def _t(self, s: dict) -> int:
        t = int(s["timesteps"]) or self.default_t
        if t not in self.graphs:
            raise InputError(f"no network trained for timesteps {t} (have {sorted(self.graphs)})")
        return t

    def graph(self, s: dict) -> Graph:
        return self.graphs[self._t(s)]

    def labels(self, s: dict) -> np.ndarray | None:
        return None

    def run_settings(self, s: dict) -> RunSettings:
        """The trial's settings through the one resolver (`spinnq.resolver`): the task's dt and
        reset by subtraction (as it trains), the trial's chip settings."""
        return resolve(self.graph(s), reset="subtract", dt=self.dt,
                       weight_scale=s["weight_scale"], **trial_flags(s))

    def s2_config(self, s: dict) -> S2Config:
        return self.run_settings(s).s2()


@dataclass
class ControlProblem(TrainedPerTimesteps):
    """Mean closed-loop return of `episodes` seeded episodes, the chip choosing every action."""

    env: str = "cartpole"
    encoders: dict[int, object] = field(default_factory=dict)  # T -> Encoder
    episodes: int = EPISODES
    eval_seed: int = 1_000_000
    name: str = ""
    metric: str = "return"

    @property
    def notes(self) -> list[str]:
        return [f"{self.env}: timesteps = input steps per decision (a float Q-network trained "
                f"per T); return = mean over {self.episodes} seeded closed-loop episodes, the "
                "emulated chip choosing every action; energy from 128 decisions spread over "
                "them. Default configuration: spinnq's T; seed: paper A's T = 20."]

    def _closed_loop(self, program: Program, s: dict) -> tuple[float, torch.Tensor]:
        from spinnq.tasks.control.env import resolve
        from spinnq.tasks.control.evaluate import chip_q, evaluate

        kept: list = []
        r = evaluate("chip", chip_q(program, self.encoders[self._t(s)], kept),
                     resolve(self.env), self.episodes, self.eval_seed)
        return float(r.returns.mean()), torch.cat(kept)[:128]

    def score(self, program: Program, s: dict) -> tuple[float, Run]:
        ret, sample = self._closed_loop(program, s)
        return ret, emulate(program, sample)  # counters of decisions spread over the episodes

    def energy_input(self, program: Program, s: dict) -> np.ndarray:
        return self._closed_loop(program, s)[1].numpy()


def control_problem(env: str, out: Path, *, quick: bool, episodes: int | None, seed: int,
                    space: dict, quiet: bool) -> ControlProblem:
    """Train (or reuse) one float Q-network per T of the space, the default and the seed's."""
    from spinnq.tasks.control import model as q_network
    from spinnq.tasks.control.dqn import train
    from spinnq.tasks.control.run import build_agent, default_config

    base = default_config(env, seed=seed, quick=quick)
    default_t = base.encoder.steps
    graphs, encoders = {}, {}
    for t in _timesteps(space, default_t, SEED_T[env]):
        cfg = default_config(env, seed=seed, quick=quick, steps=t)
        folder = Path(out) / "tasks" / f"{env}-T{t}"
        spec, enc, model, solved = build_agent(cfg)
        ckpt = folder / "checkpoints" / "float.pt"
        if ckpt.exists():
            load_state_dict(model, load_checkpoint(ckpt, required=("model",))["model"],
                            file=str(ckpt))
        else:
            resume = (folder / "checkpoints" / "dqn.pt").exists()
            # no DQN checkpoint yet: that training starts over (force deletes only spinnq's
            # files), so a sweep cut off early resumes instead of refusing its own folder
            run = RunDir.open(folder) if resume else RunDir.create(env, folder, force=True)
            if not resume:
                run.save_config(cfg)
            res = train(model, enc, spec, cfg.dqn, cfg.seed, run.path, solved=solved,
                        resume=resume, quiet=quiet)
            load_state_dict(model, res.best_state)
            save_checkpoint(ckpt, {"model": model.state_dict(),
                                   "train": {"best_greedy_eval": res.best_eval,
                                             "env_steps": res.env_steps}})
        g = q_network.export(model, enc.n_inputs, cfg.dt)
        write_graph(g, folder / "float.nir")
        graphs[t], encoders[t] = from_nir(g, source=str(folder / "float.nir")), enc
    return ControlProblem(graphs, base.dt, default_t, SEED_T[env], env=env, encoders=encoders,
                          episodes=episodes or EPISODES, eval_seed=base.eval_seed, name=env)


# ------------------------------------------------------------------------------ gesture
@dataclass
class GestureProblem(TrainedPerTimesteps):
    """Test accuracy on the emulated chip of the P-SNN trained at each frame bin."""

    tests: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # T -> x, y
    batch: int = 64
    window_ms: float = GESTURE_WINDOW_MS
    name: str = "gesture"
    metric: str = "accuracy"
    extra: dict = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        return [f"gesture: timesteps = frames over the same {self.window_ms:g} ms window "
                f"(bin = {self.window_ms:g} ms / T; the fast preset: {self.default_t} frames); "
                "one float P-SNN trained per T; accuracy on the test split. The seed's "
                "configuration is its chip settings (8 bits, 0.8 V, 1 ms tick) on the fast "
                "preset's frames: its own 1 ms frames need a network the preset does not train."]

    def score(self, program: Program, s: dict) -> tuple[float, Run]:
        from spinnq.quant.evaluation import chip_eval

        x, y = self.tests[self._t(s)]
        ev = chip_eval(self.graph(s), x, y, self.s2_config(s), batch=self.batch,
                       program=program)
        return ev.accuracy, ev.run

    def energy_input(self, program: Program, s: dict) -> np.ndarray:
        return self.tests[self._t(s)][0]

    def labels(self, s: dict) -> np.ndarray | None:
        return self.tests[self._t(s)][1]


def gesture_problem(out: Path, *, quick: bool, seed: int, space: dict, quiet: bool
                    ) -> GestureProblem:
    """Train (or reuse) the fast preset's float P-SNN at each frame bin of the space."""
    from spinnq.nn import to_nir
    from spinnq.tasks.gesture import config as gconf
    from spinnq.tasks.gesture.model import build_model
    from spinnq.tasks.gesture.runner import load_data
    from spinnq.tasks.gesture.train import train

    base = gconf.GestureConfig(seed=seed, cache_dir=str(Path(out) / "cache"))  # in --out
    base = gconf.quick(base) if quick else base
    window = base.frames.steps * base.frames.bin_ms
    default_t = base.frames.steps
    # The seed deployed 1 ms frames (600 steps): a network of its own that the fast preset
    # does not train. Its configuration here is the seed's chip settings (8 bits, 0.8 V, 1 ms
    # tick) on the fast preset's frames, which are also spinnq's defaults.
    seed_t = default_t
    ts = _timesteps(space, default_t, seed_t)
    graphs, tests = {}, {}
    for t in ts:
        cfg = dataclasses.replace(base, frames=dataclasses.replace(
            base.frames, steps=t, bin_ms=window / t))
        folder = Path(out) / "tasks" / f"gesture-T{t}"
        nir_path = folder / "psnn_float.nir"
        data = load_data(cfg, quiet)
        if not nir_path.exists():
            resume = (folder / "config.json").exists()
            run = RunDir.open(folder) if resume else RunDir.create("gesture", folder)
            if not resume:
                run.save_config(cfg)
            torch.manual_seed(cfg.seed)
            model = build_model(cfg.model, "float")
            train(model, data, cfg.train, run, "float", resume, quiet)
            write_graph(to_nir(model, (2, cfg.frames.size, cfg.frames.size), cfg.dt), nir_path)
        graphs[t] = read_graph(nir_path)
        tests[t] = (data["test"].x, data["test"].y)
    return GestureProblem(graphs, base.dt, default_t, seed_t, tests=tests, batch=base.chip_batch,
                          window_ms=window)


def task_problem(task: str, out: str | Path, *, quick: bool = False,
                 episodes: int | None = None, seed: int = 0, space: dict | None = None,
                 quiet: bool = False):
    """The problem of `spinnq sweep TASK`, its networks trained (or reused) first."""
    space = space or {}
    _no_quant_stage(space)
    if task in CONTROL:
        return control_problem(task, Path(out), quick=quick, episodes=episodes, seed=seed,
                               space=space, quiet=quiet)
    if task == "gesture":
        if episodes is not None:
            raise InputError("--episodes is for control tasks; gesture evaluates its test split")
        return gesture_problem(Path(out), quick=quick, seed=seed, space=space, quiet=quiet)
    raise InputError(f"unknown task {task!r}; tasks: {', '.join((*CONTROL, 'gesture'))}")
