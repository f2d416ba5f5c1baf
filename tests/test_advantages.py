"""Known-answer tests of the two advantage estimators (numbers worked out by hand below)."""

import numpy as np
import pytest

from memgym.trainers.advantages import gae, group_advantages


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


def test_group_advantages_rejects_a_ragged_batch():
    with pytest.raises(ValueError):
        group_advantages(np.zeros(6), group_size=4)
