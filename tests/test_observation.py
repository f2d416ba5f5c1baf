"""The observation, recomputed independently at every step from the ops taken and the items seen:
item features, recall, and every slot feature (embedding, age, recency, reads, edits, three
similarities). Only quantities a real agent has (embeddings, its own ops, time) enter the model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import STREAMING_IDS, make

from memgym.envs import ITEM_FEATURES, SLOT_FEATURES, Op
from memgym.envs.bank import COUNT_CAP

ATOL = 1e-5


class AgentSideModel:
    """What an agent can track itself: its memory's contents and metadata, its recall, the
    queries it has seen."""

    def __init__(self, K: int, D: int):
        self.K, self.D = K, D
        self.slots: dict[int, dict] = {}
        self.recall = np.zeros(D, np.float32)
        self.recall_valid = False
        self.query_sum = np.zeros(D, np.float64)
        self.queries_seen = 0
        self.inner_ops = 0

    def new_item(self, emb: np.ndarray, is_query: bool) -> None:
        self.recall = np.zeros(self.D, np.float32)
        self.recall_valid = False
        self.inner_ops = 0
        if is_query:
            self.query_sum += emb
            self.queries_seen += 1

    def apply(self, op: Op, slot: int, emb: np.ndarray, t: int) -> None:
        if op is Op.STORE:
            self.slots[slot] = dict(emb=emb.copy(), written=t, used=t, reads=0, edits=0)
        elif op is Op.EDIT:
            s = self.slots[slot]
            s.update(emb=emb.copy(), written=t, used=t, edits=s["edits"] + 1)
        elif op is Op.EVICT:
            del self.slots[slot]
            self.inner_ops += 1
        elif op is Op.RETRIEVE:
            s = self.slots[slot]
            s.update(used=t, reads=s["reads"] + 1)
            self.recall, self.recall_valid = s["emb"].copy(), True
            self.inner_ops += 1

    def check(self, obs: dict, t: int, length: int, max_inner_ops: int) -> None:
        D, K = self.D, self.K
        item = obs["item"][:D]
        n = np.linalg.norm(self.query_sum)
        queries = (self.query_sum / n).astype(np.float32) if n > 0 else np.zeros(D, np.float32)
        assert np.linalg.norm(item) == pytest.approx(1.0, abs=ATOL)
        want_item = {
            "progress": t / length,
            "recall_valid": float(self.recall_valid),
            "sim_recall": float(item @ self.recall),
            "sim_queries": float(item @ queries),
            "queries_seen": np.log1p(self.queries_seen) / 8,
            "inner_ops_left": 1 - self.inner_ops / max_inner_ops,
            "occupancy": len(self.slots) / K,
        }
        got_item = dict(zip(ITEM_FEATURES, obs["item"][D:]))
        for name, value in want_item.items():
            assert abs(got_item[name] - value) <= ATOL, f"item {name} at t={t}"
        np.testing.assert_allclose(obs["recall"][:D], self.recall, atol=ATOL)
        assert obs["recall"][D] == self.recall_valid
        want = np.zeros((K, D + len(SLOT_FEATURES)), np.float64)
        for k, s in self.slots.items():
            want[k, :D] = s["emb"]
            want[k, D:] = (
                1.0,
                np.log1p(t - s["written"]) / 8,
                np.log1p(t - s["used"]) / 8,
                np.log1p(min(s["reads"], COUNT_CAP)) / 8,
                np.log1p(min(s["edits"], COUNT_CAP)) / 8,
                s["emb"] @ item,
                s["emb"] @ self.recall,
                s["emb"] @ queries,
            )
        np.testing.assert_allclose(obs["slots"], want, atol=ATOL, err_msg=f"slots at t={t}")


def _pick(env, obs, rng) -> int:
    """A valid action, biased towards memory ops so every feature moves."""
    mask = obs["action_mask"].astype(bool)
    valid = np.flatnonzero(mask)
    ops = [env.decode(a)[0] for a in valid]
    u = rng.random()
    for op, p in ((Op.RETRIEVE, 0.3), (Op.EDIT, 0.4), (Op.EVICT, 0.45), (Op.STORE, 0.8)):
        choices = [a for a, o in zip(valid, ops) if o is op]
        if u < p and choices:
            return int(rng.choice(choices))
    return int(rng.choice(valid))


@pytest.mark.parametrize("env_id", [i for i in STREAMING_IDS if "-Hard-" not in i])
def test_observation_matches_an_agent_side_model(env_id):
    env = make(env_id)
    cfg = env.config
    rng = np.random.default_rng(0)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        model = AgentSideModel(cfg.capacity, cfg.dim)
        is_query = obs["item"][cfg.dim + ITEM_FEATURES.index("is_query")] == 1
        model.new_item(obs["item"][: cfg.dim], is_query)
        t, done = 0, False
        while not done:
            model.check(obs, t, cfg.length, cfg.max_inner_ops)
            a = _pick(env, obs, rng)
            op, slot = env.decode(a)
            model.apply(op, slot, obs["item"][: cfg.dim], t)
            obs, _, done, _, _ = env.step(a)
            if op in (Op.SKIP, Op.STORE, Op.EDIT):
                t += 1
                if not done:
                    is_query = obs["item"][cfg.dim + ITEM_FEATURES.index("is_query")] == 1
                    assert is_query == (env.get_state()["item_kind"] == 2)
                    model.new_item(obs["item"][: cfg.dim], is_query)


def test_observation_arrays_are_not_shared_between_steps():
    """A policy (or a rollout buffer) may keep observations: the env must not mutate them later."""
    env = make("memgym/Retrieval-Easy-v0")
    first, _ = env.reset(seed=0)
    kept = {k: v.copy() for k, v in first.items()}
    obs, rng = first, np.random.default_rng(1)
    for _ in range(30):
        obs, *_ = env.step(_pick(env, obs, rng))
    assert env.bank.size > 0  # memory changed since the first observation
    for k in kept:
        np.testing.assert_array_equal(first[k], kept[k], err_msg=k)
