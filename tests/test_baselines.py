"""Baselines: the batched protocol, only valid actions, and capacity that binds (heuristics well
below the oracle at Medium)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import STREAMING_IDS, make

from memgym.evaluation import evaluate
from memgym.policies import BASELINES, OraclePolicy, Policy, RandomPolicy, batch_observations

N_ENVS = 6


def run_batched(policy, env_id: str, seed: int) -> dict:
    """Step N envs in lockstep with one batched `act` per step until all episodes end; assert
    every action is valid under its env's mask. Returns action counts by op."""
    envs = [make(env_id) for _ in range(N_ENVS)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    done = [False] * N_ENVS
    policy.reset(N_ENVS, seed)
    counts = {"steps": 0, "invalid": 0}
    while not all(done):
        batch = batch_observations(obs)
        states = [env.get_state() for env in envs] if policy.needs_state else None
        actions = policy.act(batch, states)
        assert isinstance(actions, np.ndarray) and actions.dtype == np.int64
        assert actions.shape == (N_ENVS,)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            a = int(actions[i])
            assert batch["action_mask"][i, a] == 1, f"env {i}: invalid action {env.decode(a)}"
            obs[i], _, terminated, truncated, info = env.step(a)
            counts["steps"] += 1
            if terminated or truncated:
                done[i] = True
                counts["invalid"] += info["metrics"]["invalid_actions"]
    return counts


def test_every_baseline_follows_the_protocol():
    for name, factory in BASELINES.items():
        policy = factory()
        assert isinstance(policy, Policy), name
        assert policy.name == name
        assert policy.needs_state is (name == "oracle")


@pytest.mark.parametrize("name", list(BASELINES))
@pytest.mark.parametrize("env_id", [i for i in STREAMING_IDS if "-Hard-" not in i])
def test_baseline_actions_are_valid_on_batched_observations(name, env_id):
    counts = run_batched(BASELINES[name](), env_id, seed=11)
    assert counts["invalid"] == 0
    assert counts["steps"] >= N_ENVS * make(env_id).config.length


def test_oracle_needs_states():
    env = make("memgym/Conflict-Easy-v0")
    obs = batch_observations([env.reset(seed=0)[0]])
    with pytest.raises(ValueError, match="get_state"):
        OraclePolicy().act(obs)


def test_random_policy_is_seeded_and_masked():
    env = make("memgym/Conflict-Medium-v0")
    obs = batch_observations([env.reset(seed=s)[0] for s in range(32)])
    a, b = RandomPolicy(), RandomPolicy()
    a.reset(32, seed=3)
    b.reset(32, seed=3)
    draws = [a.act(obs) for _ in range(20)]
    np.testing.assert_array_equal(np.stack(draws), np.stack([b.act(obs) for _ in range(20)]))
    assert all(obs["action_mask"][np.arange(32), d].all() for d in draws)
    # Uniform over valid actions: over 20 x 32 draws, more than one action is used per env.
    assert (np.stack(draws).std(axis=0) > 0).all()


SEEDS = 30


@pytest.fixture(scope="module")
def medium_accuracy():
    """Mean accuracy over 30 seeds of keep_all, fifo and the oracle on every Medium task."""
    out = {}
    for env_id in [i for i in STREAMING_IDS if "-Medium-" in i]:
        for name in ("keep_all", "fifo", "oracle"):
            r = evaluate(BASELINES[name](), env_id, SEEDS, seed=1000, progress=False)
            out[env_id, name] = float(np.mean(r.per_episode["accuracy"]))
    return out


@pytest.mark.parametrize("env_id", [i for i in STREAMING_IDS if "-Medium-" in i])
@pytest.mark.parametrize("name", ["keep_all", "fifo"])
def test_capacity_binds_at_medium(medium_accuracy, env_id, name):
    """Keeping everything until full, or the most recent items, falls well short of the oracle:
    at most 0.6 x its accuracy (the issue's target for Medium)."""
    oracle = medium_accuracy[env_id, "oracle"]
    assert oracle >= 0.95
    assert medium_accuracy[env_id, name] <= 0.6 * oracle, medium_accuracy
