"""Memory-bank invariants under random op sequences (hypothesis), on the bank alone against a
plain-Python model of it, and through the env with arbitrary (also invalid) actions."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import STREAMING_IDS, make
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from memgym.envs import SLOT_FEATURES, MemoryBank
from memgym.envs.bank import COUNT_CAP, EMPTY_CONTENT, NUM_SLOT_FEATURES

K, D = 4, 6
OCC, AGE, SINCE_USED, READS, EDITS, SIM_ITEM, SIM_RECALL, SIM_QUERIES = range(NUM_SLOT_FEATURES)


def unit_vectors(dim: int):
    return st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=dim, max_size=dim).map(
        lambda xs: _unit(np.array(xs, np.float32))
    )


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return (v / n).astype(np.float32) if n > 1e-3 else np.eye(len(v), dtype=np.float32)[0]


def check_bank_invariants(bank: MemoryBank, t: int) -> None:
    occ = bank.occupied
    has_content = (bank.content != -1).any(axis=1)
    assert bank.size == int(occ.sum()) == int(has_content.sum())
    np.testing.assert_array_equal(occ, has_content)
    # Empty slots are fully cleared: no embedding, no content, no metadata.
    assert not bank.embedding[~occ].any()
    assert (bank.content[~occ] == -1).all()
    for meta in (bank.written_at, bank.used_at, bank.reads, bank.edits):
        assert not meta[~occ].any()
    # Metadata of occupied slots is consistent with time.
    assert (bank.written_at[occ] <= t).all()
    assert (bank.used_at[occ] >= bank.written_at[occ]).all()
    assert (bank.used_at[occ] <= t).all()
    assert (bank.reads >= 0).all() and (bank.edits >= 0).all()
    # Occupied slots hold unit embeddings (the similarity features rely on it).
    np.testing.assert_allclose(np.linalg.norm(bank.embedding[occ], axis=1), 1.0, atol=1e-5)


def check_features(bank: MemoryBank, t: int, item, recall, queries) -> None:
    out = np.full((bank.capacity, bank.dim + NUM_SLOT_FEATURES), np.nan, np.float32)
    f = bank.features(t, item, recall, queries, out)
    assert f is out and np.isfinite(out).all()
    occ = bank.occupied
    assert not out[~occ].any()  # empty slots: every feature is zero
    extra = out[:, bank.dim:]
    np.testing.assert_array_equal(out[:, : bank.dim], bank.embedding)
    np.testing.assert_array_equal(extra[:, OCC], occ.astype(np.float32))
    np.testing.assert_allclose(extra[occ, AGE], np.log1p(t - bank.written_at[occ]) / 8, rtol=1e-6)
    np.testing.assert_allclose(extra[occ, SINCE_USED], np.log1p(t - bank.used_at[occ]) / 8, rtol=1e-6)
    np.testing.assert_allclose(extra[:, READS], np.log1p(np.minimum(bank.reads, COUNT_CAP)) / 8, rtol=1e-6)
    np.testing.assert_allclose(extra[:, EDITS], np.log1p(np.minimum(bank.edits, COUNT_CAP)) / 8, rtol=1e-6)
    for col, vec in ((SIM_ITEM, item), (SIM_RECALL, recall), (SIM_QUERIES, queries)):
        np.testing.assert_allclose(extra[:, col], bank.embedding @ vec, atol=1e-5)
        assert (np.abs(extra[:, col]) <= 1 + 1e-5).all()


def test_slot_feature_names_match_columns():
    assert len(SLOT_FEATURES) == NUM_SLOT_FEATURES == 8
    assert SLOT_FEATURES.index("sim_queries") == SIM_QUERIES


class BankMachine(RuleBasedStateMachine):
    """Random STORE / EDIT / EVICT / READ sequences on a `MemoryBank`, mirrored in a dict model."""

    @initialize()
    def setup(self):
        self.bank = MemoryBank(K, D)
        self.t = 0
        # slot -> [embedding, content, written_at, used_at, reads, edits]
        self.model: dict[int, list] = {}
        self.next_fact = 0

    def _content(self):
        self.next_fact += 1
        return (self.next_fact % 5 - 1, self.next_fact, self.t)  # fact -1 means a distractor

    @rule(dt=st.integers(0, 50))
    def advance(self, dt):
        self.t += dt

    @rule(slot=st.integers(0, K - 1), emb=unit_vectors(D))
    def store(self, slot, emb):
        if slot in self.model:
            with pytest.raises(AssertionError):
                self.bank.store(slot, emb, self._content(), self.t)
            return
        content = self._content()
        self.bank.store(slot, emb, content, self.t)
        self.model[slot] = [emb, content, self.t, self.t, 0, 0]

    @rule(slot=st.integers(0, K - 1), emb=unit_vectors(D))
    def edit(self, slot, emb):
        if slot not in self.model:
            with pytest.raises(AssertionError):
                self.bank.edit(slot, emb, self._content(), self.t)
            return
        content = self._content()
        self.bank.edit(slot, emb, content, self.t)
        m = self.model[slot]
        m[0], m[1], m[2], m[3], m[5] = emb, content, self.t, self.t, m[5] + 1  # reads survive

    @rule(slot=st.integers(0, K - 1))
    def evict(self, slot):
        if slot not in self.model:
            with pytest.raises(AssertionError):
                self.bank.evict(slot)
            return
        self.bank.evict(slot)
        del self.model[slot]

    @rule(slot=st.integers(0, K - 1))
    def read(self, slot):
        if slot not in self.model:
            with pytest.raises(AssertionError):
                self.bank.read(slot, self.t)
            return
        got = self.bank.read(slot, self.t)
        m = self.model[slot]
        np.testing.assert_array_equal(got, m[0])
        m[3], m[4] = self.t, m[4] + 1

    @precondition(lambda self: self.bank.size > 0)
    @rule()
    def clear(self):
        self.bank.clear()
        self.model.clear()

    @invariant()
    def matches_model(self):
        bank = self.bank
        for s in range(K):
            if s in self.model:
                emb, content, written, used, reads, edits = self.model[s]
                assert bank.occupied[s]
                np.testing.assert_array_equal(bank.embedding[s], emb)
                assert tuple(bank.content[s]) == content
                assert (bank.written_at[s], bank.used_at[s]) == (written, used)
                assert (bank.reads[s], bank.edits[s]) == (reads, edits)
            else:
                assert not bank.occupied[s]
        free = [s for s in range(K) if s not in self.model]
        assert bank.first_free() == (free[0] if free else -1)

    @invariant()
    def invariants_hold(self):
        check_bank_invariants(self.bank, self.t)

    @invariant()
    def holds_finds_exactly_the_stored_versions(self):
        for s, m in self.model.items():
            fact, version, _ = m[1]
            assert self.bank.holds(fact, version) == s  # versions are unique in this machine
        assert self.bank.holds(3, 10**6) == -1

    @invariant()
    def features_are_consistent(self):
        rng = np.random.default_rng(self.t)
        item = _unit(rng.standard_normal(D).astype(np.float32))
        recall = np.zeros(D, np.float32)
        if self.model:
            recall = next(iter(self.model.values()))[0]
        queries = _unit(rng.standard_normal(D).astype(np.float32))
        check_features(self.bank, self.t, item, recall, queries)


BankMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBankStateMachine = BankMachine.TestCase


def test_evicted_slot_is_zeroed_and_reusable():
    bank = MemoryBank(2, 3)
    e = np.array([0.6, 0.8, 0.0], np.float32)
    bank.store(1, e, (4, 0, 10), t=10)
    bank.read(1, t=12)
    bank.edit(1, e, (4, 1, 15), t=15)
    assert (bank.reads[1], bank.edits[1], bank.written_at[1], bank.used_at[1]) == (1, 1, 15, 15)
    bank.evict(1)
    assert tuple(bank.content[1]) == EMPTY_CONTENT
    assert not bank.embedding.any() and bank.size == 0 and bank.first_free() == 0
    bank.store(1, e, (5, 0, 20), t=20)
    assert (bank.reads[1], bank.edits[1]) == (0, 0)  # a fresh write starts fresh metadata


def test_read_and_edit_counts_saturate_so_long_streams_look_like_short_ones():
    bank = MemoryBank(2, 3)
    e = np.array([0.6, 0.8, 0.0], np.float32)
    bank.store(0, e, (1, 0, 0), t=0)
    bank.store(1, e, (2, 0, 0), t=0)
    feature = lambda: bank.features(1000, e, 0 * e, 0 * e, np.zeros((2, 3 + NUM_SLOT_FEATURES), np.float32))
    for t in range(1, COUNT_CAP):
        bank.read(0, t)
        bank.edit(1, e, (2, t, t), t)
    below = feature()[:, 3 + READS : 3 + EDITS + 1].copy()
    for t in range(COUNT_CAP, 500):
        bank.read(0, t)
        bank.edit(1, e, (2, t, t), t)
    at_cap = feature()[:, 3 + READS : 3 + EDITS + 1]
    assert below[0, 0] < at_cap[0, 0] and below[1, 1] < at_cap[1, 1]  # still counting below the cap
    # 499 reads (edits) look exactly like COUNT_CAP of them.
    assert at_cap[0, 0] == at_cap[1, 1] == np.float32(np.log1p(COUNT_CAP) / 8)
    assert bank.reads_feature(0) == bank.edits_feature(1) == at_cap[0, 0]


# ---- the same invariants through the env, with arbitrary actions -------------------------------


@pytest.mark.parametrize("env_id", [i for i in STREAMING_IDS if "-Easy-" in i])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), actions=st.lists(st.integers(-3, 40), min_size=1, max_size=300))
def test_bank_invariants_through_env(env_id, seed, actions):
    """Any action sequence (valid, masked-out or out of range) leaves the bank consistent, and the
    slot observation shows zeros for every empty slot."""
    env = make(env_id)
    obs, _ = env.reset(seed=seed)
    D = env.config.dim
    for a in actions:
        obs, _, terminated, _, _ = env.step(a)
        if terminated:
            break
        check_bank_invariants(env.bank, env.t)
        occ = env.bank.occupied
        assert not obs["slots"][~occ].any()
        np.testing.assert_array_equal(obs["slots"][:, D], occ.astype(np.float32))
        # The hidden content matches the stream: a stored item is a distractor (-1) or a fact
        # whose stored version is not newer than the fact's current version.
        facts, versions = env.bank.content[occ, 0], env.bank.content[occ, 1]
        cur = env.stream.version
        assert all(f == -1 or 0 <= v <= cur[f] for f, v in zip(facts, versions))
        assert (env.bank.content[occ, 2] <= env.t).all()
