"""Known-answer tests of the two advantage estimators (numbers worked out by hand below)."""

import numpy as np
import pytest

from memgym.trainers.advantages import gae, group_advantages, group_to_go_advantages


def test_gae_single_episode_ending_in_the_rollout():
    # gamma=0.9, lambda=0.8; the episode terminates at t=2, so last_values (9.0) must be ignored.
    #   t=2: delta = 2 - 0.1                 = 1.9                       A2 = 1.9
    #   t=1: delta = 0 + 0.9*0.1 - 0.2       = -0.11   A1 = -0.11 + 0.72*1.9   = 1.258
    #   t=0: delta = 1 + 0.9*0.2 - 0.5       = 0.68    A0 = 0.68 + 0.72*1.258  = 1.58576
    rewards = np.array([[1.0], [0.0], [2.0]], np.float32)
    values = np.array([[0.5], [0.2], [0.1]], np.float32)
    dones = np.array([[0.0], [0.0], [1.0]], np.float32)
    adv, ret = gae(rewards, values, dones, np.array([9.0], np.float32), gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv[:, 0], [1.58576, 1.258, 1.9], rtol=1e-5)
    np.testing.assert_allclose(ret[:, 0], [2.08576, 1.458, 2.0], rtol=1e-5)


def test_gae_bootstraps_from_last_value_and_cuts_at_episode_boundaries():
    # Two envs. Env 0 ends at t=0 and a new episode runs to the end of the rollout (bootstrapped
    # from last value 1.0). Env 1 never ends.
    rewards = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    values = np.array([[0.0, 0.0], [0.5, 0.0]], np.float32)
    dones = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    last = np.array([1.0, 2.0], np.float32)
    adv, _ = gae(rewards, values, dones, last, gamma=0.5, lam=1.0)
    # env 0: t=1: 0 + 0.5*1.0 - 0.5 = 0.0 ; t=0: 1 - 0 = 1.0 (no bootstrap across the boundary)
    # env 1: t=1: 0 + 0.5*2.0 - 0 = 1.0 ; t=0: 0 + 0.5*0 - 0 + 0.5*1.0 = 0.5
    np.testing.assert_allclose(adv, [[1.0, 0.5], [0.0, 1.0]], atol=1e-6)


def test_gae_with_lambda_one_equals_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    r = rng.random((6, 1)).astype(np.float32)
    v = rng.random((6, 1)).astype(np.float32)
    d = np.zeros((6, 1), np.float32)
    adv, ret = gae(r, v, d, np.array([0.3], np.float32), gamma=0.9, lam=1.0)
    disc = [sum(0.9**k * r[t + k, 0] for k in range(6 - t)) + 0.9 ** (6 - t) * 0.3 for t in range(6)]
    np.testing.assert_allclose(ret[:, 0], disc, rtol=1e-5)


def test_group_advantages_by_hand():
    returns = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 3.0, 1.0, 2.0, 2.0])
    adv = group_advantages(returns, group_size=4)
    # group 1: mean 0.5, std 0.5 -> +-1 ; group 2: no spread -> 0 ; group 3: mean 2, std sqrt(.5)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(adv, [1, -1, -1, 1, 0, 0, 0, 0, 1 / s, -1 / s, 0, 0], rtol=1e-5)


