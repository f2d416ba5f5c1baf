"""The native vector envs of the embodied family are step for step identical to N single envs with
the same seeds, across (same-step) autoresets, under random (also invalid) actions and under the
oracle; and the trainers pick them up."""

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


def run_against_singles(env_id, num_envs, steps, choose, seed=0, reseed=None, **kw):
    """Step `make_vec` and `num_envs` single envs with the same actions; assert equal outputs.
    `choose(obs_list, singles, rng)` picks the actions from the singles' observations.
    `reseed`: `{step: seeds}`, a `reset(seed=seeds)` of all of them before that step (a `None`
    seed resets that env without reseeding it)."""
    vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)
    singles = [gym.make(env_id, **kw).unwrapped for _ in range(num_envs)]
    vobs, _ = vec.reset(seed=seed)
    sobs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(seed)
    episodes = successes = 0
    for step in range(steps):
        if reseed and step in reseed:
            vobs, _ = vec.reset(seed=reseed[step])
            sobs = [env.reset(seed=s)[0] for s, env in zip(reseed[step], singles)]
        assert vec.observation_space.contains(vobs)
        for i, o in enumerate(sobs):
            for k in o:
                np.testing.assert_array_equal(vobs[k][i], o[k], err_msg=f"step {step} env {i} {k}")
        actions = choose(sobs, singles, rng)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
        assert not vtrunc.any()
        for i, env in enumerate(singles):
            obs, reward, terminated, _, info = env.step(int(actions[i]))
            assert (reward, terminated) == (vrew[i], vterm[i]), f"step {step} env {i}"
            if not terminated:
                sobs[i] = obs
                assert info["invalid_action"] == vinfo["invalid_action"][i]
                assert "final_obs" not in vinfo or not vinfo["_final_obs"][i]
                continue
            # SAME_STEP autoreset: the ended episode's last observation and metrics are in the
            # info, the returned observation starts the next episode.
            for k in obs:
                np.testing.assert_array_equal(vinfo["final_obs"][i][k], obs[k])
            final = vinfo["final_info"]
            assert vinfo["_final_info"][i] and final["_metrics"][i]
            for name, value in info["metrics"].items():
                assert value == final["metrics"][name][i], (name, step, i)
            episodes += 1
            successes += info["metrics"]["success"]
            sobs[i], _ = env.reset()
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


def test_layouts_laid_out_in_chunks_equal_layouts_laid_out_at_once(monkeypatch):
    """Long corridors draw large blocks of uniforms, which the vector env lays out a few rows at
    a time: chunking changes nothing (here one row per chunk, across resets and autoresets)."""
    import memgym.envs.embodied_vector as embodied_vector

    monkeypatch.setattr(embodied_vector, "_LAYOUT_FLOATS", 1)
    episodes, _ = run_against_singles("memgym/CueCorridor-Easy-v0", 3, 200, random_actions)
    assert episodes >= 3


def test_episodes_laid_out_ahead_are_the_episodes_drawn_on_demand(monkeypatch):
    """Autoresets copy in episodes laid out ahead in batches (`EpisodesAhead`): with batches of
    two out of five envs some rows find theirs ready and some draw on demand, and a mid-run
    `reset` that reseeds some envs drops theirs while the others keep the next of their stream."""
    import memgym.envs.embodied_vector as embodied_vector

    monkeypatch.setattr(embodied_vector, "_AHEAD_BATCH", 2)
    episodes, _ = run_against_singles("memgym/ObjectRecall-Easy-v0", 5, 300, random_actions,
                                      reseed={150: [7, None, 8, None, None]})
    assert episodes >= 5


@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Hard-" not in i])
def test_one_layout_call_for_many_episodes_equals_one_call_each(env_id):
    """`layouts` of a stack of blocks is the stack of each block's layout: a vector env's
    batched resets draw exactly the episodes its single envs would."""
    env = gym.make(env_id, **kwargs_for(env_id)).unwrapped
    cls, cfg = type(env), env.config
    blocks = np.stack([env.draw_episode(seed) for seed in range(5)])
    together = cls.layouts(cfg, blocks)
    for r in range(5):
        alone = cls.layouts(cfg, blocks[r : r + 1])
        part = together.row(r)
        for name in ("pos", "entity_cells", "embeddings", "num_entities", "noise"):
            np.testing.assert_array_equal(getattr(part, name), getattr(alone, name), err_msg=name)
        assert part.task.keys() == alone.task.keys()
        for k in alone.task:
            np.testing.assert_array_equal(part.task[k], alone.task[k], err_msg=k)


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
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    assert obs["action_mask"].shape == (4, vec.single_action_space.n)
    assert vec.action_space.shape == (4,)
    with pytest.raises(ValueError, match="seeds"):
        vec.reset(seed=[1, 2])


def test_trainers_use_the_native_vector_env():
    from memgym.trainers.vector import make_vector_env

    vec = make_vector_env("memgym/CueCorridor-Easy-v0", {}, 4)
    assert type(vec).__name__ == "CueCorridorVectorEnv"
