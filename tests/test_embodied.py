"""The embodied family: the oracle reaches its bar and the memoryless baselines fall well short, the
action mask follows the contract (moves advance the world, memory ops do not and are bounded), and
each task's rules hold. The generic checks (gymnasium and SB3 `check_env`, seeded determinism,
pickling mid-episode, episodes that always end) run on these ids in `test_registry_envs.py`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import make, masked_choice

import memgym.envs
from memgym.envs import ConfigError, Move, Op
from memgym.envs.grid import Cell
from memgym.evaluation import evaluate
from memgym.policies import EMBODIED_BASELINES, batch_observations
from memgym.policies.networks import build_network, obs_to_torch

EMBODIED_IDS = memgym.envs.registered_ids("embodied")
MEDIUM_IDS = [i for i in EMBODIED_IDS if "-Medium-" in i]
EPISODES = 40


def _success(result) -> float:
    return float(np.mean(result.per_episode["success"]))


@pytest.fixture(scope="module")
def medium_results():
    """Every baseline on every Medium task, the same seeds for all."""
    return {
        (eid, name): evaluate(make_policy(), eid, EPISODES, seed=1000, progress=False)
        for eid in MEDIUM_IDS
        for name, make_policy in EMBODIED_BASELINES.items()
    }


@pytest.mark.parametrize("env_id", MEDIUM_IDS)
def test_oracle_reaches_the_goal_at_medium(env_id, medium_results):
    ep = medium_results[(env_id, "oracle")].per_episode
    assert _success(medium_results[(env_id, "oracle")]) >= 0.95
    assert ep["return"] == ep["success"]  # reward 1 exactly when the goal is reached
    assert ep["lost_items"] == [0] * EPISODES  # what was needed was in memory when needed
    assert ep["invalid_actions"] == [0] * EPISODES


@pytest.mark.parametrize("env_id", MEDIUM_IDS)
@pytest.mark.parametrize("baseline", ["memoryless", "random_store"])
def test_baselines_without_good_memory_fall_well_short(env_id, baseline, medium_results):
    oracle = _success(medium_results[(env_id, "oracle")])
    other = _success(medium_results[(env_id, baseline)])
    assert other <= 0.5 and other <= oracle - 0.45, (baseline, other, oracle)


def test_memoryless_corridor_guesses_uniformly(medium_results):
    """Guards the gap above: without memory the door choice is a fair 1-in-3 guess, not worse."""
    ep = medium_results[("memgym/CueCorridor-Medium-v0", "memoryless")].per_episode
    assert 0.15 <= np.mean(ep["success"]) <= 0.55
    assert ep["lost_items"] == [1] * EPISODES  # the cue was never kept


@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Easy-" in i])
def test_oracle_is_perfect_at_easy(env_id):
    result = evaluate(EMBODIED_BASELINES["oracle"](), env_id, 20, seed=7, progress=False)
    assert result.per_episode["success"] == [1.0] * 20


@pytest.mark.slow
@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Hard-" in i])
def test_oracle_at_hard(env_id):
    assert _success(evaluate(EMBODIED_BASELINES["oracle"](), env_id, 20, seed=3, progress=False)) >= 0.95


# ---- the action contract ----------------------------------------------------------------------


def expected_mask(env) -> np.ndarray:
    """The embodied validity table, written out independently of the env's implementation."""
    s = env.get_state()
    cells, (y, x) = s["cells"], s["pos"]
    inner_ok = s["inner_ops"] < env.config.max_inner_ops
    writable = s["item_entity"] >= 0 and not s["item_is_query"]
    occupied = s["slot_occupied"]
    mask = np.zeros(env.action_space.n, bool)
    for a in range(env.action_space.n):
        op, slot = env.decode(a)
        if op is Op.SKIP:
            dy, dx = {0: (0, 0), 1: (-1, 0), 2: (0, 1), 3: (1, 0), 4: (0, -1)}[a]
            ny, nx = y + dy, x + dx
            inside = 0 <= ny < cells.shape[0] and 0 <= nx < cells.shape[1]
            mask[a] = a == 0 or (inside and cells[ny, nx] != Cell.WALL)
        elif op in (Op.STORE, Op.EDIT):
            mask[a] = inner_ok and writable and occupied[slot] == (op is Op.EDIT)
        else:
            mask[a] = inner_ok and occupied[slot]
    return mask


def _memory_heavy_action(env, obs, rng) -> int:
    """Valid actions biased towards memory ops, so slots fill and the per-step bound is hit, and
    towards RIGHT, so walks reach the corridor's doors."""
    mask = obs["action_mask"].astype(bool)
    memory = np.flatnonzero(mask[len(Move) :]) + len(Move)
    if len(memory) and rng.random() < 0.6:
        return int(rng.choice(memory))
    if mask[Move.RIGHT] and rng.random() < 0.8:
        return int(Move.RIGHT)
    return masked_choice(rng, mask[: len(Move)])


