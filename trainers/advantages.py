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
    advanced: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over a `[T, N]` rollout.

    `dones[t]` marks that the episode ended at step `t` (terminated or truncated); a truncated
    step must already carry `gamma * V(final_obs)` in its reward, so a time-out is bootstrapped
    while a true termination is not. Returns `(advantages, returns)`.

    `advanced[t]` (optional, 0/1): whether step `t` moved the task's clock (the stream to its next
    item, the world by a move). Discount and lambda then apply per advance, not per action: the
    memory ops an agent makes on one item (EVICT, RETRIEVE) take no task time, so they should not
    shorten the horizon over which an answer is credited to the write that made it possible.
    """
    T = len(rewards)
    advantages = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros_like(last_values, dtype=np.float32)
    for t in reversed(range(T)):
        g, gl = gamma, gamma * lam
        if advanced is not None:
            g = np.where(advanced[t], gamma, 1.0)
            gl = np.where(advanced[t], gamma * lam, 1.0)
        next_values = last_values if t == T - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + g * next_values * live - values[t]
        running = delta + gl * live * running
        advantages[t] = running
    return advantages, advantages + values


def group_advantages(episode_returns: np.ndarray, group_size: int, eps: float = 1e-6,
                     scale: bool = True) -> np.ndarray:
    """GRPO: `(R - group mean) / group std` for returns laid out group by group.

    `episode_returns` has one return per episode, consecutive runs of `group_size` sharing a
    stream seed. A group whose returns are all equal has no signal: its advantages are 0.
    `scale=False` only centres (`R - group mean`, as Dr. GRPO does): dividing by the std gives a
    group whose returns differ by a tiny cost (a write cost, with no success in the group) the
    same push as a group where one member succeeded, so the cost can become the whole signal.
    """
    r = np.asarray(episode_returns, np.float64).reshape(-1, group_size)
    centred = r - r.mean(axis=1, keepdims=True)
    std = r.std(axis=1, keepdims=True)
    if not scale:
        return np.where(std > eps, centred, 0.0).reshape(-1).astype(np.float32)
    return np.where(std > eps, centred / np.maximum(std, eps), 0.0).reshape(-1).astype(np.float32)


def group_to_go_advantages(
    rewards: np.ndarray,
    valid: np.ndarray,
    position: np.ndarray,
    group_size: int,
    eps: float = 1e-6,
    discounts: np.ndarray | None = None,
    scale: bool = True,
) -> np.ndarray:
    """GRPO with step-level credit: each step is judged by the reward still to come, against the
    other members of its group *at the same stream position*.

    The members of a group play the same stream, so at a given position they face the same item
    with different memories; the group's mean reward-to-go from that position is a baseline made
    of rollouts alone (no critic), as the episode-level estimator's mean return is, but a decision
    is no longer credited with rewards that came before it. (The idea of grouping steps by a
    shared anchor state is GiGPO's; here the anchor is the stream position.)

    `rewards`, `valid` and `position` are `[T, N]` (one episode per env, envs laid out group by
    group); `position` is any value equal across members exactly when they are at the same point
    of the stream (the streaming item's `progress`). A step gets
    `(G_t - mean) / std` over the members that reached its position, with `G_t` the reward from
    step `t` to the end of its episode (discounted by `discounts[t]` between steps `t` and `t+1`
    when given: a shorter horizon trades a little bias for much less variance) and each member represented by `G` at its
    first step at that position. Positions reached by fewer than two members, or with no spread,
    give 0. Invalid steps give 0. `scale=False` only centres, as in `group_advantages`.
    """
    rewards = np.where(valid, rewards, 0.0).astype(np.float64)
    T, N = rewards.shape
    if N % group_size:
        raise ValueError(f"{N} envs do not split into groups of {group_size}")
    if discounts is None:
        to_go = np.cumsum(rewards[::-1], axis=0)[::-1]
    else:
        to_go = np.zeros_like(rewards)
        running = np.zeros(N)
        for t in reversed(range(T)):
            running = rewards[t] + discounts[t] * running
            to_go[t] = running
    out = np.zeros((T, N), np.float32)
    for g in range(N // group_size):
        cols = slice(g * group_size, (g + 1) * group_size)
        pos, go, ok = position[:, cols], to_go[:, cols], valid[:, cols]
        keys, inverse = np.unique(pos[ok], return_inverse=True)
        member = np.broadcast_to(np.arange(group_size), pos.shape)[ok]
        # Each member's to-go at its first step at each position (steps are in time order, so
        # the first write wins when written in reverse).
        first = np.full((len(keys), group_size), np.nan)
        first[inverse[::-1], member[::-1]] = go[ok][::-1]
        count = np.sum(~np.isnan(first), axis=1)
        mean = np.where(count > 0, np.nansum(first, axis=1) / np.maximum(count, 1), 0.0)
        centred = np.where(np.isnan(first), 0.0, first - mean[:, None])
        std = np.sqrt(np.sum(centred**2, axis=1) / np.maximum(count, 1))
        usable = (count >= 2) & (std > eps)
        factor = np.where(usable, 1.0 / np.maximum(std, eps) if scale else 1.0, 0.0)
        adv = np.zeros(pos.shape)
        adv[ok] = (go[ok] - mean[inverse]) * factor[inverse]
        out[:, cols] = adv
    return out
