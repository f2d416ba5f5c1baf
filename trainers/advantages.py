"""The two advantage estimators of the on-policy core, as pure numpy functions."""

from __future__ import annotations

import numpy as np


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over a `[T, N]` rollout.

    `dones[t]` marks that the episode ended at step `t` (terminated or truncated); a truncated
    step must already carry `gamma * V(final_obs)` in its reward, so a time-out is bootstrapped
    while a true termination is not. Returns `(advantages, returns)`.
    """
    T = len(rewards)
    advantages = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros_like(last_values, dtype=np.float32)
    for t in reversed(range(T)):
        next_values = last_values if t == T - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * live - values[t]
        running = delta + gamma * lam * live * running
        advantages[t] = running
    return advantages, advantages + values


def group_advantages(episode_returns: np.ndarray, group_size: int, eps: float = 1e-6) -> np.ndarray:
    """GRPO: `(R - group mean) / group std` for returns laid out group by group.

    `episode_returns` has one return per episode, consecutive runs of `group_size` sharing a
    stream seed. A group whose returns are all equal has no signal: its advantages are 0.
    """
    r = np.asarray(episode_returns, np.float64).reshape(-1, group_size)
    centred = r - r.mean(axis=1, keepdims=True)
    std = r.std(axis=1, keepdims=True)
    return np.where(std > eps, centred / np.maximum(std, eps), 0.0).reshape(-1).astype(np.float32)
