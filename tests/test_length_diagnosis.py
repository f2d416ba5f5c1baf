"""`memgym.benchmarks.length_diagnosis`: the observation changes it evaluates a policy under."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import memgym.envs  # noqa: F401
from memgym.benchmarks.length_diagnosis import AGES, ClippedSlotFeatures, SlotFeatureRange
from memgym.envs.bank import NUM_SLOT_FEATURES
from memgym.policies import batch_observations


def test_length_diagnosis_clips_only_the_named_slot_features():
    class Echo:  # hands back what it was shown
        name, needs_state = "echo", False

        def reset(self, n, seed=None): ...

        def episode_start(self, i): ...

        def act(self, obs, states=None):
            self.seen = obs
            return np.zeros(len(obs["action_mask"]), np.int64)

    env = gym.make("memgym/Conflict-Medium-v0")
    obs, _ = env.reset(seed=0)
    for _ in range(40):  # some writes, so ages and counts are nonzero
        obs, *_ = env.step(env.unwrapped.encode(1, 0) if obs["action_mask"][1] else 0)
    batch = batch_observations([obs])
    echo = Echo()
    recorder = SlotFeatureRange(echo)
    recorder.act(batch)
    high = recorder.high.copy()
    assert (high == batch["slots"][0, :, -NUM_SLOT_FEATURES:].max(0)).all()
    clipped = ClippedSlotFeatures(echo, np.zeros_like(high), AGES, "ages at 0")
    clipped.act(batch)
    shown = echo.seen["slots"][..., -NUM_SLOT_FEATURES:]
    original = batch["slots"][..., -NUM_SLOT_FEATURES:]
    for c in range(NUM_SLOT_FEATURES):
        if c in AGES:
            assert (shown[..., c] <= 0).all() and (original[..., c] > 0).any()
        else:
            assert (shown[..., c] == original[..., c]).all()
