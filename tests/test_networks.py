"""Torch policies: shapes, masking, permutation equivariance over slots."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import memgym.envs  # noqa: F401
from memgym.policies import batch_observations
from memgym.policies.networks import MASKED, build_network, obs_to_torch
from memgym.policies.torch_policy import NeuralPolicy

ARCHS = ["slot_attention", "slot_pool", "mlp", "recurrent"]


def _batch(n=16, seed=0, env_id="memgym/Conflict-Easy-v0"):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        out.append(obs)
        valid = np.flatnonzero(obs["action_mask"])
        obs, *_ , = env.step(int(rng.choice(valid)))[:1]
    return env, batch_observations(out)


@pytest.mark.parametrize("arch", ARCHS)
def test_masked_logits_never_choose_an_invalid_action(arch):
    torch.manual_seed(0)
    env, obs = _batch(32)
    net = build_network(arch, env.observation_space)
    # Push the invalid actions' raw scores up: masking must still win.
    logits, value, _ = net(obs_to_torch(obs), net.initial_state(32))
    mask = obs["action_mask"].astype(bool)
    assert logits.shape == mask.shape and value.shape == (32,)
    assert torch.all(logits[~torch.from_numpy(mask)] == MASKED)
    probs = torch.softmax(logits, -1).detach().numpy()
    assert np.all(probs[~mask] == 0.0)
    policy = NeuralPolicy(net, deterministic=False, seed=1)
    policy.reset(32, seed=1)
    for _ in range(50):
        actions = policy.act(obs)
        assert mask[np.arange(32), actions].all()


@pytest.mark.parametrize("arch", ["slot_attention", "slot_pool", "recurrent"])
def test_pointer_nets_are_permutation_equivariant_over_slots(arch):
    torch.manual_seed(0)
    env, obs = _batch(8)
    net = build_network(arch, env.observation_space).eval()
    K = obs["slots"].shape[1]
    perm = np.random.default_rng(3).permutation(K)
    permuted = dict(obs)
    permuted["slots"] = obs["slots"][:, perm]
    mask = obs["action_mask"].reshape(8, -1)
    blocks = mask[:, 1:].reshape(8, 4, K)[:, :, perm].reshape(8, -1)
    permuted["action_mask"] = np.concatenate([mask[:, :1], blocks], 1)
    a, va, _ = net(obs_to_torch(obs), net.initial_state(8))
    b, vb, _ = net(obs_to_torch(permuted), net.initial_state(8))
    a_blocks = a[:, 1:].reshape(8, 4, K)[:, :, perm]
    torch.testing.assert_close(b[:, 1:].reshape(8, 4, K), a_blocks, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(va, vb, atol=1e-5, rtol=1e-5)


def logits_with_and_without_addressing(env, obs, switch="addressing", **kw):
    """The same untrained slot_pool network's logits for `obs`, with the `switch` keyword of
    `build_network` on and off (`kw`: further keywords of `build_network`)."""
    from memgym.policies import batch_observations
    from memgym.policies.networks import build_network, obs_to_torch

    batch = obs_to_torch(batch_observations([obs]))
    logits = []
    for on in (True, False):
        torch.manual_seed(0)
        net = build_network("slot_pool", env.observation_space, **{switch: on}, **kw)
        with torch.no_grad():
            logits.append(net(batch)[0])
    return logits


@pytest.mark.parametrize("arch", ["slot_attention", "slot_pool", "recurrent"])
def test_op_scores_are_the_op_head_of_each_slot_beside_the_item(arch):
    # The first layer is applied in two halves for speed; it must stay the same function.
    torch.manual_seed(0)
    env, obs = _batch(8)
    net = build_network(arch, env.observation_space)
    slots, item = torch.randn(8, 5, net.hidden), torch.randn(8, net.hidden)
    joined = net.op_head(torch.cat([slots, item.unsqueeze(1).expand(8, 5, net.hidden)], -1))
    torch.testing.assert_close(net._op_scores(slots, item), joined, rtol=1e-5, atol=1e-6)


def test_content_addressing_adds_strength_times_similarity_to_slot_op_logits():
    import gymnasium as gym

    from memgym.envs import Op
    from memgym.policies.networks import ADDRESSING_INIT

    env = gym.make("memgym/Conflict-Medium-v0")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    for slot in range(3):  # some occupied slots, so EDIT / RETRIEVE logits are unmasked
        while obs["item"][u.config.dim] > 0.5:  # a query: writing is masked, move on
            obs, *_ = env.step(0)
        obs, *_ = env.step(u.encode(Op.STORE, slot))
    while obs["item"][u.config.dim] > 0.5:
        obs, *_ = env.step(0)
    a, b = logits_with_and_without_addressing(env, obs)
    sim = torch.as_tensor(obs["slots"][:, u.config.dim + 5])  # sim_item
    for op, strength in zip((Op.EDIT, Op.RETRIEVE), (ADDRESSING_INIT[1], ADDRESSING_INIT[3])):
        cols = [u.encode(op, s) for s in range(3)]
        torch.testing.assert_close(a[0, cols] - b[0, cols], strength * sim[:3])
    assert torch.equal(a[0, 0], b[0, 0])  # SKIP is not addressed


def test_world_tasks_start_with_edit_addressed_only():
    import gymnasium as gym

    from memgym.envs import Op
    from memgym.policies.networks import WORLD_ADDRESSING_INIT

    env = gym.make("memgym/ObjectRecall-Easy-v0")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    obs, *_ = env.step(u.encode(Op.STORE, 0))  # slot 0 now holds the attended item
    a, b = logits_with_and_without_addressing(env, obs)
    sim = float(obs["slots"][0, u.config.dim + 5])
    assert sim > 0.99
    for op, strength in zip((Op.EDIT, Op.EVICT, Op.RETRIEVE), WORLD_ADDRESSING_INIT[1:]):
        col = u.encode(op, 0)
        torch.testing.assert_close(a[0, col] - b[0, col], torch.tensor(strength * sim))
    assert WORLD_ADDRESSING_INIT[1] > 0 and WORLD_ADDRESSING_INIT[3] == 0


def test_world_tasks_address_retrieve_only_at_an_unread_question():
    import gymnasium as gym

    from memgym.envs import ITEM_FEATURES, Op
    from memgym.policies import batch_observations, embodied
    from memgym.policies.networks import QUERY_ADDRESSING_INIT

    env = gym.make("memgym/ObjectRecall-Easy-v0")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    D = u.config.dim
    is_query, recall_valid = (D + ITEM_FEATURES.index(k) for k in ("is_query", "recall_valid"))
    oracle = embodied.oracle()
    oracle.reset(1, seed=0)
    seen = {"explore": 0, "unread cue": 0, "read cue": 0}
    done = False
    while not done:
        occupied = obs["slots"][:, D] > 0.5
        if occupied.any():
            a, b = logits_with_and_without_addressing(env, obs, switch="query_addressing")
            sim = torch.as_tensor(obs["slots"][:, D + 5])
            cols = [u.encode(Op.RETRIEVE, k) for k in range(len(sim))]
            unread = obs["item"][is_query] > 0.5 and obs["item"][recall_valid] < 0.5
            want = QUERY_ADDRESSING_INIT[3] * sim * float(unread)
            torch.testing.assert_close(a[0, cols] - b[0, cols], want)
            others = [c for c in range(a.shape[1]) if c not in cols]
            assert torch.equal(a[0, others], b[0, others])  # only RETRIEVE is gated
            phase = "explore" if obs["item"][is_query] < 0.5 else "unread cue" if unread else "read cue"
            seen[phase] += 1
        action = oracle.act(batch_observations([obs]), [u.get_state()])[0]
        obs, _, term, trunc, _ = env.step(action)
        done = term or trunc
    assert all(seen.values()), seen  # every case was checked
    assert QUERY_ADDRESSING_INIT[3] > 0 and not any(QUERY_ADDRESSING_INIT[:3])


def test_store_novelty_lowers_store_by_the_similarity_of_what_memory_already_holds():
    import gymnasium as gym

    from memgym.envs import Op
    from memgym.policies.networks import STORE_NOVELTY_INIT

    env = gym.make("memgym/ObjectRecall-Easy-v0")
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    D, K = u.config.dim, u.config.capacity
    stores = [u.encode(Op.STORE, k) for k in range(K)]
    a, b = logits_with_and_without_addressing(env, obs, switch="store_novelty")
    assert torch.equal(a, b)  # empty memory: nothing is held, nothing is penalised
    obs, *_ = env.step(u.encode(Op.STORE, 0))  # slot 0 now holds the attended item
    held = float(obs["slots"][:, D + 5].max())
    assert held > 0.99
    a, b = logits_with_and_without_addressing(env, obs, switch="store_novelty")
    free = stores[1:]  # STORE into slot 0 is masked: it is occupied
    torch.testing.assert_close(a[0, free] - b[0, free],
                               torch.full((K - 1,), STORE_NOVELTY_INIT * held))
    others = [c for c in range(a.shape[1]) if c not in stores]
    assert torch.equal(a[0, others], b[0, others])  # only STORE is affected
    assert STORE_NOVELTY_INIT < 0


def test_store_novelty_spares_other_objects_below_its_threshold():
    # Objects share a direction, so another object is ~0.4 similar to one memory holds: storing
    # it must not be penalised (it is what the task needs), while the linear form (threshold 0,
    # runs before the threshold existed) lowered it by the strength times that similarity.
    import gymnasium as gym

    from memgym.envs import Move, Op
    from memgym.policies.networks import STORE_NOVELTY_INIT, STORE_NOVELTY_THRESHOLD

    env = gym.make("memgym/ObjectRecall-Easy-v0")
    u = env.unwrapped
    D, K, N = u.config.dim, u.config.capacity, u.config.num_objects
    stores = [u.encode(Op.STORE, k) for k in range(1, K)]  # the free slots after the first STORE
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        first = u.get_state()["item_entity"]
        if first is None or not 0 <= first < N:
            continue
        obs, *_ = env.step(u.encode(Op.STORE, 0))
        rng = np.random.default_rng(seed)
        for _ in range(u.config.explore_steps - 1):
            state = u.get_state()
            other = state["item_entity"]
            if other is not None and 0 <= other < N and other != first:
                break
            moves = [m for m in range(1, len(Move)) if obs["action_mask"][m]]
            obs, *_ = env.step(int(rng.choice(moves)))
        else:
            continue
        sim = float(obs["slots"][0, D + 5])
        assert 0.0 < sim < STORE_NOVELTY_THRESHOLD
        a, b = logits_with_and_without_addressing(env, obs, switch="store_novelty")
        assert torch.equal(a[0, stores], b[0, stores])
        a, b = logits_with_and_without_addressing(env, obs, switch="store_novelty",
                                                  novelty_threshold=0.0)
        torch.testing.assert_close(a[0, stores] - b[0, stores],
                                   torch.full((K - 1,), STORE_NOVELTY_INIT * sim))
        return
    pytest.fail("no episode showed a second object after the first was stored")



def test_streaming_networks_have_no_question_gated_addressing():
    import gymnasium as gym

    from memgym.policies.networks import build_network

    env = gym.make("memgym/Conflict-Easy-v0")
    net = build_network("slot_pool", env.observation_space, query_addressing=True,
                        store_novelty=True)
    assert net.query_addressing is None and net.store_novelty is None
