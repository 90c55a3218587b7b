"""Closed-loop evaluation per stage: float (reference simulator of the exported NIR), PTQ and
QAT (reference simulator of their quantised NIR), and on the emulated SpiNNaker2 (compiled
program, bit-exact emulator).

For every environment step of `n` seeded episodes side by side (a Gymnasium vector env):
encode all observations, run the stage's network for the T steps of one decision (the chip
runs T + depth steps: one step of latency per projection), read the read-out membrane at the
last step as Q, act greedily. One batched simulator/emulator call per environment step.
On the chip stage the float network is also asked on the same observations, giving the share
of on-chip actions equal to float's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from spinnq.graph.model import Graph
from spinnq.graph.simulate import SimConfig, Simulator
from spinnq.s2.emulate import emulate
from spinnq.s2.program import Program
from spinnq.tasks.control.dqn import run_episodes
from spinnq.tasks.control.encoder import Encoder
from spinnq.tasks.control.env import EnvSpec

QFn = Callable[[np.ndarray], np.ndarray]
READOUT = "readout"


def sim_q(graph: Graph, enc: Encoder, dt: float) -> QFn:
    """Q from the reference simulator of a NIR graph (reset by subtraction, as trained)."""
    sim = Simulator(graph, SimConfig(dt=dt, reset="subtract", record=(READOUT,)))

    def q(obs: np.ndarray) -> np.ndarray:
        return sim.run(enc(obs)).v[READOUT][:, -1].numpy()

    return q


def chip_q(program: Program, enc: Encoder, keep: list | None = None) -> QFn:
    """Q from the emulator: T + depth steps, read-out voltage (NIR units) at the last one.
    `keep` collects 8 encoded inputs from every 25th call (up to 128, for the energy
    estimate: decisions spread over the episodes, not only their first steps)."""
    calls = [0]

    def q(obs: np.ndarray) -> np.ndarray:
        x = enc(obs)
        if keep is not None and calls[0] % 25 == 0 and sum(len(k) for k in keep) < 128:
            keep.append(x[:8])
        calls[0] += 1
        return emulate(program, x, record=[READOUT]).v[READOUT][:, -1].numpy()

    return q


@dataclass
class StageResult:
    name: str
    returns: np.ndarray
    decisions: int  # network calls x batch entries that were active
    wall_s: float
    agree: float | None = None  # share of actions equal to the float network's

    def row(self) -> dict:
        r = {"stage": self.name, "mean_return": float(self.returns.mean()),
             "std_return": float(self.returns.std()), "min_return": float(self.returns.min()),
             "episodes": int(self.returns.size), "decisions": self.decisions,
             "wall_s": self.wall_s, "kind": "measured"}
        if self.agree is not None:
            r["actions_equal_float"] = self.agree
        return r


def evaluate(name: str, q_fn: QFn, spec: EnvSpec, episodes: int, seed: int,
             reference: QFn | None = None) -> StageResult:
    """`episodes` seeded episodes with `q_fn`; with `reference`, also the share of actions
    equal to the reference's on the same observations."""
    counts = {"decisions": 0, "equal": 0}

    def on_step(obs, q, active):
        counts["decisions"] += int(active.sum())
        if reference is not None:
            ref = np.asarray(reference(obs)).argmax(1)
            counts["equal"] += int(((ref == q.argmax(1)) & active).sum())

    t0 = time.perf_counter()
    with torch.no_grad():
        rets = run_episodes(q_fn, spec, episodes, seed, on_step)
    agree = counts["equal"] / max(1, counts["decisions"]) if reference is not None else None
    return StageResult(name, rets, counts["decisions"], time.perf_counter() - t0, agree)
