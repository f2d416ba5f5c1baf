"""The asymmetric critic's hidden-state features (`envs/privileged.py`) say what the single envs'
`get_state()` says, step for step, and never enter the observation or the policy's logits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import memgym.envs
from memgym.envs.privileged import privileged_size
from memgym.envs.stream import ItemKind
from memgym.policies.networks import PRIVILEGED, build_network, obs_to_torch

from test_streaming_vector import random_actions

STREAMING_IDS = memgym.envs.registered_ids("streaming")
N = 3


def expected_from_state(state: dict, capacity: int, num_facts: int) -> np.ndarray:
    """The features, recomputed from one single env's `get_state()`."""
    fact, version, latest_of = state["slot_fact"], state["slot_version"], state["fact_version"]
    occupied = state["slot_occupied"]
    is_fact = fact >= 0
    latest = is_fact & (version == latest_of[np.maximum(fact, 0)])
    kind = state["item_kind"]
    item_held = kind == ItemKind.FACT and bool(
        (latest & (fact == state["item_fact"])).any())
    answer = state["answer_slots"][-1] if state["answer_slots"] else None
    answer_held = kind == ItemKind.QUERY and answer is not None and answer >= 0
    held_facts = {int(f) for f in fact[latest]}
    return np.concatenate([
        latest, is_fact & ~latest, occupied & ~is_fact,
        [kind == ItemKind.DISTRACTOR, kind == ItemKind.FACT, item_held, answer_held,
         len(held_facts) / num_facts, np.sum(latest_of >= 0) / num_facts],
    ]).astype(np.float32)


@pytest.mark.parametrize("env_id", STREAMING_IDS)
def test_privileged_features_match_each_single_envs_hidden_state(env_id):
    kw = {"length": 200} if "-Hard-" in env_id else {"length": 60}
    vec = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kw)
    singles = [gym.make(env_id, **kw) for _ in range(N)]
    cfg = singles[0].unwrapped.config
    obs, _ = vec.reset(seed=7)
    for i, env in enumerate(singles):
        env.reset(seed=7 + i)
    rng = np.random.default_rng(0)
    assert vec.privileged().shape == (N, privileged_size(cfg.capacity))
    for step in range(400):
        got = vec.privileged()
        for i, env in enumerate(singles):
            want = expected_from_state(env.unwrapped.get_state(), cfg.capacity, cfg.num_facts)
            np.testing.assert_array_equal(got[i], want, err_msg=f"step {step} env {i}")
        actions = random_actions(obs, rng)
        obs, _, terminated, _, _ = vec.step(actions)
        for i, env in enumerate(singles):
            _, _, te, tr, _ = env.step(int(actions[i]))
            if te or tr:
                env.reset()
        assert PRIVILEGED not in obs


def test_privileged_features_reach_the_value_only():
    env = gym.make_vec("memgym/Conflict-Medium-v0", num_envs=4,
                       vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    torch.manual_seed(0)
    width = env.privileged().shape[-1]
    for arch in ("slot_pool", "slot_attention", "mlp"):
        net = build_network(arch, env.single_observation_space, 32, privileged_dim=width)
        plain = obs_to_torch(obs)
        a = dict(plain, **{PRIVILEGED: torch.zeros(4, width)})
        b = dict(plain, **{PRIVILEGED: torch.ones(4, width)})
        logits_a, value_a, _ = net(a)
        logits_b, value_b, _ = net(b)
        torch.testing.assert_close(logits_a, logits_b)  # the policy cannot see them
        assert not torch.allclose(value_a, value_b)  # the critic does
        logits_none, value_none, _ = net(plain)  # evaluation batches carry none: zeros
        torch.testing.assert_close(logits_none, logits_a)
        torch.testing.assert_close(value_none, value_a)
