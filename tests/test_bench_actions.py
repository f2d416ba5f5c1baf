"""The speed benchmarks' random policy: valid actions only, each valid one about equally often."""

from __future__ import annotations

import numpy as np

from memgym.benchmarks.envs_speed import RandomValidActions


def test_random_valid_actions_are_valid():
    rng = np.random.default_rng(3)
    num_envs, num_actions = 64, 9
    masks = (rng.random((40, num_envs, num_actions)) < 0.3).astype(np.int8)
    masks[:, :, 4] = 1  # every row has a valid action
    pick = RandomValidActions(num_envs, num_actions, seed=1)
    for i, mask in enumerate(masks):
        assert mask[np.arange(num_envs), pick(mask, i)].all()


def test_random_valid_actions_are_uniform_over_the_valid_ones():
    num_envs, num_actions = 64, 9
    pick = RandomValidActions(num_envs, num_actions, seed=1, tables=40)
    mask = np.ones((num_envs, num_actions), np.int8)
    mask[:, 0] = 0
    draws = np.concatenate([pick(mask, i) for i in range(40)])  # 2,560 picks
    freq = np.bincount(draws, minlength=num_actions) / len(draws)
    assert freq[0] == 0
    assert np.all(np.abs(freq[1:] - 1 / 8) < 0.03), freq
