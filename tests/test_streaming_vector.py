"""The native vector envs of the streaming family are step for step identical to N single envs with
the same seeds: observations, rewards, terminations, infos and episode metrics, across same-step
autoresets, under random actions that include invalid and out-of-range ones."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import memgym.envs
from memgym.trainers.vector import make_vector_env

STREAMING_IDS = memgym.envs.registered_ids("streaming")
# Short episodes, so that one test crosses several autoresets; blocks shorter than an episode, so
# that refills happen mid-episode too.
SHORT = {"length": 60}
NUM_ENVS = 4


def kwargs_for(env_id: str) -> dict:
    if "-Hard-" in env_id:
        return {"length": 200}  # up to 24 facts and 24 queries need room (at 160, ~1 seed in 20 fails)
    return dict(SHORT)


def random_actions(obs, rng) -> np.ndarray:
    """Mostly valid actions (biased to memory ops, so banks fill, get read and get edited);
    some masked-out and some out of range."""
    out = []
    for mask in obs["action_mask"]:
        n, valid = len(mask), np.flatnonzero(mask)
        u = rng.random()
        if u < 0.08:
            out.append(int(rng.choice([-1, n, int(rng.integers(n))])))
        elif u < 0.55 and len(valid) > 1:
            out.append(int(rng.choice(valid[1:])))
        else:
            out.append(int(rng.choice(valid)))
    return np.array(out)


def assert_obs_equal(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys(), where
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, f"{where} {k}"
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{where} {k}")


def run_against_singles(env_id: str, steps: int, seed: int = 0, block: int = 16,
                        vector_kw: dict | None = None, **kw):
    """Step the vector env (options of its own in `vector_kw`) and a same-step-autoreset
    `SyncVectorEnv` of single envs with the same actions; assert identical outputs. Returns the
    episodes that ended."""
    vec = gym.make_vec(env_id, num_envs=NUM_ENVS, vectorization_mode="vector_entry_point",
                       block=block, **(vector_kw or {}), **kw)
    ref = SyncVectorEnv([lambda: gym.make(env_id, **kw) for _ in range(NUM_ENVS)],
                        autoreset_mode=AutoresetMode.SAME_STEP)
    vobs, _ = vec.reset(seed=seed)
    robs, _ = ref.reset(seed=seed)
    rng = np.random.default_rng(seed)
    episodes = 0
    for step in range(steps):
        assert_obs_equal(vobs, robs, f"step {step}")
        np.testing.assert_array_equal(vec.unwrapped.action_masks(), robs["action_mask"] == 1)
        actions = random_actions(robs, rng)
        vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
        robs, rrew, rterm, rtrunc, rinfo = ref.step(actions)
        where = f"step {step}"
        np.testing.assert_array_equal(vrew, rrew, err_msg=where)
        np.testing.assert_array_equal(vterm, rterm, err_msg=where)
        np.testing.assert_array_equal(vtrunc, rtrunc, err_msg=where)
        running = ~rterm
        np.testing.assert_array_equal(vinfo["_invalid_action"], running, err_msg=where)
        np.testing.assert_array_equal(vinfo["invalid_action"][running],
                                      rinfo["invalid_action"][running], err_msg=where)
        if rterm.any():
            episodes += int(rterm.sum())
            np.testing.assert_array_equal(vinfo["_final_obs"], rterm)
            rm, vm = rinfo["final_info"]["metrics"], vinfo["final_info"]["metrics"]
            for i in np.flatnonzero(rterm):
                assert_obs_equal(vinfo["final_obs"][i], rinfo["final_obs"][i], f"{where} final {i}")
                for name in rm:
                    if not name.startswith("_"):
                        assert vm[name][i] == rm[name][i], (where, i, name)
            assert vm.keys() == rm.keys()
        else:
            assert "final_obs" not in vinfo
    return episodes


@pytest.mark.parametrize("env_id", STREAMING_IDS)
def test_vector_equals_singles_under_random_actions(env_id):
    kw = kwargs_for(env_id)
    episodes = run_against_singles(env_id, 8 * kw["length"], **kw)
    assert episodes >= 2 * NUM_ENVS  # every env crossed at least two autoresets


@pytest.mark.parametrize("env_id", ["memgym/Conflict-Medium-v0", "memgym/MultiHop-Easy-v0"])
def test_vector_equals_singles_at_preset_length_and_block_sizes(env_id):
    """The presets' own lengths, with blocks longer and shorter than an episode."""
    for block in (1, 64, 1000):
        run_against_singles(env_id, 250, seed=3, block=block)