def test_group_advantages_centred_only():
    # A group that differs only by a small cost keeps that small scale; a spread-less group is 0.
    returns = np.array([1.0, 0.0, 0.0, 1.0, -0.002, -0.001, -0.001, 0.0, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(returns, group_size=4, scale=False)
    np.testing.assert_allclose(
        adv, [0.5, -0.5, -0.5, 0.5, -0.001, 0.0, 0.0, 0.001, 0, 0, 0, 0], atol=1e-7)
    scaled = group_advantages(returns, group_size=4)
    assert abs(scaled[7]) > 1.0  # what scaling does to the cost-only group


def test_group_advantages_rejects_a_ragged_batch():
    with pytest.raises(ValueError):
        group_advantages(np.zeros(6), group_size=4)


def test_group_to_go_advantages_by_hand():
    # One group of two envs on the same stream of three positions (0, 1, 2). Env 0 spends two
    # steps on position 1 (an inner op, then the advancing step). Rewards arrive at t=1 for env 1
    # (position 1) and at the last step of each.
    #   env 0: positions 0 1 1 2, rewards 0 0 1 1  -> to-go 2 2 2 1
    #   env 1: positions 0 1 2 -, rewards 0 1 0 -  -> to-go 1 1 0 (t=3 invalid)
    position = np.array([[0, 0], [1, 1], [1, 2], [2, 0]], np.float32)
    rewards = np.array([[0, 0], [0, 1], [1, 0], [1, 0]], np.float32)
    valid = np.array([[1, 1], [1, 1], [1, 1], [1, 0]], bool)
    adv = group_to_go_advantages(rewards, valid, position, group_size=2)
    # position 0: first to-go 2 vs 1 -> mean 1.5, std 0.5 -> +1 / -1
    # position 1: 2 vs 1 -> +1 / -1 (env 0's second step there: to-go 2 -> +1)
    # position 2: 1 vs 0 -> +1 / -1
    np.testing.assert_allclose(adv, [[1, -1], [1, -1], [1, -1], [1, 0]], atol=1e-6)
    # Centred only: each position's spread is 1 (2 vs 1, 1 vs 0), so +-0.5.
    centred = group_to_go_advantages(rewards, valid, position, group_size=2, scale=False)
    np.testing.assert_allclose(centred, [[0.5, -0.5], [0.5, -0.5], [0.5, -0.5], [0.5, 0]],
                               atol=1e-6)


def test_group_to_go_advantages_ignore_earlier_rewards_and_lone_positions():
    # Both members earned 1 at position 0 and nothing after: no credit for what came before.
    # A position only one member reached (env 0, position 2) gives 0.
    position = np.array([[0, 0], [1, 1], [2, 1]], np.float32)
    rewards = np.array([[1, 1], [0, 0], [0, 0]], np.float32)
    valid = np.array([[1, 1], [1, 1], [1, 0]], bool)
    adv = group_to_go_advantages(rewards, valid, position, group_size=2)
    np.testing.assert_allclose(adv, np.zeros((3, 2)), atol=1e-6)
    with pytest.raises(ValueError):
        group_to_go_advantages(rewards, valid, position, group_size=4)


def test_gae_discounts_only_steps_that_advance_the_clock():
    # Three steps of one episode; step 1 is a memory op on the same item (no advance).
    # gamma=0.5, lambda=1, values 0, reward 1 at the end:
    #   t=2 (advance): A = 1
    #   t=1 (no advance): A = 0 + 1.0 * A2 = 1        (per-step discounting would give 0.5)
    #   t=0 (advance): A = 0 + 0.5 * A1 = 0.5         (per-step: 0.25)
    rewards = np.array([[0.0], [0.0], [1.0]], np.float32)
    values = np.zeros((3, 1), np.float32)
    dones = np.array([[0.0], [0.0], [1.0]], np.float32)
    advanced = np.array([[1], [0], [1]], bool)
    adv, _ = gae(rewards, values, dones, np.zeros(1, np.float32), 0.5, 1.0, advanced)
    np.testing.assert_allclose(adv[:, 0], [0.5, 1.0, 1.0], atol=1e-6)
    per_step, _ = gae(rewards, values, dones, np.zeros(1, np.float32), 0.5, 1.0)
    np.testing.assert_allclose(per_step[:, 0], [0.25, 0.5, 1.0], atol=1e-6)


def test_group_to_go_advantages_discount_the_reward_to_come():
    # Three members, two positions: member 0 earns 1 at its second step, member 1 nothing,
    # member 2 earns 1 at its first step. Undiscounted, members 0 and 2 tie at position 0; with
    # a discount of 0.5 between the steps, member 0's to-go there is 0.5 and member 2 ranks
    # above it: the reward that comes sooner counts more.
    position = np.array([[0, 0, 0], [1, 1, 1]], np.float32)
    rewards = np.array([[0, 0, 1], [1, 0, 0]], np.float32)
    valid = np.ones((2, 3), bool)
    discounts = np.full((2, 3), 0.5)
    adv = group_to_go_advantages(rewards, valid, position, 3, discounts=discounts)
    # position 0 to-go: 0.5, 0, 1 -> mean 0.5, std sqrt(1/6)
    s = np.sqrt(1 / 6)
    np.testing.assert_allclose(adv[0], [0.0, -0.5 / s, 0.5 / s], rtol=1e-5)
    undiscounted = group_to_go_advantages(rewards, valid, position, 3)
    np.testing.assert_allclose(undiscounted[0], [1 / np.sqrt(2), -np.sqrt(2), 1 / np.sqrt(2)],
                               rtol=1e-5)
