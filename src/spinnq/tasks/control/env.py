"""Gymnasium environments for spiking Q-learning: which ones, and the ranges the encoder uses.

A task name is a short alias (`cartpole`, `acrobot`, `mountaincar`, `lunarlander`) or any
Gymnasium id with a discrete action space and a Box observation. The encoder needs a finite
range per observation dimension: bounded dimensions use the observation space's bounds,
unbounded ones (velocities) the typical range listed here; values outside are clipped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from spinnq.errors import InputError

# gymnasium's box2d package imports pygame, whose import warns about setuptools'
# pkg_resources on every LunarLander run: noise about a package spinnq does not use.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning,
                        module="pygame")


@dataclass(frozen=True)
class EnvSpec:
    """What spinnq needs to know about a control task beyond Gymnasium's own spec."""

    gym_id: str
    low: tuple[float, ...] | None = None  # encoder range per observation dim (None: space's)
    high: tuple[float, ...] | None = None
    solved: float | None = None  # mean return that counts as solved (None: Gymnasium's)
    stop: float | None = None  # training stops once the greedy evaluation reaches this


# Ranges for unbounded dimensions are where the state actually lives under a reasonable
# policy (CartPole velocities rarely exceed +-2 / +-3); clipping beyond is harmless.
ENVS: dict[str, EnvSpec] = {
    "cartpole": EnvSpec("CartPole-v1", (-2.4, -2.5, -0.21, -3.0), (2.4, 2.5, 0.21, 3.0),
                        solved=475.0, stop=495.0),
    "acrobot": EnvSpec("Acrobot-v1", (-1, -1, -1, -1, -6.5, -14.0), (1, 1, 1, 1, 6.5, 14.0),
                       solved=-100.0, stop=-80.0),
    "mountaincar": EnvSpec("MountainCar-v0", solved=-110.0, stop=-105.0),
    "lunarlander": EnvSpec("LunarLander-v3", (-1.5, -0.5, -2.0, -2.0, -1.5, -3.0, 0.0, 0.0),
                           (1.5, 1.6, 2.0, 1.0, 1.5, 3.0, 1.0, 1.0), solved=200.0, stop=220.0),
}


def resolve(name: str) -> EnvSpec:
    """An alias or Gymnasium id -> EnvSpec; InputError for unknown names."""
    key = str(name).strip()
    if key.lower() in ENVS:
        return ENVS[key.lower()]
    for spec in ENVS.values():
        if spec.gym_id.lower() == key.lower():
            return spec
    if key in gym.registry:
        return EnvSpec(key)
    raise InputError(f"unknown environment {name!r}; known: {', '.join(ENVS)} "
                     f"(or any registered Gymnasium id with discrete actions)")


def make_env(spec: EnvSpec, **kwargs) -> gym.Env:
    """Instantiate and check that Q-learning applies (discrete actions, Box observations)."""
    try:
        env = gym.make(spec.gym_id, **kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise InputError(f"environment {spec.gym_id} needs a package that is not installed "
                         f"({str(e).splitlines()[0]})") from None
    except gym.error.Error as e:
        raise InputError(f"cannot make environment {spec.gym_id}: {e}") from None
    check_spaces(spec, env)
    return env


def check_spaces(spec: EnvSpec, env: gym.Env) -> None:
    if not isinstance(env.action_space, gym.spaces.Discrete):
        env.close()
        raise InputError(f"environment {spec.gym_id} has a continuous action space "
                         f"({type(env.action_space).__name__}): a Q-network needs discrete "
                         f"actions (DQN chooses the action with the largest Q-value)")
    obs = env.observation_space
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        env.close()
        raise InputError(f"environment {spec.gym_id}: observations must be a flat Box, "
                         f"got {obs}")


def obs_range(spec: EnvSpec, env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """Finite (low, high) per observation dimension for the encoder."""
    space = env.observation_space
    low = np.asarray(spec.low if spec.low is not None else space.low, dtype=np.float64)
    high = np.asarray(spec.high if spec.high is not None else space.high, dtype=np.float64)
    if low.shape != space.shape or high.shape != space.shape:
        raise InputError(f"{spec.gym_id}: encoder range has {low.size} dims, observations "
                         f"have {space.shape}")
    if not (np.isfinite(low).all() and np.isfinite(high).all()) or (high <= low).any():
        raise InputError(f"{spec.gym_id}: observation range is unbounded or empty "
                         f"({low} .. {high}); add its typical range to spinnq.tasks.control."
                         f"env.ENVS")
    return low, high


def solved_return(spec: EnvSpec, env: gym.Env) -> float | None:
    if spec.solved is not None:
        return spec.solved
    return env.spec.reward_threshold if env.spec is not None else None


def make_vec(spec: EnvSpec, n: int) -> gym.vector.SyncVectorEnv:
    """n copies side by side: one batched network call per environment step for all n."""
    return gym.vector.SyncVectorEnv([lambda: gym.make(spec.gym_id) for _ in range(n)])