@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Hard-" not in i])
def test_mask_follows_the_contract_at_every_step(env_id):
    env = make(env_id, **({"length": 40} if "CueCorridor" in env_id else {}))  # reach the doors
    rng = np.random.default_rng(0)
    seen = {"query": 0, "full": 0, "bound_spent": 0, "wall": 0, "world_steps": 0}
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            want = expected_mask(env)
            np.testing.assert_array_equal(obs["action_mask"].astype(bool), want)
            np.testing.assert_array_equal(env.action_masks(), want)
            s = env.get_state()
            seen["query"] += s["item_is_query"]
            seen["full"] += bool(s["slot_occupied"].all())
            seen["bound_spent"] += s["inner_ops"] == env.config.max_inner_ops
            seen["wall"] += not want[: len(Move)].all()
            action = _memory_heavy_action(env, obs, rng)
            t, pos = env.t, env.world.pos
            obs, _, done, truncated, _ = env.step(action)
            assert not truncated
            if action >= len(Move):  # a memory op: the world did not move
                assert (env.t, env.world.pos) == (t, pos)
            else:
                assert env.t == t + 1
                seen["world_steps"] += 1
    assert all(v > 0 for v in seen.values()), seen  # every branch of the table was exercised


def test_invalid_actions_are_counted_noops_then_the_world_moves():
    env = make("memgym/ObjectRecall-Medium-v0")
    obs, _ = env.reset(seed=0)
    env.step(env.encode(Op.STORE, 0))
    K, n = env.config.capacity, env.action_space.n
    invalid = [env.encode(Op.STORE, 0), env.encode(Op.EDIT, 1), -1, n]
    mem = env.memory
    before = (mem.emb.copy(), mem.occupied.copy(), env.t, env.world.pos)
    for i in range(env.config.max_inner_ops - 1):  # one op of the budget went on the STORE
        obs, reward, terminated, _, info = env.step(invalid[i])
        assert (reward, terminated, info["invalid_action"]) == (0.0, False, True)
        after = (mem.emb, mem.occupied, env.t, env.world.pos)
        for x, y in zip(before, after):
            np.testing.assert_array_equal(x, y)
    assert not obs["action_mask"][len(Move) :].any()  # the budget is spent: only moves remain
    obs, *_ = env.step(invalid[-1])  # falls back to STAY: the world advances
    assert env.t == before[2] + 1 and env.world.pos == before[3]
    assert env.memory.invalid_actions[0] == env.config.max_inner_ops


def test_recall_lasts_until_the_item_changes():
    """`recall` holds while the agent attends to the same thing; a move that changes what it
    attends to clears it (here the cue is gone after the first step)."""
    env = make("memgym/CueCorridor-Medium-v0")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(env.encode(Op.STORE, 0))  # the cue
    obs, *_ = env.step(env.encode(Op.RETRIEVE, 0))
    D = env.config.dim
    assert obs["recall"][D] == 1.0 and obs["item"][D + 3] > 0.9  # sim_recall: it is the item
    np.testing.assert_array_equal(obs["recall_pos"], obs["slot_pos"][0])
    obs, *_ = env.step(Move.RIGHT)
    assert obs["recall"][D] == 0.0 and not obs["recall"][:D].any()


# ---- configuration, observations, hidden state ------------------------------------------------


def test_unknown_keyword_names_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'length'"):
        gym.make("memgym/CueCorridor-Medium-v0", lenght=100)
    with pytest.raises(ConfigError, match="length must be >="):
        gym.make("memgym/CueCorridor-Medium-v0", length=5)
    with pytest.raises(ConfigError, match="answer_steps"):
        gym.make("memgym/ObjectRecall-Medium-v0", answer_steps=3)
    env = gym.make("memgym/CueCorridor-Medium-v0", length=5000, num_doors=2)
    assert env.unwrapped.config.length == 5000


@pytest.mark.parametrize("env_id", MEDIUM_IDS)
def test_identities_are_per_episode_embeddings(env_id):
    """The observation holds embeddings and features only, and the codebook changes per episode."""
    env = make(env_id)
    obs, _ = env.reset(seed=0)
    first = env.embeddings.copy()
    assert set(obs) >= {"item", "slots", "recall", "action_mask", "view", "pose", "phase"}
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    env.reset(seed=1)
    assert not np.allclose(env.embeddings[0], first[0])


