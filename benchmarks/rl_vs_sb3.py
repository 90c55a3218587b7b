"""Spiking DQN (spinnq: float and on the emulated chip) vs Stable-Baselines3 DQN with rl-zoo
hyper-parameters on CartPole-v1, Acrobot-v1, MountainCar-v0 and LunarLander-v3, one run per
(environment, seed), side by side.

Protocol, the same for both agents:
- training: every >= `eval_every` environment steps (spinnq's default for the environment),
  a greedy evaluation of `eval_episodes` episodes with the validation seeds
  10_000 + 1000 * seed + i (spinnq's `dqn.train` protocol); the model with the best
  evaluation is kept (spinnq: unless its `dqn.keep` for the environment is "last": Acrobot
  keeps its averaged network at the end of training); training stops at spinnq's
  `stop_return` for the environment or at the agent's budget (spinnq: its default
  `total_steps`; SB3: rl-zoo's `n_timesteps`).
- steps to threshold: environment steps at the first evaluation with mean >= the solve
  threshold (CartPole 475, Acrobot -100, MountainCar -110, LunarLander 200); None if never.
- final return: the kept model, 100 greedy episodes with the test seeds 1_000_000 + i (never
  seen in training or selection); spinnq: float (reference simulator of the exported NIR)
  and chip (QAT graph on the bit-exact emulator), from `spinnq run`'s own report.
- wall time: measured on this machine, 1 torch thread, load average recorded (shared box).
- chip energy and latency per decision: modelled (spinnq's report), at the 1 ms real-time
  tick and at the shortest feasible tick.

SB3 uses rl-zoo's DQN hyper-parameters (rl-baselines3-zoo hyperparams/dqn.yml; LunarLander's
are rl-zoo's LunarLander-v2 entry).

    .venv/bin/python benchmarks/rl_vs_sb3.py --envs acrobot mountaincar --seeds 0 1 2
    -> benchmarks/results/rl_vs_sb3_envs.json (rows merged by (env, seed); README table:
       benchmarks/readme_numbers.py readme)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import commit  # noqa: E402

ZOO_NET = dict(net_arch=[256, 256])
RL_ZOO: dict[str, dict] = {
    "cartpole": dict(n_timesteps=50_000, learning_rate=2.3e-3, batch_size=64,
                     buffer_size=100_000, learning_starts=1000, gamma=0.99,
                     target_update_interval=10, train_freq=256, gradient_steps=128,
                     exploration_fraction=0.16, exploration_final_eps=0.04,
                     policy_kwargs=ZOO_NET),
    "acrobot": dict(n_timesteps=100_000, learning_rate=6.3e-4, batch_size=128,
                    buffer_size=50_000, learning_starts=0, gamma=0.99,
                    target_update_interval=250, train_freq=4, gradient_steps=-1,
                    exploration_fraction=0.12, exploration_final_eps=0.1,
                    policy_kwargs=ZOO_NET),
    "mountaincar": dict(n_timesteps=120_000, learning_rate=4e-3, batch_size=128,
                        buffer_size=10_000, learning_starts=1000, gamma=0.98,
                        target_update_interval=600, train_freq=16, gradient_steps=8,
                        exploration_fraction=0.2, exploration_final_eps=0.07,
                        policy_kwargs=ZOO_NET),
    "lunarlander": dict(n_timesteps=100_000, learning_rate=6.3e-4, batch_size=128,
                        buffer_size=50_000, learning_starts=0, gamma=0.99,
                        target_update_interval=250, train_freq=4, gradient_steps=-1,
                        exploration_fraction=0.12, exploration_final_eps=0.1,
                        policy_kwargs=ZOO_NET),
}
TEST_EPISODES = 100
TEST_SEED = 1_000_000  # spinnq's ControlConfig.eval_seed: test episodes i use TEST_SEED + i


def protocol(env: str, seed: int):
    """(spinnq's ControlConfig, EnvSpec, solve threshold) for this environment and seed."""
    from spinnq.tasks.control.env import make_env, resolve, solved_return
    from spinnq.tasks.control.run import default_config

    cfg = default_config(env, seed=seed)
    spec = resolve(env)
    e = make_env(spec)
    try:
        return cfg, spec, solved_return(spec, e)
    finally:
        e.close()


def _sb3_q(net: torch.nn.Module, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def run_sb3(env: str, seed: int) -> dict:
    """SB3 DQN (rl-zoo) trained with spinnq's evaluation protocol; the best-evaluation
    Q-network is then scored on the 100 test episodes."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from spinnq.tasks.control.dqn import run_episodes, validation_seed

    cfg, spec, threshold = protocol(env, seed)
    every, n_eval, stop = cfg.dqn.eval_every, cfg.dqn.eval_episodes, cfg.dqn.stop_return
    st = {"last": 0, "solved_at": None, "evals": [], "best": -np.inf, "best_net": None}
    t0 = time.perf_counter()

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps - st["last"] < every:
                return True
            st["last"] = self.num_timesteps
            rets = run_episodes(lambda o: _sb3_q(self.model.q_net, o), spec, n_eval,
                                validation_seed(seed))
            m = float(rets.mean())
            st["evals"].append((self.num_timesteps, m, time.perf_counter() - t0))
            if m >= st["best"]:
                st["best"], st["best_net"] = m, copy.deepcopy(self.model.q_net)
            if threshold is not None and m >= threshold and st["solved_at"] is None:
                st["solved_at"] = self.num_timesteps
            return stop is None or m < stop

    hp = dict(RL_ZOO[env])
    budget = hp.pop("n_timesteps")
    model = DQN("MlpPolicy", gym.make(spec.gym_id), seed=seed, verbose=0, device="cpu", **hp)
    model.learn(total_timesteps=budget, callback=Eval())
    wall = time.perf_counter() - t0
    net = st["best_net"] if st["best_net"] is not None else model.q_net
    test = run_episodes(lambda o: _sb3_q(net, o), spec, TEST_EPISODES, TEST_SEED)
    return {"agent": "sb3-dqn (rl-zoo, MLP 256x256)", "budget": budget,
            "env_steps": int(model.num_timesteps), "steps_to_threshold": st["solved_at"],
            "best_val_eval": st["best"], "test_mean": float(test.mean()),
            "test_std": float(test.std()), "train_wall_s": wall, "evals": st["evals"],
            "kind": "measured"}


def run_spinnq(env: str, seed: int, runs: Path | None) -> dict:
    """`spinnq run ENV --seed SEED` with its defaults (stages float and chip), read back from
    the run's report."""
    from spinnq.tasks.control.run import run_control

    cfg, _, _ = protocol(env, seed)
    cfg = replace(cfg, stages=("float", "chip"), baseline_repeats=3)
    rep = finished_report(runs / f"{env}-seed{seed}", cfg) if runs is not None else None
    if rep is not None:
        wall = rep["wall_s"]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = (runs or Path(tmp)) / f"{env}-seed{seed}"
            t0 = time.perf_counter()
            rep = run_control(cfg, out=out, quiet=True, force=runs is not None)
            wall = time.perf_counter() - t0
    st = {s["name"]: s for s in rep["stages"]}
    tr, chip, fast = rep["training"], rep["chip"], rep["chip_fastest_tick"]
    net = rep["network"]
    return {"agent": f"spinnq spiking DQN ({net['inputs']}-{'-'.join(map(str, net['hidden']))}-"
                     f"{net['actions']} LIF, T={net['timesteps_per_decision']})",
            "budget": cfg.dqn.total_steps, "env_steps": tr["env_steps"],
            "steps_to_threshold": tr["steps_to_solve"], "best_val_eval": tr["best_greedy_eval"],
            "float_test_mean": st["float"]["mean_return"],
            "float_test_std": st["float"]["std_return"],
            "chip_test_mean": st["chip"]["mean_return"], "chip_test_std": st["chip"]["std_return"],
            "chip_actions_equal_float": st["chip"].get("actions_equal_float"),
            "train_wall_s": tr["wall_s"], "total_wall_s": wall,
            "chip_per_decision": {
                "kind": "modelled", "operating_point": chip["operating_point"],
                "pes": chip["pes"], "timesteps": chip["timesteps"],
                "realtime_tick_s": chip["tick_s"], "latency_s": chip["latency_s"],
                "energy_j": chip["energy_j"], "fastest_tick_s": fast["tick_s"],
                "fastest_latency_s": fast["latency_s"], "fastest_energy_j": fast["energy_j"]},
            "settings": {"dqn": {k: v for k, v in vars(cfg.dqn).items()},
                         "encoder": vars(cfg.encoder), "finetune": vars(cfg.finetune),
                         "hidden": list(cfg.net.hidden)},
            "kind": "measured (returns, wall); modelled (chip energy, latency)"}


SAME = ("env", "seed", "dt", "encoder", "net", "dqn", "finetune", "eval_episodes", "eval_seed",
        "operating_point", "tick_s")


def finished_report(folder: Path, cfg) -> dict | None:
    """The report of a finished `spinnq run` in `folder` whose settings are `cfg`'s in
    everything that decides the numbers (not the stage list or CPU-baseline repeats), with
    float and chip stages; None otherwise (the benchmark then runs it)."""
    p = folder / "report.json"
    if not p.exists():
        return None
    rep = json.loads(p.read_text())
    want = json.loads(json.dumps(dataclasses.asdict(cfg)))
    have = rep.get("config", {})
    names = {s["name"] for s in rep.get("stages", [])}
    if any(have.get(k) != want[k] for k in SAME) or not {"float", "chip"} <= names:
        return None
    return rep


def merge(path: Path, rows: list[dict]) -> dict:
    """The results JSON with `rows` replacing any earlier row of the same (env, seed)."""
    old = json.loads(path.read_text())["results"] if path.exists() else []
    keys = {(r["env"], r["seed"]) for r in rows}
    kept = [r for r in old if (r["env"], r["seed"]) not in keys]
    allrows = sorted(kept + rows, key=lambda r: (list(RL_ZOO).index(r["env"]), r["seed"]))
    return {"benchmark": "rl_vs_sb3_envs", "protocol": __doc__.split("Protocol")[1].split(
                "SB3 uses")[0].strip(), "test_episodes": TEST_EPISODES, "test_seed": TEST_SEED,
            "rl_zoo_hyperparameters": {e: {k: str(v) for k, v in h.items()}
                                       for e, h in RL_ZOO.items()},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": 1}, "results": allrows, "kind": "measured"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", choices=list(RL_ZOO), default=list(RL_ZOO))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--agents", nargs="+", choices=("spinnq", "sb3"), default=["spinnq", "sb3"])
    ap.add_argument("--runs", type=Path, default=None,
                    help="keep spinnq's run folders here as ENV-seedSEED (default: a temporary "
                         "folder); a finished run there with the same settings is read back, "
                         "not run again")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/rl_vs_sb3_envs.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    for env in a.envs:
        for seed in a.seeds:
            old = _old_row(a.out, env, seed)
            row = {"env": env, "seed": seed, "commit": commit(),
                   "load_avg_1min_before": os.getloadavg()[0]}
            for agent in ("spinnq", "sb3"):
                if agent in a.agents:
                    row[agent] = run_spinnq(env, seed, a.runs) if agent == "spinnq" \
                        else run_sb3(env, seed)
                elif agent in old:
                    row[agent] = old[agent]
            row["load_avg_1min_after"] = os.getloadavg()[0]
            out = merge(a.out, [row])
            a.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = a.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, indent=2, default=float))
            tmp.replace(a.out)
            print(env, seed, {k: _brief(v) for k, v in row.items() if k in ("spinnq", "sb3")},
                  flush=True)
    print(f"wrote {a.out}")


def _old_row(path: Path, env: str, seed: int) -> dict:
    if not path.exists():
        return {}
    return next((r for r in json.loads(path.read_text())["results"]
                 if r["env"] == env and r["seed"] == seed), {})


def _brief(r: dict) -> dict:
    return {k: r[k] for k in ("steps_to_threshold", "test_mean", "float_test_mean",
                              "chip_test_mean", "train_wall_s") if k in r}


if __name__ == "__main__":
    main()
