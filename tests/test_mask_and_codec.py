"""The action mask equals the validity table of DESIGN.md at every step; invalid actions are counted
no-ops; `encode` / `decode` are inverse."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import STREAMING_IDS, expected_mask, make, masked_choice

from memgym.envs import ActionCodec, ItemKind, Op


def _mixed_action(env, obs, rng) -> int:
    """Valid actions that fill the bank (STORE first) and reach the per-item bound (many
    RETRIEVEs), mixed with masked-out and out-of-range actions."""
    mask = obs["action_mask"].astype(bool)
    n = len(mask)
    K = env.config.capacity

    def valid(op):
        block = 1 + (int(op) - 1) * K
        return np.flatnonzero(mask[block : block + K]) + block

    u = rng.random()
    if u < 0.1:
        return int(rng.choice([-1, n, n + 3]))
    if u < 0.2 and not mask.all():
        return int(rng.choice(np.flatnonzero(~mask)))
    for op, p in ((Op.RETRIEVE, 0.45), (Op.EVICT, 0.5), (Op.STORE, 0.9)):
        if u < p and len(valid(op)):
            return int(rng.choice(valid(op)))
    return masked_choice(rng, mask)


@pytest.mark.parametrize("env_id", STREAMING_IDS)
def test_mask_equals_validity_rules_at_every_step(env_id):
    env = make(env_id)
    rng = np.random.default_rng(0)
    seen = {"query": 0, "full": 0, "empty": 0, "bound_spent": 0, "steps": 0}
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            want = expected_mask(env)
            np.testing.assert_array_equal(obs["action_mask"].astype(bool), want)
            assert obs["action_mask"].dtype == np.int8
            masks = env.action_masks()
            assert masks.dtype == bool
            np.testing.assert_array_equal(masks, want)
            state = env.get_state()
            seen["query"] += state["item_kind"] == ItemKind.QUERY
            seen["full"] += bool(state["slot_occupied"].all())
            seen["empty"] += not state["slot_occupied"].any()
            seen["bound_spent"] += state["inner_ops"] == env.config.max_inner_ops
            seen["steps"] += 1
            obs, _, done, truncated, _ = env.step(_mixed_action(env, obs, rng))
            assert not truncated
    # The walk covered every branch of the table, so the comparison above was not vacuous.
    assert all(v > 0 for v in seen.values()), seen


def _snapshot(env):
    b = env.bank
    return (
        env.t,
        b.embedding.copy(), b.occupied.copy(), b.content.copy(), b.written_at.copy(),
        b.used_at.copy(), b.reads.copy(), b.edits.copy(),
        env._recall.copy(), env._recall_valid,
    )


@pytest.mark.parametrize("env_id", [i for i in STREAMING_IDS if "-Medium-" in i])
def test_invalid_action_is_a_counted_noop(env_id):
    """Masked-out and out-of-range actions change nothing but the per-item op count and the
    invalid-action counter, until the bound is spent; then they act as SKIP."""
    env = make(env_id)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(3)
    # Walk to a non-query item with a partly filled bank, so both STORE and EDIT slots exist.
    while not (
        env.get_state()["item_kind"] != ItemKind.QUERY and 0 < env.bank.size < env.config.capacity
    ):
        obs, *_ = env.step(masked_choice(rng, obs["action_mask"]))
    K, n = env.config.capacity, env.action_space.n
    occupied = int(np.flatnonzero(env.bank.occupied)[0])
    free = int(np.flatnonzero(~env.bank.occupied)[0])
    invalid = [env.encode(Op.STORE, occupied), env.encode(Op.EDIT, free), -1, n, 2**40]
    assert not env.action_masks()[invalid[:2]].any()
    before = _snapshot(env)
    writes, edits = env.metrics.writes, env.metrics.edits
    for i in range(env.config.max_inner_ops):
        count = env.metrics.invalid_actions
        obs, reward, terminated, truncated, info = env.step(invalid[i % len(invalid)])
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["invalid_action"] is True
        assert env.metrics.invalid_actions == count + 1
        assert env.get_state()["inner_ops"] == i + 1
        after = _snapshot(env)
        for x, y in zip(before, after):
            np.testing.assert_array_equal(x, y)
        # The observation reports the spent budget.
        assert obs["item"][env.config.dim + 6] == pytest.approx(1 - (i + 1) / env.config.max_inner_ops)
    # Bound spent: EVICT/RETRIEVE are masked out, and the next invalid action advances as SKIP.
    assert not env.action_masks()[1 + 2 * K :].any()
    t, size = env.t, env.bank.size
    obs, reward, terminated, truncated, info = env.step(invalid[-1])
    assert env.t == t + 1 and env.bank.size == size
    assert env.metrics.invalid_actions == env.config.max_inner_ops + 1
    assert reward == 0.0 and info["invalid_action"] is False
    assert (env.metrics.writes, env.metrics.edits) == (writes, edits)  # the fallback wrote nothing


@pytest.mark.parametrize("capacity", [1, 3, 8])
@pytest.mark.parametrize("num_world_actions", [1, 4])
def test_encode_decode_round_trip(capacity, num_world_actions):
    codec = ActionCodec(capacity, num_world_actions)
    assert codec.n == num_world_actions + 4 * capacity
    decoded = [codec.decode(a) for a in range(codec.n)]
    assert len(set(decoded)) == codec.n  # decode is injective
    for a, (op, slot) in enumerate(decoded):
        if a < num_world_actions:
            assert op is Op.SKIP and slot == -a
        else:
            assert codec.encode(op, slot) == a
    for op in (Op.STORE, Op.EDIT, Op.EVICT, Op.RETRIEVE):
        for slot in range(capacity):
            a = codec.encode(op, slot)
            assert codec.decode(a) == (op, slot)
            # Blocks of K in Op order after the world actions (what the heuristics rely on).
            assert a == num_world_actions + (int(op) - 1) * capacity + slot
    assert codec.encode(Op.SKIP) == 0 and codec.decode(0) == (Op.SKIP, 0)
    for bad in (-1, codec.n):
        with pytest.raises(ValueError, match="out of range"):
            codec.decode(bad)
    with pytest.raises(ValueError, match="out of range"):
        codec.encode(Op.STORE, capacity)


def test_env_encode_decode_every_action(streaming_id):
    env = make(streaming_id)
    K = env.config.capacity
    assert env.action_space.n == 1 + 4 * K
    for a in range(env.action_space.n):
        op, slot = env.decode(a)
        assert env.encode(op, max(slot, 0)) == a