def test_object_recall_cue_comes_after_the_objects_are_gone():
    env = make("memgym/ObjectRecall-Medium-v0")
    obs, _ = env.reset(seed=4)
    cfg = env.config
    s = env.get_state()
    assert tuple(s["entity_pos"][s["target"]]) == s["target_cell"]
    D = env.config.dim
    cue_at = cfg.explore_steps + cfg.distractor_steps
    while env.t < cue_at:
        assert obs["item"][D] == 0.0  # not a query yet
        obs, *_ = env.step(Move.STAY)
    s = env.get_state()
    assert obs["item"][D] == 1.0 and s["item_entity"] == s["cue_entity"]
    assert (s["entity_pos"][: cfg.num_objects] == -1).all()  # no object left to look at
    cue, target = env.embeddings[s["cue_entity"]], env.embeddings[s["target"]]
    others = np.delete(env.embeddings[: cfg.num_objects], s["target"], axis=0)
    assert cue @ target > (others @ cue).max()  # the cue resembles the object it names


def _walk_to_cue(env, seed):
    """Walk onto the target (from the hidden state), store it when it is the item, walk to the
    farthest corner and wait there for the cue; returns the last observation."""
    obs, _ = env.reset(seed=seed)
    cfg = env.config
    target = np.array(env.get_state()["target_cell"])
    far = np.where(target > (cfg.room_size + 1) / 2, 1, cfg.room_size)
    while env.t < cfg.explore_steps + cfg.distractor_steps:
        s = env.get_state()
        stored = s["slot_occupied"].any()
        if s["item_entity"] == s["target"] and not stored:
            obs, *_ = env.step(env.encode(Op.STORE, 0))
            continue
        dy, dx = (far if stored else target) - np.array(env.world.pos)
        move = Move.STAY
        if env._phase() == 0 and (dy or dx):
            move = (Move.DOWN if dy > 0 else Move.UP) if dy else (Move.RIGHT if dx > 0 else Move.LEFT)
        obs, *_ = env.step(move)
    return obs


def test_object_recall_offsets_are_odometry_and_recall_lasts_through_the_cue():
    """`recall_offset` and `slot_offset` are where things were seen minus where the agent is, in
    cells; once cued, one RETRIEVE lasts the whole walk back (the item stays the cue), so the
    offset alone leads to the goal."""
    env = make("memgym/ObjectRecall-Easy-v0")
    obs = _walk_to_cue(env, seed=3)
    s = env.get_state()
    holds = np.flatnonzero(s["slot_occupied"] & (s["slot_entity"] == s["target"]))
    assert len(holds) and s["item_is_query"]
    pos = np.array(env.world.pos)
    assert tuple(pos) == s["cue_start"]  # cued, the agent is elsewhere: its place is no answer
    for k in np.flatnonzero(s["slot_occupied"]):
        np.testing.assert_array_equal(obs["slot_offset"][k], np.array(s["slot_cell"][k]) - pos)
    assert not obs["slot_offset"][~s["slot_occupied"]].any()
    np.testing.assert_array_equal(obs["recall_offset"], 0.0)  # nothing read yet
    obs, *_ = env.step(env.encode(Op.RETRIEVE, int(holds[0])))
    goal = np.array(s["target_cell"])
    np.testing.assert_array_equal(obs["recall_offset"], [*(goal - pos), 1.0])
    steps = 0
    while obs["recall_offset"][:2].any():
        dy, dx = obs["recall_offset"][:2]
        move = (Move.DOWN if dy > 0 else Move.UP) if dy else (Move.RIGHT if dx > 0 else Move.LEFT)
        obs, reward, terminated, *_ = env.step(move)
        steps += 1
        assert not terminated and obs["recall_offset"][2] == 1.0  # no re-read needed
        np.testing.assert_array_equal(obs["recall_offset"][:2], goal - np.array(env.world.pos))
    assert steps == np.abs(goal - pos).sum() > 0
    obs, reward, terminated, _, info = env.step(Move.STAY)
    assert terminated and reward == 1.0 and info["metrics"]["success"] == 1.0


@pytest.mark.parametrize("right_door", [True, False])
def test_corridor_door_decides_the_reward(right_door):
    env = make("memgym/CueCorridor-Easy-v0")
    env.reset(seed=2)
    s = env.get_state()
    door = s["correct_door"] if right_door else 1 - s["correct_door"]
    y, x = s["door_cells"][door]
    while env.world.pos[1] < x:
        obs, reward, terminated, *_ = env.step(Move.RIGHT)
        assert not terminated
    obs, reward, terminated, _, info = env.step(Move.UP if y == 0 else Move.DOWN)
    assert terminated and reward == float(right_door)
    assert info["metrics"]["success"] == float(right_door)


def test_corridor_cue_is_shown_only_at_the_start():
    env = make("memgym/CueCorridor-Medium-v0")
    env.reset(seed=0)
    assert env.get_state()["item_entity"] == env.cue_entity
    env.step(Move.STAY)
    assert env.get_state()["entity_pos"][env.cue_entity][0] == -1


