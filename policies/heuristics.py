"""Heuristic memory policies: what a hand-written memory manager would do.

They differ only in what they write and evict. All share one reading rule: on a query, RETRIEVE
the slot most similar to it, then SKIP to answer. They read only the observation (never hidden
state), so each works unchanged on real text memories.
"""

from __future__ import annotations

import numpy as np

from memgym.envs.ops import Op

from .base import ObsView

SKIP = 0


def _slot_action(op: Op, slots: np.ndarray, capacity: int) -> np.ndarray:
    return 1 + (int(op) - 1) * capacity + slots


def _masked_argmax(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    return np.where(allowed, scores, -np.inf).argmax(axis=-1)


class HeuristicPolicy:
    """Base: the shared reading rule and the write-or-evict skeleton; subclasses choose a victim."""

    name = "heuristic"
    needs_state = False

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        pass

    def act(self, obs, states=None) -> np.ndarray:
        v = ObsView(obs)
        K = v.capacity
        occupied = v.occupied
        actions = self.write(v, occupied)
        # Reading rule on queries: RETRIEVE the most similar slot once, then SKIP.
        query = v.item("is_query") > 0.5
        can_read = query & (v.item("recall_valid") < 0.5) & occupied.any(axis=-1)
        best = _masked_argmax(v.slot("sim_item"), occupied)
        actions = np.where(query, SKIP, actions)
        actions = np.where(can_read, _slot_action(Op.RETRIEVE, best, K), actions)
        return self._only_valid(actions, v.mask)

    def write(self, v: ObsView, occupied: np.ndarray) -> np.ndarray:
        """Actions on non-query items: STORE into the first free slot, else evict a victim."""
        K = v.capacity
        free = ~occupied
        has_free = free.any(axis=-1)
        first_free = free.argmax(axis=-1)
        victim = self.victim(v, occupied)
        evict = _slot_action(Op.EVICT, victim, K)
        if not self.evicts:
            evict = np.full_like(evict, SKIP)
        return np.where(has_free, _slot_action(Op.STORE, first_free, K), evict)

    evicts = True

    def victim(self, v: ObsView, occupied: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _only_valid(actions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # A rule may ask for a non-advancing op after the per-item bound is spent: SKIP instead.
        ok = mask[np.arange(len(actions)), actions]
        return np.where(ok, actions, SKIP).astype(np.int64)


class KeepAllPolicy(HeuristicPolicy):
    """Store every item until memory is full, then keep what is there."""

    name = "keep_all"
    evicts = False

    def victim(self, v, occupied):
        return np.zeros(len(occupied), np.int64)


class FIFOPolicy(HeuristicPolicy):
    """Store every item; when full, evict the oldest write."""

    name = "fifo"

    def victim(self, v, occupied):
        return _masked_argmax(v.slot("age"), occupied)


class LRUPolicy(HeuristicPolicy):
    """Store every item; when full, evict the least recently read or written slot."""

    name = "lru"

    def victim(self, v, occupied):
        return _masked_argmax(v.slot("since_used"), occupied)


class LFUPolicy(HeuristicPolicy):
    """Store every item; when full, evict the least often read slot (oldest use on ties)."""

    name = "lfu"

    def victim(self, v, occupied):
        score = -v.slot("reads") * 1e3 + v.slot("since_used")
        return _masked_argmax(score, occupied)


class SimilarityMergePolicy(LRUPolicy):
    """EDIT the most similar slot when the item is similar enough (an update of what it holds),
    else STORE, evicting the least recently used slot when full."""

    name = "similarity_merge"

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold

    def write(self, v, occupied):
        actions = super().write(v, occupied)
        sim = np.where(occupied, v.slot("sim_item"), -np.inf)
        best = sim.argmax(axis=-1)
        merge = sim.max(axis=-1) >= self.threshold
        return np.where(merge, _slot_action(Op.EDIT, best, v.capacity), actions)


class RandomPolicy:
    """A uniformly random valid action."""

    name = "random"
    needs_state = False

    def __init__(self):
        self.rng = np.random.default_rng()

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs, states=None) -> np.ndarray:
        mask = obs["action_mask"].astype(bool)
        # Gumbel-max over the valid actions: one vectorised draw for the whole batch.
        noise = self.rng.random(mask.shape)
        return np.where(mask, noise, -1.0).argmax(axis=-1).astype(np.int64)