def test_vector_env_contract():
    vec = gym.make_vec("memgym/Retrieval-Medium-v0", num_envs=3,
                       vectorization_mode="vector_entry_point")
    assert type(vec).__name__ == "RetrievalVectorEnv"
    assert vec.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    obs, _ = vec.reset(seed=[5, 6, 7])
    assert vec.observation_space.contains(obs)
    assert vec.action_masks().shape == (3, vec.single_action_space.n)
    with pytest.raises(ValueError, match="seeds"):
        vec.reset(seed=[1, 2])
    # Returned observations are copies: later steps never change them.
    before = {k: v.copy() for k, v in obs.items()}
    vec.step(np.zeros(3, np.int64))
    for k in obs:
        np.testing.assert_array_equal(obs[k], before[k])
    # Picklable mid-episode (trainer checkpoints), and the copy continues identically.
    clone = pickle.loads(pickle.dumps(vec))
    actions = np.array([0, 1, 0])
    a, b = vec.step(actions), clone.step(actions)
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("threads", [2, 3])
def test_rows_split_over_threads_change_nothing(threads):
    """The step's kernels run on disjoint rows in several threads (3 threads for 4 envs: uneven
    parts, one of a single row); the outputs stay those of the single envs."""
    assert run_against_singles("memgym/MultiHop-Medium-v0", 400, seed=1,
                               vector_kw={"threads": threads}, **SHORT) >= NUM_ENVS
    vec = gym.make_vec("memgym/Conflict-Medium-v0", num_envs=NUM_ENVS,
                       vectorization_mode="vector_entry_point", threads=threads)
    vec.reset(seed=0)
    vec.step(np.zeros(NUM_ENVS, np.int64))  # the thread pool is running now
    clone = pickle.loads(pickle.dumps(vec))  # and is not part of the state
    actions = np.ones(NUM_ENVS, np.int64)
    a, b = vec.step(actions), clone.step(actions)
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    vec.close()
    with pytest.raises(ValueError, match="threads"):
        gym.make_vec("memgym/Conflict-Medium-v0", num_envs=2,
                     vectorization_mode="vector_entry_point", threads=0)


def test_episodes_that_end_together_in_every_thread():
    """Only SKIP: every env ends its episode at the same step, in both threads' rows at once,
    and the next episodes start there; threads or not, the same outputs."""
    kw = dict(num_envs=6, vectorization_mode="vector_entry_point", length=60)
    one = gym.make_vec("memgym/Conflict-Medium-v0", threads=1, **kw)
    two = gym.make_vec("memgym/Conflict-Medium-v0", threads=2, **kw)
    a, _ = one.reset(seed=4)
    b, _ = two.reset(seed=4)
    skip = np.zeros(6, np.int64)
    ends = 0
    for step in range(130):
        a, ra, ta, _, ia = one.step(skip)
        b, rb, tb, _, ib = two.step(skip)
        assert_obs_equal(a, b, f"step {step}")
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta, tb)
        if ta.any():
            assert ta.all()  # together
            ends += 1
            for i in range(6):
                assert_obs_equal(ia["final_obs"][i], ib["final_obs"][i], f"step {step} final {i}")
            for name, v in ia["final_info"]["metrics"].items():
                np.testing.assert_array_equal(v, ib["final_info"]["metrics"][name])
    assert ends == 2
    two.close()


def test_views_instead_of_copies():
    """`copy=False` returns the env's own buffers: the values a copying env returns, overwritten
    in place by later steps (which is the point: no copy of the whole observation per step)."""
    kw = dict(num_envs=NUM_ENVS, vectorization_mode="vector_entry_point")
    views = gym.make_vec("memgym/Retrieval-Medium-v0", copy=False, **kw)
    copies = gym.make_vec("memgym/Retrieval-Medium-v0", **kw)
    v, _ = views.reset(seed=2)
    c, _ = copies.reset(seed=2)
    rng = np.random.default_rng(0)
    first_item = v["item"]
    for step in range(50):
        assert_obs_equal(v, c, f"step {step}")
        actions = random_actions(c, rng)
        v = views.step(actions)[0]
        c = copies.step(actions)[0]
    assert v["item"] is first_item  # the same buffer every step
    assert v["item"] is views.unwrapped.ob_item


def test_a_batch_of_the_wrong_size_is_refused():
    vec = gym.make_vec("memgym/Conflict-Medium-v0", num_envs=3,
                       vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="expected 3 actions"):
        vec.step(np.zeros(4, np.int64))


def test_trainers_use_the_native_vector_env():
    env = make_vector_env("memgym/Conflict-Easy-v0", {}, 2)
    assert type(env).__name__ == "ConflictVectorEnv"
    assert env.copy is False  # rollouts copy into their own storage: views save a copy a step
