"""Batched envs for rollouts: the env's native vector env when it registers one, else a
picklable `SyncVectorEnv`, always with same-step autoreset (the final observation of an episode
is in `info["final_obs"]`, the returned one starts the next episode)."""

from __future__ import annotations

import functools

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.envs.config import ConfigError
from memgym.envs.registration import can_return_views

from .config import Algo, Critic, TrainConfig


def make_vector_env(env_id: str, env_kwargs: dict, num_envs: int) -> gym.vector.VectorEnv:
    spec = gym.spec(env_id)
    if spec.vector_entry_point is not None:
        # Rollouts copy what they keep into their own storage, so an env that can hand out its
        # buffers instead of fresh copies (`copy=False`) saves a whole observation copy a step.
        views = {"copy": False} if can_return_views(env_id) else {}
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                           **views, **env_kwargs)
        if env.metadata.get("autoreset_mode") is AutoresetMode.SAME_STEP:
            return env
        env.close()
    # functools.partial (not a lambda) keeps the vector env picklable for checkpoints.
    fns = [functools.partial(gym.make, env_id, **env_kwargs) for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def critic_width(cfg: TrainConfig, env: gym.vector.VectorEnv) -> int:
    """Hidden-state features the value head gets: their width under `critic: privileged`, or
    under `auto` for PPO on an env that provides them; else 0."""
    if cfg.critic is Critic.OBSERVATION or cfg.algo is not Algo.PPO:
        return 0
    if not hasattr(env, "privileged"):
        if cfg.critic is Critic.AUTO:
            return 0
        raise ConfigError(f"critic=privileged needs a native vector env with privileged features "
                          f"(every memgym task has one); {cfg.env} has none: set critic=observation")
    return int(env.privileged_width)
