"""The asymmetric critic's hidden-state features (`envs/privileged.py`) say what the single envs'
`get_state()` says, step for step, and never enter the observation or the policy's logits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import memgym.envs
from memgym.envs.object_recall import RecallPhase
from memgym.envs.privileged import embodied_privileged_size, privileged_size
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


def step_alike(vec, singles, obs, rng):
    """One random valid action per env, to the vector env and to each single env alike."""
    actions = random_actions(obs, rng)
    obs, *_ = vec.step(actions)
    for i, env in enumerate(singles):
        _, _, terminated, truncated, _ = env.step(int(actions[i]))
        if terminated or truncated:
            env.reset()
    assert PRIVILEGED not in obs  # never part of the observation
    return obs


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
        obs = step_alike(vec, singles, obs, rng)


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


# ---- the embodied family ----------------------------------------------------------------------

EMBODIED_IDS = memgym.envs.registered_ids("embodied")


def goal_from_state(state: dict) -> tuple[int, int] | None:
    """Where each task wants the agent now, read off its `get_state()`."""
    if state["task"] == "ObjectRecallEnv":
        return state["target_cell"] if state["phase"] == RecallPhase.CUE else None
    if state["task"] == "CueCorridorEnv":
        return tuple(state["door_cells"][state["correct_door"]])
    if state["task"] == "RearrangeEnv":
        held = state["carrying"]
        return tuple(state["object_cells"][held]) if held >= 0 else None
    raise AssertionError(state["task"])


def embodied_expected_from_state(state: dict, capacity: int) -> np.ndarray:
    """The embodied features, recomputed slot by slot from one single env's `get_state()`."""
    keep, pos = state["keep"], state["pos"]
    span = sum(state["shape"])
    held: set[int] = set()
    slot_needed, other = np.zeros(capacity, bool), np.zeros(capacity, bool)
    seen: set[tuple[int, int]] = set()
    for k in range(capacity):
        if not state["slot_occupied"][k]:
            continue
        e, v = int(state["slot_entity"][k]), int(state["slot_version"][k])
        if e >= 0 and v == 0 and e < len(keep) and keep[e] and (e, v) not in seen:
            slot_needed[k] = True
            held.add(e)
        else:
            other[k] = True
        seen.add((e, v))
    needed = {int(e) for e in np.flatnonzero(keep)}
    item = state["item_entity"]
    item_unheld = (not state["item_is_query"] and item in needed and state["item_version"] == 0
                   and item not in held)
    rec = state["recall_entity"]
    recall_needed = state["recall_valid"] and rec in needed and state["recall_version"] == 0
    chase = [abs(int(y) - pos[0]) + abs(int(x) - pos[1])
             for e in sorted(needed - held) for y, x in [state["entity_pos"][e]] if y >= 0]
    goal = goal_from_state(state)
    return np.concatenate([
        slot_needed, other,
        [item_unheld, len(held) / max(len(needed), 1), bool(needed) and held == needed,
         recall_needed, min(chase) / span if chase else 0.0, bool(chase),
         (abs(goal[0] - pos[0]) + abs(goal[1] - pos[1])) / span if goal else 0.0, goal is not None],
    ]).astype(np.float32)


@pytest.mark.parametrize("env_id", EMBODIED_IDS)
def test_embodied_privileged_features_match_each_single_envs_hidden_state(env_id):
    kw = {"length": 40} if "CueCorridor" in env_id else {}
    vec = gym.make_vec(env_id, num_envs=N, vectorization_mode="vector_entry_point", **kw)
    singles = [gym.make(env_id, **kw) for _ in range(N)]
    capacity = singles[0].unwrapped.config.capacity
    obs, _ = vec.reset(seed=3)
    for i, env in enumerate(singles):
        env.reset(seed=3 + i)
    rng = np.random.default_rng(1)
    assert vec.privileged().shape == (N, embodied_privileged_size(capacity))
    goal_seen = needed_held = False
    for step in range(300):
        got = vec.privileged()
        for i, env in enumerate(singles):
            want = embodied_expected_from_state(env.unwrapped.get_state(), capacity)
            np.testing.assert_allclose(got[i], want, rtol=1e-6, err_msg=f"step {step} env {i}")
        goal_seen |= bool(got[:, -1].any())
        needed_held |= bool(got[:, :capacity].any())
        obs = step_alike(vec, singles, obs, rng)
    assert needed_held, "a random policy should have stored a needed entity at least once"
    # The corridor's goal is set from the start; ObjectRecall's once cued (Hard cues after 300
    # steps); a random walk seldom carries a moved object in Rearrange.
    if "CueCorridor" in env_id or ("ObjectRecall" in env_id and "-Hard-" not in env_id):
        assert goal_seen