def test_rearrange_by_hand_from_the_hidden_state():
    """Putting the moved objects back (pick up with STAY, walk, put down with STAY) succeeds."""
    from memgym.envs.grid import distance_field, step_towards

    env = make("memgym/Rearrange-Medium-v0")
    env.reset(seed=5)
    while env.get_state()["phase"] == 0:
        env.step(Move.STAY)
    s = env.get_state()
    passable = s["cells"] != Cell.WALL

    def walk_to(cell):
        field = distance_field(passable, tuple(int(v) for v in cell))
        while (m := step_towards(field, env.world.pos)) is not Move.STAY:
            env.step(m)

    for e in s["moved"]:
        walk_to(env.get_state()["entity_pos"][e])
        env.step(Move.STAY)
        assert env.get_state()["carrying"] == e
        walk_to(s["object_cells"][e])
        obs, reward, terminated, _, info = env.step(Move.STAY)
    assert terminated and reward == 1.0
    assert info["metrics"]["success"] == 1.0 and info["metrics"]["restored"] == 1.0


@pytest.mark.parametrize("mode", ["ansi", "rgb_array"])
def test_render(mode):
    env = gym.make("memgym/ObjectRecall-Easy-v0", render_mode=mode)
    env.reset(seed=0)
    frame = env.render()
    if mode == "ansi":
        assert "@" in frame and "#" in frame
    else:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_untrained_network_mostly_acts_in_the_world():
    """`WORLD_OP_PRIOR`: an untrained pointer net on an embodied task puts most of its mass on
    moves and little on overwriting or evicting (even logits would churn memory every step);
    `WORLD_ADDRESSING_INIT`: an EDIT goes to a slot already holding what is seen."""
    env = make("memgym/ObjectRecall-Easy-v0")
    obs, _ = env.reset(seed=0)
    for _ in range(3):  # fill the slots, so that EDIT and EVICT are valid too
        free = np.flatnonzero(obs["action_mask"][len(Move) : len(Move) + env.config.capacity])
        obs, *_ = env.step(env.encode(Op.STORE, int(free[0])))
        obs, *_ = env.step(Move.RIGHT if obs["action_mask"][Move.RIGHT] else Move.LEFT)
    K = env.config.capacity
    assert obs["action_mask"][len(Move) + K :].all()  # EDIT, EVICT, RETRIEVE all valid
    torch.manual_seed(0)
    net = build_network("slot_pool", env.observation_space)

    def probs(o):
        with torch.no_grad():
            logits, _, _ = net(obs_to_torch(batch_observations([o])))
        return torch.softmax(logits, -1)[0].numpy()

    sim = env.config.dim + 5  # each slot's similarity to the item
    assert (obs["slots"][:, sim] > 0.9).all()  # the same entity was attended at each STORE
    unlike = {**obs, "slots": obs["slots"].copy()}
    unlike["slots"][:, sim] = 0.0  # as if memory held other things than what is seen
    p = probs(unlike)
    W, valid = len(Move), obs["action_mask"].astype(bool)
    even = valid[:W].sum() / valid.sum()  # the moves' share under even logits
    assert p[:W].sum() > 1.5 * even
    assert p[W + K : W + 3 * K].sum() < 0.05  # EDIT and EVICT: overwriting other things is rare
    same = probs(obs)
    # What memory already holds is rewritten into its own slot (EDIT is addressed), not evicted.
    assert same[W + K : W + 2 * K].sum() > 5 * p[W + K : W + 2 * K].sum()
    assert same[W + 2 * K : W + 3 * K].sum() < 0.05


def _episode_length(env, seed: int, choose) -> int:
    obs, _ = env.reset(seed=seed)
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, _ = env.step(choose(obs["action_mask"]))
        steps, done = steps + 1, terminated or truncated
    return steps


@pytest.mark.parametrize("env_id", [i for i in EMBODIED_IDS if "-Hard-" not in i])
def test_no_episode_outlasts_the_declared_step_bound(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    bound = env.unwrapped.step_bound
    rng = np.random.default_rng(0)

    def op_greedy(mask):  # spend every inner op a world step allows, then move (not STAY if able)
        valid = np.flatnonzero(mask)
        ops = valid[valid >= len(Move)]
        return ops[0] if len(ops) else valid[-1]

    lengths = [_episode_length(env, s, op_greedy) for s in range(3)]
    lengths += [_episode_length(env, s, lambda m: masked_choice(rng, m)) for s in range(5)]
    assert max(lengths) <= bound, (lengths, bound)
    if "CueCorridor" in env_id:  # nothing ends its episodes early: the bound is reached
        assert lengths[0] == bound
