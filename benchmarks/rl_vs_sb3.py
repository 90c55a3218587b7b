"""Spiking DQN (spinnq) vs Stable-Baselines3 DQN on CartPole-v1: environment steps and wall
time until the greedy policy reaches a mean return >= 475, same seed, same evaluation.

Evaluation protocol (both agents): after every >= `eval_every` environment steps, 10 greedy
episodes side by side with the seeds 10_000 + 1000 * seed + i (spinnq's `dqn.train`
protocol); training stops at the first evaluation with mean >= 475 or at the budget. Wall
time includes the evaluations (measured, this machine, 1 torch thread each; the load average
is recorded because the box is shared).

SB3 uses rl-zoo's CartPole-v1 DQN hyper-parameters (rl-baselines3-zoo hyperparams/dqn.yml).

    .venv/bin/python benchmarks/rl_vs_sb3.py [--seeds 0 1 2] [--budget 50000]
    -> benchmarks/results/rl_vs_sb3.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

RL_ZOO_CARTPOLE = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                       learning_starts=1000, gamma=0.99, target_update_interval=10,
                       train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                       exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))
THRESHOLD = 475.0


def eval_seed(seed: int) -> int:
    return 10_000 + seed * 1000  # the same as spinnq.tasks.control.dqn.train


def run_sb3(seed: int, budget: int, eval_every: int, episodes: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from spinnq.tasks.control.dqn import run_episodes
    from spinnq.tasks.control.env import resolve

    spec = resolve("cartpole")
    state = {"last": 0, "solved_at": None, "evals": []}
    t0 = time.perf_counter()

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps - state["last"] < eval_every:
                return True
            state["last"] = self.num_timesteps
            rets = run_episodes(lambda obs: _sb3_q(self.model, obs), spec, episodes,
                                eval_seed(seed))
            state["evals"].append((self.num_timesteps, float(rets.mean()),
                                   time.perf_counter() - t0))
            if rets.mean() >= THRESHOLD:
                state["solved_at"] = self.num_timesteps
                return False
            return True

    model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, verbose=0, device="cpu",
                **RL_ZOO_CARTPOLE)
    model.learn(total_timesteps=budget, callback=Eval())
    wall = time.perf_counter() - t0
    return {"agent": "sb3-dqn (rl-zoo, MLP 256x256)", "seed": seed,
            "steps_to_475": state["solved_at"], "wall_s": wall, "evals": state["evals"],
            "kind": "measured"}


def _sb3_q(model, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.q_net(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def run_spinnq(seed: int, budget: int, eval_every: int, episodes: int) -> dict:
    from spinnq.tasks.control.dqn import train
    from spinnq.tasks.control.run import build_agent, default_config

    cfg = default_config("cartpole", seed=seed)
    dqn = replace(cfg.dqn, total_steps=budget, eval_every=eval_every, eval_episodes=episodes,
                  stop_return=THRESHOLD, ckpt_every=10**9)
    spec, enc, model, _ = build_agent(cfg)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "checkpoints").mkdir()
        t0 = time.perf_counter()
        res = train(model, enc, spec, dqn, seed, Path(d), solved=THRESHOLD, quiet=True)
        wall = time.perf_counter() - t0
        evals = (Path(d) / "eval.csv").read_text().splitlines()[1:]
    return {"agent": f"spinnq spiking DQN ({enc.n_inputs}-{'-'.join(map(str, cfg.net.hidden))}"
                     f"-2 LIF, T={enc.steps})", "seed": seed,
            "steps_to_475": res.steps_to_solve, "wall_s": wall,
            "evals": [[float(row.split(",")[i]) for i in (0, 1, 3)] for row in evals],
            "kind": "measured"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--budget", type=int, default=50_000)
    ap.add_argument("--eval-every", type=int, default=2_000)
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/results/rl_vs_sb3.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in a.seeds:
        load0 = os.getloadavg()[0]
        sb3 = run_sb3(seed, a.budget, a.eval_every, a.episodes)
        ours = run_spinnq(seed, a.budget, a.eval_every, a.episodes)
        ratio = ours["wall_s"] / sb3["wall_s"] if sb3["wall_s"] > 0 else None
        rows.append({"seed": seed, "sb3": sb3, "spinnq": ours, "wall_ratio_spinnq_over_sb3":
                     ratio, "load_avg_1min_before": load0, "load_avg_1min_after":
                     os.getloadavg()[0],
                     "targets": {"spinnq_steps_le_50k": ours["steps_to_475"] is not None
                                 and ours["steps_to_475"] <= 50_000,
                                 "wall_le_1.5x_sb3": ratio is not None and ratio <= 1.5}})
        print(f"seed {seed}: sb3 {sb3['steps_to_475']} steps {sb3['wall_s']:.1f}s | spinnq "
              f"{ours['steps_to_475']} steps {ours['wall_s']:.1f}s | ratio {ratio:.2f}")
    out = {"benchmark": "rl_vs_sb3", "env": "CartPole-v1", "threshold": THRESHOLD,
           "protocol": f"greedy eval of {a.episodes} episodes every >= {a.eval_every} env "
                       "steps; stop at the first mean >= 475; wall time includes evals",
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "torch_threads": 1},
           "rl_zoo_hyperparameters": {k: str(v) for k, v in RL_ZOO_CARTPOLE.items()},
           "results": rows, "kind": "measured"}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
