"""The native vector envs of the embodied family are step for step identical to N single envs with
the same seeds, across autoresets, under random (also invalid) actions and under the oracle."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import memgym.envs
from memgym.policies import EMBODIED_BASELINES, batch_observations

EMBODIED_IDS = memgym.envs.registered_ids("embodied")
SHORT = {"length": 40}  # CueCorridor: walks that reach the doors


def kwargs_for(env_id: str) -> dict:
    return SHORT if "CueCorridor" in env_id and "-Easy-" not in env_id else {}


def run_against_singles(env_id, num_envs, steps, choose, seed=0, **kw):
    """Step `make_vec` and `num_envs` single envs with the same actions; assert equal outputs.
    `choose(obs_list, singles, rng)` picks the actions from the singles' observations."""
    vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
    singles = [gym.make(env_id, **kw).unwrapped for _ in range(num_envs)]
    vobs, _ = vec.reset(seed=seed)
    sobs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(seed)
    pending = np.zeros(num_envs, bool)
    episodes = successes = 0
    for step in range(steps):
        assert vec.observation_space.contains(vobs)
        for i, o in enumerate(sobs):
            for k in o:
                np.testing.assert_array_equal(vobs[k][i], o[k], err_msg=f"step {step} env {i} {k}")
        actions = choose(sobs, singles, rng)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
        assert not vtrunc.any()
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP autoreset: this step starts the next episode
                sobs[i], _ = env.reset()
                pending[i] = False
                assert vrew[i] == 0.0 and not vterm[i]
                continue
            sobs[i], reward, terminated, _, info = env.step(int(actions[i]))
            assert (reward, terminated) == (vrew[i], vterm[i]), f"step {step} env {i}"
            assert info["invalid_action"] == vinfo["invalid_action"][i]
            if terminated:
                pending[i] = True
                episodes += 1
                successes += info["metrics"]["success"]
                assert vinfo["_metrics"][i]
                for name, value in info["metrics"].items():
                    assert value == vinfo["metrics"][name][i], (name, step, i)
            else:
                assert "metrics" not in vinfo or not vinfo["_metrics"][i]
    return episodes, successes


def random_actions(obs_list, singles, rng):
    """Valid actions mostly, biased to memory ops and RIGHT; some masked-out and out-of-range."""
    out = []
    for o in obs_list:
        mask, n = o["action_mask"].astype(bool), len(o["action_mask"])
        u = rng.random()
        if u < 0.1:
            out.append(int(rng.choice([-1, n, int(rng.integers(n))])))
        elif u < 0.5 and mask[5:].any():
            out.append(int(rng.choice(np.flatnonzero(mask[5:]) + 5)))
        elif u < 0.75 and mask[2]:
            out.append(2)
        else:
            out.append(int(rng.choice(np.flatnonzero(mask))))
    return np.array(out)


@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Hard-" not in i])
def test_vector_equals_singles_under_random_actions(env_id):
    episodes, _ = run_against_singles(env_id, 3, 400, random_actions, **kwargs_for(env_id))
    assert episodes >= 3  # autoresets were crossed


@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Easy-" in i])
def test_vector_equals_singles_under_the_oracle(env_id):
    """Successful episodes too: stores, reads, pick-ups, declarations and doors all match."""
    oracle = EMBODIED_BASELINES["oracle"]()
    oracle.reset(3, seed=0)

    def choose(obs_list, singles, rng):
        return oracle.act(batch_observations(obs_list), [e.get_state() for e in singles])

    episodes, successes = run_against_singles(env_id, 3, 300, choose, seed=11)
    assert episodes >= 3 and successes == episodes


def test_vector_env_declares_its_autoreset_mode_and_spaces():
    vec = gym.make_vec("memgym/Rearrange-Medium-v0", num_envs=4)
    assert type(vec).__name__ == "RearrangeVectorEnv"
    assert vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    assert obs["action_mask"].shape == (4, vec.single_action_space.n)
    assert vec.action_space.shape == (4,)
    with pytest.raises(ValueError, match="seeds"):
        vec.reset(seed=[1, 2])
