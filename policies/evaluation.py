"""Run a policy on an env for N seeded episodes and summarise every metric (mean, 95% CI)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from memgym.policies.base import Policy, batch_observations


@dataclass
class EvalResult:
    env: str
    policy: str
    episodes: int
    seed: int
    env_kwargs: dict[str, Any]
    per_episode: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: mean_ci(values) for name, values in self.per_episode.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "policy": self.policy,
            "episodes": self.episodes,
            "seed": self.seed,
            "env_kwargs": self.env_kwargs,
            "metrics": self.summary(),
        }


def mean_ci(values) -> dict[str, float]:
    """Mean and the half-width of a normal-approximation 95% confidence interval."""
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return {"mean": float(x.mean()) if len(x) else math.nan, "ci95": math.nan}
    return {"mean": float(x.mean()), "ci95": float(1.96 * x.std(ddof=1) / math.sqrt(len(x)))}


def evaluate(
    policy: Policy,
    env_id: str,
    episodes: int,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    batch: int = 16,
    progress: bool = True,
    policy_name: str | None = None,
) -> EvalResult:
    """Episode `i` is seeded with `seed + i`, so every policy sees the same streams."""
    env_kwargs = dict(env_kwargs or {})
    n_envs = max(1, min(batch, episodes))
    envs = [gym.make(env_id, **env_kwargs) for _ in range(n_envs)]
    policy.reset(n_envs, seed)
    result = EvalResult(env_id, policy_name or policy.name, episodes, seed, env_kwargs)
    returns: dict[int, float] = {}
    metrics: dict[int, dict[str, float]] = {}
    episode_of = [-1] * n_envs
    obs: list[dict | None] = [None] * n_envs
    next_episode = 0

    def start(i: int) -> None:
        nonlocal next_episode
        episode_of[i] = next_episode
        obs[i], _ = envs[i].reset(seed=seed + next_episode)
        returns[next_episode] = 0.0
        next_episode += 1
        if hasattr(policy, "episode_start"):
            policy.episode_start(i)

    for i in range(n_envs):
        start(i)
    bar = tqdm(total=episodes, desc=f"{result.policy} on {env_id}", disable=not progress, leave=False)
    try:
        while any(e >= 0 for e in episode_of):
            # Every env is in the batch at every step (finished ones repeat their last
            # observation and their actions are dropped), so recurrent state rows stay aligned.
            batch_obs = batch_observations(obs)
            states = (
                [env.unwrapped.get_state() if episode_of[i] >= 0 else None
                 for i, env in enumerate(envs)]
                if policy.needs_state else None
            )
            actions = policy.act(batch_obs, states)
            for i, action in enumerate(actions):
                if episode_of[i] < 0:
                    continue
                obs[i], reward, terminated, truncated, info = envs[i].step(int(action))
                returns[episode_of[i]] += float(reward)
                if terminated or truncated:
                    metrics[episode_of[i]] = info.get("metrics", {})
                    bar.update(1)
                    if next_episode < episodes:
                        start(i)
                    else:
                        episode_of[i] = -1
    finally:
        bar.close()
        for env in envs:
            env.close()
    order = sorted(returns)
    result.per_episode["return"] = [returns[e] for e in order]
    for name in metrics[order[0]]:
        result.per_episode[name] = [metrics[e][name] for e in order]
    return result
