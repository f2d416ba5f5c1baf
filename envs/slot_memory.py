"""The memory half of an env whose world moves on its own actions (the embodied family and the
`ExplicitMemory` wrapper): a `MemoryBank`, `recall`, the per-step budget of memory ops, the action
mask and the contract's observation keys `item`, `slots`, `recall`, `action_mask`.

Unlike the streaming family, where STORE and EDIT advance the stream, here every slot op acts on
what is observed now and leaves the world where it is. At most `max_inner_ops` of them (invalid
actions included) are allowed per world step; then only world actions stay valid, so an episode
always ends. `recall` is cleared when the world moves, as the streaming family clears it per item.

Each slot also remembers *where* its item was seen (`slot_where`, a normalised position): the
pose an embodied agent keeps with an observation. Envs without a notion of place leave it zero.
"""

from __future__ import annotations

import numpy as np

from .bank import FACT, NUM_SLOT_FEATURES, MemoryBank
from .episode_metrics import EpisodeMetrics
from .ops import ActionCodec, Op
from .streaming import NUM_ITEM_FEATURES


class SlotMemory:
    def __init__(self, capacity: int, dim: int, num_world_actions: int, max_inner_ops: int):
        self.capacity, self.dim, self.max_inner_ops = capacity, dim, max_inner_ops
        self.codec = ActionCodec(capacity, num_world_actions)
        self.num_world_actions = num_world_actions
        self.bank = MemoryBank(capacity, dim)
        self.slot_where = np.zeros((capacity, 2), np.float32)
        self.mask = np.zeros(self.codec.n, np.int8)
        self._zero = np.zeros(dim, np.float32)
        self._slot_obs = np.zeros((capacity, dim + NUM_SLOT_FEATURES), np.float32)
        self.reset(1, 1)

    def reset(self, num_facts: int, num_queries: int) -> None:
        """Empty the bank for a new episode. Content ids `0..num_facts-1` are tracked for lost
        items; `num_queries` is the denominator of `accuracy`."""
        self.bank.clear()
        self.slot_where.fill(0.0)
        self.metrics = EpisodeMetrics(num_queries, max(num_facts, 1))
        self._current = np.zeros(max(num_facts, 1), np.int64)  # the version a task wants: 0
        self.t = 0
        self.world_steps = 0
        self._query_sum = np.zeros(self.dim, np.float64)
        self._queries = self._zero
        self.num_queries_seen = 0
        self.item = self._zero
        self.content = (-1, -1, -1)
        self.where = np.zeros(2, np.float32)
        self.writable = self.is_query = False
        self._clear_recall()
        self.inner_ops = 0

    def _clear_recall(self) -> None:
        self.recall = self._zero
        self.recall_valid = False
        self.recall_content = None
        self.recall_where = np.zeros(2, np.float32)

    # ---- the world side ------------------------------------------------------------------------

    def begin_step(self, t, item, content, where, writable: bool, is_query: bool, world_mask):
        """A new observation: what the agent sees now (`item`, a unit or zero embedding), its
        hidden `content` `(fact, version, position)` and normalised `where`."""
        self.t = t
        self.item, self.content, self.where = item, content, np.asarray(where, np.float32)
        self.writable, self.is_query = bool(writable), bool(is_query)
        self.inner_ops = 0
        self._clear_recall()
        fact = int(content[FACT])
        if is_query:
            self._query_sum += item
            self.num_queries_seen += 1
            n = np.linalg.norm(self._query_sum)
            self._queries = (self._query_sum / n).astype(np.float32) if n > 0 else self._zero
        elif 0 <= fact < len(self._current):
            self.metrics.on_mention(fact, int(content[1]))
        self._refresh_mask(world_mask)

    def end_world_step(self) -> None:
        self.metrics.utilisation_sum += self.bank.size / self.capacity
        self.world_steps += 1

    def needed(self, fact: int) -> bool:
        """Record that a task now needs `fact` (version 0); returns whether memory holds it."""
        present = self.bank.holds(fact, 0) >= 0
        self.metrics.on_needed(fact, 0, present)
        return present

    # ---- the memory side -----------------------------------------------------------------------

    def absorb_invalid(self) -> bool:
        """Count an invalid action. While the step's budget lasts it is a no-op (True); after
        that the caller falls back to world action 0."""
        self.metrics.invalid_actions += 1
        if self.inner_ops < self.max_inner_ops:
            self.inner_ops += 1
            self._refresh_mask(self.mask[: self.num_world_actions])
            return True
        return False

    def apply(self, op: Op, slot: int) -> bool:
        """Apply a valid slot op; returns True for a write (STORE or EDIT)."""
        bank, m = self.bank, self.metrics
        self.inner_ops += 1
        wrote = False
        if op is Op.STORE or op is Op.EDIT:
            fact, version = int(self.content[0]), int(self.content[1])
            if op is Op.STORE:
                bank.store(slot, self.item, self.content, self.t)
            else:
                m.on_overwrite(self._tracked(bank.content[slot]), self._current)
                bank.edit(slot, self.item, self.content, self.t)
            self.slot_where[slot] = self.where
            m.on_write(op, fact if fact < len(self._current) else -1, version, self._current)
            wrote = True
        elif op is Op.EVICT:
            m.on_evict(self._tracked(bank.content[slot]), self._current)
            bank.evict(slot)
            self.slot_where[slot] = 0.0
        else:
            self.recall = bank.read(slot, self.t).copy()
            self.recall_content = bank.content[slot].copy()
            self.recall_where = self.slot_where[slot].copy()
            self.recall_valid = True
            m.retrieves += 1
        self._refresh_mask(self.mask[: self.num_world_actions])
        return wrote

    def _tracked(self, content):
        """`content`, or an untracked placeholder when its fact is outside the tracked ids."""
        return content if int(content[FACT]) < len(self._current) else (-1, -1, -1)

    def _refresh_mask(self, world_mask) -> None:
        K, W = self.capacity, self.num_world_actions
        occ = self.bank.occupied
        inner_ok = self.inner_ops < self.max_inner_ops
        mask = self.mask
        mask[:W] = world_mask
        write = self.writable and inner_ok
        mask[W : W + K] = ~occ & write
        mask[W + K : W + 2 * K] = occ & write
        mask[W + 2 * K : W + 3 * K] = mask[W + 3 * K :] = occ & inner_ok

    # ---- observation ---------------------------------------------------------------------------

    def observation(self, progress: float) -> dict[str, np.ndarray]:
        D = self.dim
        item = np.empty(D + NUM_ITEM_FEATURES, np.float32)
        item[:D] = self.item
        item[D:] = (
            self.is_query,
            progress,
            self.recall_valid,
            float(self.item @ self.recall),
            float(self.item @ self._queries),
            np.log1p(self.num_queries_seen) / 8.0,
            1.0 - self.inner_ops / self.max_inner_ops,
            self.bank.size / self.capacity,
        )
        recall = np.empty(D + 1, np.float32)
        recall[:D] = self.recall
        recall[D] = self.recall_valid
        slots = self.bank.features(self.t, self.item, self.recall, self._queries, self._slot_obs)
        return {
            "item": item,
            "slots": slots.copy(),
            "recall": recall,
            "action_mask": self.mask.copy(),
        }

    def summary(self) -> dict[str, float]:
        return self.metrics.summary(max(self.world_steps, 1))

