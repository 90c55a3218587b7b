"""DQN for the spiking Q-network: replay buffer, target network, Huber loss, Adam,
epsilon-greedy with a linear schedule (optionally temporally extended: `explore_zeta`),
double DQN (option), periodic greedy evaluation with
the best model kept, checkpoints and exact resume.

Exact resume: checkpoints are taken at episode boundaries and every episode resets the
environment with the seed `seed * 1_000_003 + episode`, so the environment needs no saved
state; the networks, optimiser, replay buffer, counters and every RNG are in the checkpoint.
A run interrupted at any step and resumed ends with the same weights as an uninterrupted one.

Acting uses the float model through numpy (`fast.act_np`); updates use `fast.q_values`
(one autograd node per LIF layer). Both equal `SpikingSequential.forward` (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from spinnq.errors import CheckpointError
from spinnq.helpers import progress
from spinnq.settings import ANY_NUMBER, Limit
from spinnq.tasks.common import (
    MetricLogger,
    load_checkpoint,
    load_state_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from spinnq.tasks.control import fast
from spinnq.tasks.control.encoder import Encoder
from spinnq.tasks.control.env import EnvSpec, make_env, make_vec


@dataclass(frozen=True)
class DQNConfig:
    """Defaults for CartPole, tuned for the spiking net on this 2-core box: rl-zoo's batch
    64, gamma 0.99 and 1k steps before learning; one update every 4 env steps; 3-step returns
    and a target copied every 50 updates (200 env steps) so values propagate over CartPole's
    long horizon within the budget (a target every 1k env steps learned ~20-step horizons in
    20k steps and stalled); lr 5e-4 (rl-zoo's 2.3e-3 made the spiking net oscillate);
    rewards x0.1 (see `reward_scale`); epsilon 1 -> 0.04 over 20 % of the budget."""

    LIMITS: ClassVar[dict[str, Limit]] = {
        "total_steps": Limit(1, 1e9), "buffer": Limit(1, 1e8), "batch": Limit(1, 1 << 16),
        "lr": Limit(0, 1, lo_open=True), "lr_end": Limit(0, 1), "gamma": Limit(0, 1),
        "learning_starts": Limit(0, 1e9), "train_freq": Limit(1, 1e6),
        "gradient_steps": Limit(1, 1e4), "target_update": Limit(1, 1e9),
        "eps_start": Limit(0, 1), "eps_end": Limit(0, 1), "eps_fraction": Limit(0, 1),
        "n_step": Limit(1, 1000), "reward_scale": Limit(0, 1e6, lo_open=True),
        "huber_delta": Limit(0, 1e6, lo_open=True), "grad_clip": Limit(0, 1e9, lo_open=True),
        "eval_every": Limit(1, 1e9), "eval_episodes": Limit(1, 1e5), "stop_return": ANY_NUMBER,
        "explore_zeta": Limit(1, 100, lo_open=True), "explore_max_repeat": Limit(1, 1e6),
        "average_rate": Limit(0, 1, lo_open=True), "keep": Limit(choices=("best", "last"))}

    total_steps: int = 50_000  # environment steps (budget)
    buffer: int = 50_000
    batch: int = 64
    lr: float = 5e-4
    # None: a constant learning rate; a number: annealed linearly from `lr` (when learning
    # starts) to this at the end of the budget, so late updates refine the policy instead
    # of swinging it between good and poor greedy returns.
    lr_end: float | None = None
    gamma: float = 0.99
    learning_starts: int = 1_000
    train_freq: int = 4  # env steps between training rounds
    gradient_steps: int = 1  # updates per round
    target_update: int = 50  # copy online -> target every this many rounds
    eps_start: float = 1.0
    eps_end: float = 0.04
    eps_fraction: float = 0.2
    # Temporally extended epsilon-greedy ("ez-greedy", Dabney et al. 2021): an exploring
    # decision repeats its random action for n ~ zeta(explore_zeta) steps, capped at
    # `explore_max_repeat`. None = plain epsilon-greedy (one random step at a time), which in
    # sparse-reward tasks like MountainCar wanders near the start and finds the goal by luck.
    explore_zeta: float | None = None
    explore_max_repeat: int = 30
    # None: evaluate (and keep) the online network. A number: evaluate and keep an
    # exponential moving average of its weights instead, updated after every training round
    # with this rate (Polyak averaging). The online network's greedy policy swings between
    # evaluations; the average of nearby weights is a steadier policy. Acting (exploration)
    # always uses the online network.
    average_rate: float | None = None
    # Which evaluated network is kept: "best", the one with the best greedy evaluation (its
    # score there is the best of many noisy evaluations, so optimistic), or "last", the one
    # at the end of training (with `average_rate`, an average over the last ~1/rate rounds:
    # no pick among noisy evaluations at all). Evaluations run either way (steps to
    # threshold, `stop_return`).
    keep: str = "best"
    double: bool = True
    n_step: int = 3  # n-step returns: rewards of n steps, then bootstrap with gamma^n
    # Rewards are multiplied by this before learning. The read-out has no bias (see model.py),
    # so Q must come from spike counts alone; CartPole's Q ~ 1/(1 - gamma) = 100 would need
    # large read-out weights and leave the Huber loss in its linear regime for thousands of
    # updates. A positive scale changes no argmax: the policy is the same problem.
    reward_scale: float = 0.1
    huber_delta: float = 1.0
    grad_clip: float = 10.0
    eval_every: int = 2_000  # env steps between greedy evaluations
    eval_episodes: int = 10
    stop_return: float | None = None  # stop when the greedy evaluation reaches this
    ckpt_every: int = 5_000  # env steps between checkpoints (taken at the next episode end)


class ReplayBuffer:
    """Circular buffer of raw observations (encoded on sampling: encoding is deterministic
    and cheap, raw floats are 16x smaller than spike trains)."""

    def __init__(self, capacity: int, obs_dim: int):
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)  # terminated (not truncated): no bootstrap
        self.discount = np.zeros(capacity, np.float32)  # gamma^(rewards summed in `reward`)
        self.pos = 0
        self.size = 0

    def add(self, o, a, r, o2, done: bool, discount: float = 0.99) -> None:
        i = self.pos
        self.obs[i], self.action[i], self.reward[i], self.next_obs[i] = o, a, r, o2
        self.done[i] = float(done)
        self.discount[i] = discount
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        idx = rng.integers(0, self.size, size=n)
        return (self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                self.done[idx], self.discount[idx])

    def state_dict(self) -> dict:
        n = self.size
        return {"obs": torch.from_numpy(self.obs[:n].copy()),
                "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
                "action": torch.from_numpy(self.action[:n].copy()),
                "reward": torch.from_numpy(self.reward[:n].copy()),
                "done": torch.from_numpy(self.done[:n].copy()),
                "discount": torch.from_numpy(self.discount[:n].copy()), "pos": self.pos,
                "capacity": self.capacity}

    def load_state_dict(self, d: dict) -> None:
        if int(d["capacity"]) != self.capacity:
            raise CheckpointError(f"replay buffer capacity {d['capacity']} in the checkpoint, "
                                  f"{self.capacity} configured")
        n = int(d["obs"].shape[0])
        for k in ("obs", "next_obs", "action", "reward", "done", "discount"):
            getattr(self, k)[:n] = d[k].numpy()
        self.size, self.pos = n, int(d["pos"])


def epsilon(step: int, cfg: DQNConfig) -> float:
    frac = min(1.0, step / max(1.0, cfg.eps_fraction * cfg.total_steps))
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def validation_seed(seed: int) -> int:
    """Greedy evaluation episode i of a run with `seed` resets with this + i (i < 1000):
    one block of seeds per run, below the default test episodes (1_000_000 + i) for seeds
    under 990. The benchmarks evaluate other agents on the same episodes."""
    return 10_000 + seed * 1000


def learning_rate(step: int, cfg: DQNConfig) -> float:
    """`lr`, or with `lr_end` the linear anneal from `lr` at `learning_starts` to `lr_end`
    at `total_steps`."""
    if cfg.lr_end is None:
        return cfg.lr
    span = max(1, cfg.total_steps - cfg.learning_starts)
    frac = min(1.0, max(0.0, (step - cfg.learning_starts) / span))
    return cfg.lr + frac * (cfg.lr_end - cfg.lr)


def random_action(rng: np.random.Generator, n_actions: int, cfg: DQNConfig
                  ) -> tuple[int, int]:
    """An exploring decision: (action, how many steps to hold it). Plain epsilon-greedy holds
    it one step and draws only the action; ez-greedy draws the hold from zeta(explore_zeta),
    capped at `explore_max_repeat`."""
    a = int(rng.integers(n_actions))
    if cfg.explore_zeta is None:
        return a, 1
    return a, min(int(rng.zipf(cfg.explore_zeta)), cfg.explore_max_repeat)


def td_loss(online, target, enc: Encoder, batch, cfg: DQNConfig) -> torch.Tensor:
    """Huber loss between Q(s, a) and r + discount (1 - done) Q_target(s', a*), where a* is
    the online network's choice (double DQN) or the target's; discount = gamma^n for n-step
    transitions."""
    o, a, r, o2, d, disc = batch
    n = len(a)
    both = torch.from_numpy(enc.numpy(np.concatenate([o, o2])))
    if cfg.double:
        q_all = fast.q_values(online, both)
        q, q_next_online = q_all[:n], q_all[n:].detach()
        a_star = q_next_online.argmax(1, keepdim=True)
    else:
        q = fast.q_values(online, both[:n])
    with torch.no_grad():
        q_next = fast.act_q(target, both[n:])
        best = q_next.gather(1, a_star).squeeze(1) if cfg.double else q_next.max(1).values
        y = torch.from_numpy(r) + torch.from_numpy(disc) * (1.0 - torch.from_numpy(d)) * best
    q_sa = q.gather(1, torch.from_numpy(a)[:, None]).squeeze(1)
    return F.huber_loss(q_sa, y, delta=cfg.huber_delta)


def hard_update(target: torch.nn.Module, online: torch.nn.Module) -> None:
    target.load_state_dict(online.state_dict())


@torch.no_grad()
def average_update(average: torch.nn.Module, online: torch.nn.Module, rate: float) -> None:
    """average <- (1 - rate) average + rate online, parameter by parameter."""
    for a, o in zip(average.parameters(), online.parameters(), strict=True):
        a.lerp_(o, rate)


def greedy_eval(model, enc: Encoder, spec: EnvSpec, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` greedy episodes run side by side (float model, numpy path)."""
    w = fast.numpy_weights(model)
    return run_episodes(lambda obs: fast.act_np(w, enc.numpy(obs)), spec, episodes, seed)


def run_episodes(q_fn: Callable[[np.ndarray], np.ndarray], spec: EnvSpec, episodes: int,
                 seed: int, on_step: Callable | None = None) -> np.ndarray:
    """`episodes` seeded episodes side by side in a Gymnasium vector env: one batched
    `q_fn(obs (n, D)) -> Q (n, A)` call per environment step for all of them. Each copy
    counts its first episode only (later autoreset episodes are masked out)."""
    venv = make_vec(spec, episodes)
    try:
        obs, _ = venv.reset(seed=[seed + i for i in range(episodes)])
        active = np.ones(episodes, bool)
        returns = np.zeros(episodes)
        while active.any():
            q = np.asarray(q_fn(obs))
            actions = q.argmax(1)
            if on_step is not None:
                on_step(obs, q, active)
            obs, rew, term, trunc, _ = venv.step(actions)
            returns += rew * active
            active &= ~(term | trunc)
        return returns
    finally:
        venv.close()


@dataclass
class TrainResult:
    best_state: dict  # the kept model (`keep`: best greedy evaluation, or the last one)
    final_state: dict  # the online network at the end
    best_eval: float  # the kept model's greedy evaluation
    env_steps: int
    steps_to_solve: int | None  # env steps until a greedy evaluation reached `solved`
    episodes: int
    wall_s: float


class _Trainer:
    """One DQN run's moving parts (networks, optimiser, replay, RNG, counters `s`), so each
    phase of `train` is a short method. `s` holds only plain values: it is checkpointed."""

    def __init__(self, model, enc: Encoder, spec: EnvSpec, cfg: DQNConfig, seed: int,
                 folder: Path, solved: float | None):
        import copy

        self.model, self.enc, self.spec, self.cfg, self.seed = model, enc, spec, cfg, seed
        self.solved = solved
        self.env = make_env(spec)
        self.target = copy.deepcopy(model)
        self.average = copy.deepcopy(model) if cfg.average_rate is not None else None
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.buf = ReplayBuffer(cfg.buffer, self.env.observation_space.shape[0])
        self.rng = np.random.default_rng(seed)
        self.ckpt_path = folder / "checkpoints" / "dqn.pt"
        self.s = {"step": 0, "episode": 0, "rounds": 0, "best_eval": -np.inf, "last_ckpt": 0,
                  "last_eval": 0, "steps_to_solve": -1, "wall": 0.0, "best_state": None,
                  "done": False}
        self.tlog, self.elog = MetricLogger(folder, "train"), MetricLogger(folder, "eval")
        self.w = None  # numpy weights of the online network, for acting

    def restore(self, resume: bool) -> None:
        """Continue from `checkpoints/dqn.pt` (logs cut back to its step), or start fresh."""
        if resume and self.ckpt_path.exists():
            path = str(self.ckpt_path)
            st = load_checkpoint(self.ckpt_path, required=("model", "target", "opt", "buffer",
                                                           "rng", "s"))
            load_state_dict(self.model, st["model"], file=path)
            load_state_dict(self.target, st["target"], file=path)
            if self.average is not None:
                if "average" not in st:
                    raise CheckpointError("no averaged weights in the checkpoint, but "
                                          "dqn.average_rate is set", file=path)
                load_state_dict(self.average, st["average"], file=path)
            try:
                self.opt.load_state_dict(st["opt"])
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"optimiser state does not fit ({e})", file=path) from None
            self.buf.load_state_dict(st["buffer"])
            set_rng_state(st["rng"], self.rng)
            self.s = dict(st["s"])
        else:
            hard_update(self.target, self.model)
            if self.average is not None:
                hard_update(self.average, self.model)
        self.tlog.truncate(self.s["step"] if resume and self.ckpt_path.exists() else -1)
        self.elog.truncate(self.s["step"] if resume and self.ckpt_path.exists() else -1)
        if self.s["best_state"] is None:
            self.s["best_state"] = self.snapshot(self.evaluated())
        self.w = fast.numpy_weights(self.model)

    def snapshot(self, model=None) -> dict:
        model = self.model if model is None else model
        return {k: v.clone() for k, v in model.state_dict().items()}

    def evaluated(self):
        """The network that is evaluated and kept: the online one or its running average."""
        return self.model if self.average is None else self.average

    def checkpoint(self) -> None:
        self.s["last_ckpt"] = self.s["step"]
        save_checkpoint(self.ckpt_path, {
            "model": self.model.state_dict(), "target": self.target.state_dict(),
            "opt": self.opt.state_dict(), "buffer": self.buf.state_dict(),
            "rng": rng_state(self.rng), "s": self.s,
            **({"average": self.average.state_dict()} if self.average is not None else {})})

    def act(self, obs) -> int:
        """Epsilon-greedy on the float network (numpy path); with `explore_zeta` set an
        exploring action is held for a zeta-distributed number of steps. Without it the RNG
        draws are those of plain epsilon-greedy (runs without the option are unchanged)."""
        s, cfg = self.s, self.cfg
        if s.get("repeat_left", 0) > 0:
            s["repeat_left"] -= 1
            return int(s["repeat_action"])
        if self.rng.random() < epsilon(s["step"], cfg):
            a, n = random_action(self.rng, self.env.action_space.n, cfg)
            s["repeat_left"], s["repeat_action"] = n - 1, a
            return a
        return int(fast.act_np(self.w, self.enc.numpy(obs))[0].argmax())

    def store(self, pending: list, obs2, term: bool, end: bool) -> None:
        """Move finished n-step transitions from `pending` into the replay buffer."""
        cfg = self.cfg
        while pending and (len(pending) >= cfg.n_step or end):
            o0, a0, _ = pending[0]
            ret = sum(cfg.gamma ** k * p[2] for k, p in enumerate(pending))
            self.buf.add(o0, a0, ret, obs2, term, cfg.gamma ** len(pending))
            pending.pop(0)
            if not end:
                break

    def learn(self, losses: list) -> None:
        """One training round: gradient steps, target copy on schedule, fresh act weights."""
        cfg = self.cfg
        if cfg.lr_end is not None:
            for g in self.opt.param_groups:
                g["lr"] = learning_rate(self.s["step"], cfg)
        for _ in range(cfg.gradient_steps):
            loss = td_loss(self.model, self.target, self.enc,
                           self.buf.sample(cfg.batch, self.rng), cfg)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            losses.append(float(loss.detach()))
        if self.average is not None:
            average_update(self.average, self.model, cfg.average_rate)
        self.s["rounds"] += 1
        if self.s["rounds"] % cfg.target_update == 0:
            hard_update(self.target, self.model)
        self.w = fast.numpy_weights(self.model)

    def episode(self, interrupt_at: int | None) -> tuple[float, int, list]:
        """One episode (seeded by its index); returns (return, length, losses)."""
        cfg, s = self.cfg, self.s
        obs, _ = self.env.reset(seed=self.seed * 1_000_003 + s["episode"])
        s["repeat_left"] = 0  # an exploring action does not outlive its episode
        ep_ret, ep_len, losses = 0.0, 0, []
        pending: list = []  # (obs, action, reward) of the last n steps (n-step returns)
        while True:
            a = self.act(obs)
            obs2, r, term, trunc, _ = self.env.step(a)
            pending.append((obs, a, float(r) * cfg.reward_scale))
            self.store(pending, obs2, term, term or trunc or s["step"] + 1 >= cfg.total_steps)
            obs = obs2
            ep_ret += float(r)
            ep_len += 1
            s["step"] += 1
            if s["step"] >= cfg.learning_starts and s["step"] % cfg.train_freq == 0:
                self.learn(losses)
            if interrupt_at is not None and s["step"] >= interrupt_at:
                raise KeyboardInterrupt
            if term or trunc or s["step"] >= cfg.total_steps:
                break
        s["episode"] += 1
        return ep_ret, ep_len, losses

    def evaluate(self, t0: float) -> None:
        """Greedy evaluation on schedule: keep the model (`keep`: the best, or the latest), note
        when it solved, stop early at `stop_return`."""
        cfg, s = self.cfg, self.s
        if not (s["step"] - s["last_eval"] >= cfg.eval_every or s["step"] >= cfg.total_steps):
            return
        import time

        s["last_eval"] = s["step"]
        rets = greedy_eval(self.evaluated(), self.enc, self.spec, cfg.eval_episodes,
                           validation_seed(self.seed))
        mean = float(rets.mean())
        self.elog.log(s["step"], eval_mean=mean, eval_std=float(rets.std()),
                      wall_s=time.perf_counter() - t0)
        if cfg.keep == "last" or mean >= s["best_eval"]:
            s["best_eval"] = mean
            s["best_state"] = self.snapshot(self.evaluated())
        if self.solved is not None and mean >= self.solved and s["steps_to_solve"] < 0:
            s["steps_to_solve"] = s["step"]
        if cfg.stop_return is not None and mean >= cfg.stop_return:
            s["done"] = True

    def close(self) -> None:
        self.tlog.close()
        self.elog.close()
        self.env.close()


def train(model, enc: Encoder, spec: EnvSpec, cfg: DQNConfig, seed: int, folder: Path,
          solved: float | None = None, resume: bool = False, quiet: bool = False,
          interrupt_at: int | None = None) -> TrainResult:
    """Train `model` in place. Writes `checkpoints/dqn.pt` and `train.csv`/`eval.csv` (+
    TensorBoard) in `folder`. `interrupt_at` raises KeyboardInterrupt after that many env
    steps (tests of resume)."""
    import time

    torch.set_num_threads(1)
    fast.check_supported(model)
    tr = _Trainer(model, enc, spec, cfg, seed, folder, solved)
    tr.restore(resume)
    s = tr.s
    t0 = time.perf_counter() - s["wall"]
    with progress(disable=quiet) as bar:
        task = bar.add_task(f"DQN {spec.gym_id}", total=cfg.total_steps, completed=s["step"])
        while not s["done"] and s["step"] < cfg.total_steps:
            ep_ret, ep_len, losses = tr.episode(interrupt_at)
            bar.update(task, completed=s["step"],
                       info=f"ep {s['episode']} return {ep_ret:.0f} kept eval "
                            f"{s['best_eval']:.0f}")
            tr.tlog.log(s["step"], episode=s["episode"], ret=ep_ret, length=ep_len,
                        epsilon=epsilon(s["step"], cfg),
                        loss=float(np.mean(losses)) if losses else None)
            tr.evaluate(t0)
            s["wall"] = time.perf_counter() - t0
            if s["step"] - s["last_ckpt"] >= cfg.ckpt_every or s["done"]:
                tr.checkpoint()
    s["wall"] = time.perf_counter() - t0
    s["done"] = True
    tr.checkpoint()
    tr.close()
    return TrainResult(s["best_state"], tr.snapshot(), float(s["best_eval"]), int(s["step"]),
                       None if s["steps_to_solve"] < 0 else int(s["steps_to_solve"]),
                       int(s["episode"]), float(s["wall"]))
