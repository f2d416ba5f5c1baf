"""`ExplicitMemory` turns POPGym and MiniGrid envs into memory-policy tasks: the contract holds
(the env's actions, then slot ops that do not advance it, bounded and masked), the checkers pass,
and a scripted policy that uses only the bank reaches POPGym's maximum return on RepeatPrevious."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from memgym.envs import ConfigError, Op
from memgym.envs.explicit_memory import ExplicitMemory
from memgym.policies import batch_observations
from memgym.policies.explicit import RepeatPreviousPolicy

repeat_previous = pytest.importorskip("popgym.envs.repeat_previous")

# Accepted checker advice: embeddings are unbounded, `slots` is a K x F matrix on purpose,
# MiniGrid's 7x7 image is what it is. Any other warning fails the checker test.
CHECKER_WARNINGS = (
    "ignore:.*Box observation space (minimum|maximum) value is:UserWarning",
    "ignore:.*unconventional shape:UserWarning",
    "ignore:.*minimal resolution for an image:UserWarning",
    "ignore:.*is different from the unwrapped version:UserWarning",  # checking a wrapper is the point
)


def assert_same(a, b):
    """Bitwise equality of nested step outputs."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def run_episode(env, policy, seed: int):
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action = policy.act(batch_observations([obs]))[0]
        assert obs["action_mask"][action], "the scripted policy only sends valid actions"
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return total, info


@pytest.mark.parametrize("seed", range(10))
def test_scripted_memory_policy_reaches_popgym_max_return_on_repeat_previous(seed):
    """RepeatPreviousEasy (k=4) asks for the suit of the card 3 steps back; its best return is 1.
    The policy keeps a 4-slot ring of cards and reads the oldest: memory alone solves it."""
    env = ExplicitMemory(repeat_previous.RepeatPreviousEasy(), slots=4)
    total, info = run_episode(env, RepeatPreviousPolicy(), seed)
    assert total == pytest.approx(1.0, abs=1e-9)
    m = info["metrics"]
    assert m["return"] == pytest.approx(1.0, abs=1e-9)
    assert m["invalid_actions"] == 0 and m["writes"] == 4 and m["edits"] == m["env_steps"] - 4


def test_without_the_bank_repeat_previous_is_lost():
    """Guards the test above: the same env answered from the current card alone scores far below."""
    env = ExplicitMemory(repeat_previous.RepeatPreviousEasy(), slots=4)
    obs, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(obs["obs"]))
        total += reward
        done = terminated or truncated
    assert total < 0.5


def test_memory_ops_do_not_advance_the_env_and_are_bounded():
    inner = repeat_previous.RepeatPreviousEasy()
    env = ExplicitMemory(inner, slots=3, max_inner_ops=3)
    obs, _ = env.reset(seed=0)
    n_world = inner.action_space.n
    assert env.action_space.n == n_world + 4 * 3
    assert env.decode(n_world) == (Op.STORE, 0) and env.encode(Op.RETRIEVE, 2) == n_world + 11
    cards = len(inner.deck)
    obs, *_ = env.step(env.encode(Op.STORE, 0))
    obs, *_ = env.step(env.encode(Op.RETRIEVE, 0))
    assert len(inner.deck) == cards and env.t == 0  # nothing was dealt
    assert obs["recall"][-1] == 1.0 and obs["recall"][obs["obs"]] == 1.0  # recall is the card
    obs, *_ = env.step(env.encode(Op.EVICT, 0))
    assert not obs["action_mask"][n_world:].any()  # budget spent: only the env's actions remain
    obs, reward, *_, info = env.step(env.encode(Op.STORE, 1))  # invalid now: plays action 0
    assert len(inner.deck) == cards - 1 and env.t == 1 and info["invalid_action"] is False
    assert obs["recall"][-1] == 0.0  # recall is cleared when the env moves


def test_wrapper_rejects_what_it_cannot_wrap():
    with pytest.raises(ConfigError, match="Discrete action space"):
        ExplicitMemory(gym.make("Pendulum-v1"))
    minigrid = pytest.importorskip("minigrid")  # noqa: F841 (registers the envs)
    with pytest.raises(ConfigError, match="obs_key"):
        ExplicitMemory(gym.make("MiniGrid-MemoryS7-v0"))
    with pytest.raises(ConfigError, match="'image'"):
        ExplicitMemory(gym.make("MiniGrid-MemoryS7-v0"), obs_key="imgae")


def _wrapped_envs():
    yield "RepeatPreviousEasy", lambda: ExplicitMemory(repeat_previous.RepeatPreviousEasy(), slots=4)
    pytest.importorskip("minigrid")
    yield "MiniGrid-MemoryS7", lambda: ExplicitMemory(
        gym.make("MiniGrid-MemoryS7-v0"), slots=4, obs_key="image"
    )


@pytest.mark.filterwarnings("error", *CHECKER_WARNINGS)
@pytest.mark.parametrize("which", ["RepeatPreviousEasy", "MiniGrid-MemoryS7"])
def test_checkers_pass(which):
    make = dict(_wrapped_envs())[which]
    gym_check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=True)


@pytest.mark.parametrize("which", ["RepeatPreviousEasy", "MiniGrid-MemoryS7"])
def test_determinism_and_pickling(which):
    make = dict(_wrapped_envs())[which]
    a, b = make(), make()
    obs, _ = a.reset(seed=3)
    b.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(30):  # a few steps in, with memory contents, then fork
        action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        out = a.step(action)
        assert_same(out, b.step(action))
        obs = out[0]
    clone = pickle.loads(pickle.dumps(a))
    done = False
    while not done:  # the copy and the original continue identically, to the episode's end
        action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        out = a.step(action)
        assert_same(out, clone.step(action))
        obs, done = out[0], out[2] or out[3]


def test_minigrid_episode_reports_memory_metrics():
    make = dict(_wrapped_envs())["MiniGrid-MemoryS7"]
    env = make()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(obs["action_mask"]))))
        done = terminated or truncated
    m = info["metrics"]
    assert m["writes"] > 0 and m["retrieves"] > 0 and m["env_steps"] > 0
    assert 0.0 < m["mean_utilisation"] <= 1.0
