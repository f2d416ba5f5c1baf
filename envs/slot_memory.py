"""The memory half of envs whose world moves on its own actions (the embodied family and the
`ExplicitMemory` wrapper), batched over `N` envs: the slots, `recall`, the per-step budget of
memory ops, the action mask, the episode metrics and the contract's observation keys `item`,
`slots`, `recall`, `action_mask`. A single env is the batch of one, so a native vector env and
`N` single envs run the same arithmetic, bit for bit.

Unlike the streaming family, where STORE and EDIT advance the stream, here every slot op acts on
what is observed now and leaves the world where it is. At most `max_inner_ops` of them (invalid
actions included) are allowed per world step; then only world actions stay valid, so an episode
always ends. `recall` is cleared when the world moves, as the streaming family clears it per item;
with `recall_per_item` (the embodied family) only when the world moving changes the item (what
is attended: its fact, version or place), so a read lasts while the agent attends to the same
thing, e.g. the whole walk back to where a cued object was. Without it a policy has to read
again after every step (ObjectRecall-Easy, PPO: 0.02 success after 350k steps against 0.15).

Each slot also remembers *where* its item was seen (`slot_where`, a normalised position): the
pose an embodied agent keeps with an observation. Envs without a notion of place leave it zero.

Methods take `rows`, an int array of the envs concerned; per-row arrays follow its order.
"""

from __future__ import annotations

import numpy as np

from .bank import FACT, NUM_SLOT_FEATURES, VERSION
from .episode_metrics import Fate
from .ops import ActionCodec, Op
from .slot_observation import observe_rows
from .streaming import NUM_ITEM_FEATURES


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Normalise the last axis as float32 (zero rows stay zero). One formula for every batch size,
    so a row's result does not depend on which batch it was computed in."""
    norm = np.sqrt((v * v).sum(-1, keepdims=True))
    return (v / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)


class SlotMemory:
    # Per env; `edits` counts EDIT ops (per slot: `slot_edits`).
    _COUNTERS = ("writes", "edits", "evictions", "retrieves", "invalid_actions", "correct",
                 "wrong", "stale", "abstentions", "world_steps")

    def __init__(self, num_envs: int, capacity: int, dim: int, num_world_actions: int,
                 max_inner_ops: int, num_facts: int = 1, recall_per_item: bool = False,
                 deferred_mask: bool = False):
        self.recall_per_item = recall_per_item
        # With `deferred_mask` the ops leave `mask` stale and the owner calls `refresh_mask()`
        # once per step for every row (a vector env: one pass of slices instead of a gathered
        # pass per op group); the mask is a function of the state, so the result is the same.
        self.deferred_mask = deferred_mask
        N, K, D, F = num_envs, capacity, dim, max(num_facts, 1)
        self.num_envs, self.capacity, self.dim, self.max_inner_ops = N, K, D, max_inner_ops
        self._all_rows = np.arange(N)
        self.num_facts = F  # content ids below this are tracked for lost items
        self.codec = ActionCodec(capacity, num_world_actions)
        self.num_world_actions = num_world_actions
        self.emb = np.zeros((N, K, D), np.float32)
        self.occupied = np.zeros((N, K), bool)
        self.written_at = np.zeros((N, K), np.int64)
        self.used_at = np.zeros((N, K), np.int64)
        self.slot_reads = np.zeros((N, K), np.int64)
        self.slot_edits = np.zeros((N, K), np.int64)
        self.content = np.full((N, K, 3), -1, np.int64)
        self.slot_where = np.zeros((N, K, 2), np.float32)
        self.mask = np.zeros((N, self.codec.n), np.int8)
        self.world_mask = np.zeros((N, num_world_actions), bool)
        # What is observed now.
        self.t = np.zeros(N, np.int64)
        self.item = np.zeros((N, D), np.float32)
        self.item_content = np.full((N, 3), -1, np.int64)
        self.where = np.zeros((N, 2), np.float32)
        self.writable = np.zeros(N, bool)
        self.is_query = np.zeros(N, bool)
        self.inner_ops = np.zeros(N, np.int64)
        self.recall = np.zeros((N, D), np.float32)
        self.recall_valid = np.zeros(N, bool)
        self.recall_content = np.full((N, 3), -1, np.int64)
        self.recall_where = np.zeros((N, 2), np.float32)
        self.query_sum = np.zeros((N, D), np.float64)
        self.queries = np.zeros((N, D), np.float32)
        self.num_queries_seen = np.zeros(N, np.int64)
        # Episode metrics.
        for name in self._COUNTERS:
            setattr(self, name, np.zeros(N, np.int64))
        self.num_queries = np.ones(N, np.int64)
        self.utilisation_sum = np.zeros(N, np.float64)
        self.fate = np.zeros((N, F), np.int8)
        self.copies = np.zeros((N, F), np.int64)
        self.version_seen = np.full((N, F), -1, np.int64)
        self.lost = np.zeros((N, len(Fate)), np.int64)  # lost items, by what happened to them
        self.reset(np.arange(N), 1)

    def reset(self, rows: np.ndarray, num_queries) -> None:
        """Empty these envs' memories for a new episode; `num_queries` is accuracy's denominator."""
        for a in (self.emb, self.written_at, self.used_at, self.slot_reads, self.slot_edits,
                  self.slot_where,
                  self.t, self.item, self.where, self.inner_ops, self.query_sum, self.queries,
                  self.num_queries_seen, self.utilisation_sum, self.fate, self.copies, self.lost):
            a[rows] = 0
        for a in (self.occupied, self.writable, self.is_query):
            a[rows] = False
        for a in (self.content, self.item_content, self.version_seen):
            a[rows] = -1
        for name in self._COUNTERS:
            getattr(self, name)[rows] = 0
        self.num_queries[rows] = num_queries
        self._clear_recall(rows)

    def _clear_recall(self, rows) -> None:
        self.recall[rows] = 0.0
        self.recall_valid[rows] = False
        self.recall_content[rows] = -1
        self.recall_where[rows] = 0.0

    @property
    def size(self) -> np.ndarray:
        return self.occupied.sum(-1)

    # ---- the world side ------------------------------------------------------------------------

    def begin_step(self, rows, t, item, content, where, writable, is_query, world_mask) -> None:
        """A new observation in each of `rows`: what the agent sees now (`item`, unit or zero
        embeddings), its hidden `content` `(fact, version, position)` and normalised `where`.
        `recall` is cleared (see the module doc) before the new item replaces the old."""
        if self.recall_per_item:
            changed = (self.item_content[rows] != content).any(-1)
            self._clear_recall(rows[changed])
        else:
            self._clear_recall(rows)
        self.t[rows] = t
        self.item[rows] = item
        self.item_content[rows] = content
        self.where[rows] = where
        self.writable[rows] = writable
        self.is_query[rows] = is_query
        self.world_mask[rows] = world_mask
        self.inner_ops[rows] = 0
        q = rows[is_query]
        if len(q):
            self.query_sum[q] += self.item[q]
            self.num_queries_seen[q] += 1
            self.queries[q] = unit_rows(self.query_sum[q])
        fact = self.item_content[rows, FACT]
        seen = ~is_query & (fact >= 0) & (fact < self.num_facts)
        if seen.any():
            r, f = rows[seen], fact[seen]
            version = self.item_content[r, VERSION]
            new = version != self.version_seen[r, f]  # a new version: its fate starts as skipped
            self.fate[r[new], f[new]] = Fate.SKIPPED
            self.copies[r[new], f[new]] = 0
            self.version_seen[r, f] = version
        self._refresh(rows)

    def end_world_step(self, rows) -> None:
        self.utilisation_sum[rows] += self.occupied[rows].sum(-1) / self.capacity
        self.world_steps[rows] += 1

    def needed(self, rows, fact) -> np.ndarray:
        """A task needs version 0 of `fact` now (one per row): counts it lost where memory does
        not hold it, by what happened to it; returns whether memory holds it."""
        fact = np.broadcast_to(fact, rows.shape)
        c = self.content[rows]
        present = ((c[..., FACT] == fact[:, None]) & (c[..., VERSION] == 0)).any(-1)
        lost = ~present & (fact >= 0) & (fact < self.num_facts)
        np.add.at(self.lost, (rows[lost], self.fate[rows[lost], fact[lost]]), 1)
        return present

    # ---- the memory side -----------------------------------------------------------------------

    def absorb_invalid(self, rows) -> np.ndarray:
        """Count an invalid action in each row. While the step's budget lasts it is a no-op
        (True); after that the caller plays world action 0 instead (False)."""
        self.invalid_actions[rows] += 1
        ok = self.inner_ops[rows] < self.max_inner_ops
        self.inner_ops[rows[ok]] += 1
        self._refresh(rows[ok])
        return ok

    def apply(self, rows, op, slot) -> np.ndarray:
        """Apply one valid slot op per row; returns which rows wrote (STORE or EDIT)."""
        self.inner_ops[rows] += 1
        store, edit = op == Op.STORE, op == Op.EDIT
        wrote = store | edit
        if edit.any():
            self._drop(rows[edit], slot[edit], Fate.OVERWRITTEN)
        if wrote.any():
            self._write(rows[wrote], slot[wrote], store[wrote])
        evict = op == Op.EVICT
        if evict.any():
            r, s = rows[evict], slot[evict]
            self._drop(r, s, Fate.EVICTED)
            self.evictions[r] += 1
            self._clear_slots(r, s)
        read = op == Op.RETRIEVE
        if read.any():
            r, s = rows[read], slot[read]
            self.recall[r] = self.emb[r, s]
            self.recall_content[r] = self.content[r, s]
            self.recall_where[r] = self.slot_where[r, s]
            self.recall_valid[r] = True
            self.slot_reads[r, s] += 1
            self.used_at[r, s] = self.t[r]
            self.retrieves[r] += 1
        self._refresh(rows)
        return wrote

    def _write(self, r, s, is_store) -> None:
        self.emb[r, s] = self.item[r]
        self.written_at[r, s] = self.used_at[r, s] = self.t[r]
        self.content[r, s] = self.item_content[r]
        self.slot_where[r, s] = self.where[r]
        self.occupied[r, s] = True
        self.slot_reads[r[is_store], s[is_store]] = 0  # a fresh write; an EDIT keeps its reads
        self.slot_edits[r[is_store], s[is_store]] = 0
        self.slot_edits[r[~is_store], s[~is_store]] += 1
        self.writes[r[is_store]] += 1
        self.edits[r[~is_store]] += 1
        fact, version = self.item_content[r, FACT], self.item_content[r, VERSION]
        current = (fact >= 0) & (fact < self.num_facts) & (version == 0)
        self.copies[r[current], fact[current]] += 1
        self.fate[r[current], fact[current]] = Fate.STORED

    def _drop(self, r, s, fate: Fate) -> None:
        """A slot's content leaves memory: if it was a current version, one copy fewer."""
        fact, version = self.content[r, s, FACT], self.content[r, s, VERSION]
        current = (fact >= 0) & (fact < self.num_facts) & (version == 0)
        r, f = r[current], fact[current]
        self.copies[r, f] -= 1
        gone = self.copies[r, f] == 0
        self.fate[r[gone], f[gone]] = fate

    def _clear_slots(self, r, s) -> None:
        self.emb[r, s] = 0.0
        self.occupied[r, s] = False
        for a in (self.written_at, self.used_at, self.slot_reads, self.slot_edits):
            a[r, s] = 0
        self.content[r, s] = -1
        self.slot_where[r, s] = 0.0

    def _refresh(self, rows) -> None:
        if not self.deferred_mask:
            self.refresh_mask(rows)

    def refresh_mask(self, rows=None) -> None:
        """Recompute the action mask of `rows` (default: every row, with slices)."""
        K, W = self.capacity, self.num_world_actions
        r = slice(None) if rows is None else rows
        occ = self.occupied[r]
        inner_ok = (self.inner_ops[r] < self.max_inner_ops)[:, None]
        write = self.writable[r][:, None] & inner_ok
        mask = self.mask
        mask[r, :W] = self.world_mask[r]
        mask[r, W : W + K] = ~occ & write
        mask[r, W + K : W + 2 * K] = occ & write
        mask[r, W + 2 * K : W + 3 * K] = occ & inner_ok
        mask[r, W + 3 * K :] = occ & inner_ok

    # ---- observation and metrics ---------------------------------------------------------------

    def observation(self, progress: np.ndarray, rows=None) -> dict[str, np.ndarray]:
        """The contract's keys (new arrays) for `rows` (default: every env); `progress` per row.
        The features are computed by one compiled pass (`slot_observation.py`)."""
        rows = self._all_rows if rows is None else np.ascontiguousarray(rows, np.int64)
        K, D, M = self.capacity, self.dim, len(rows)
        item = np.empty((M, D + NUM_ITEM_FEATURES), np.float32)
        slots = np.empty((M, K, D + NUM_SLOT_FEATURES), np.float32)
        recall = np.empty((M, D + 1), np.float32)
        observe_rows(rows, np.ascontiguousarray(progress, np.float64), self.max_inner_ops,
                     self.item, self.recall, self.queries, self.recall_valid, self.is_query,
                     self.num_queries_seen, self.inner_ops, self.t, self.occupied, self.emb,
                     self.written_at, self.used_at, self.slot_reads, self.slot_edits, item, slots,
                     recall)
        return {"item": item, "slots": slots, "recall": recall, "action_mask": self.mask[rows]}

    def summary_batch(self, rows) -> dict[str, np.ndarray]:
        """The streaming family's episode metrics (see `EpisodeMetrics.summary`), one per row."""
        lost = self.lost[rows]
        return {
            "accuracy": self.correct[rows] / self.num_queries[rows],
            "correct": self.correct[rows],
            "stale": self.stale[rows],
            "abstentions": self.abstentions[rows],
            "wrong": self.wrong[rows],
            "writes": self.writes[rows],
            "edits": self.edits[rows],
            "evictions": self.evictions[rows],
            "retrieves": self.retrieves[rows],
            "invalid_actions": self.invalid_actions[rows],
            "mean_utilisation": self.utilisation_sum[rows] / np.maximum(self.world_steps[rows], 1),
            "lost_items": lost.sum(-1),
            "lost_skipped": lost[:, Fate.SKIPPED],
            "lost_evicted": lost[:, Fate.EVICTED],
            "lost_overwritten": lost[:, Fate.OVERWRITTEN],
        }

    def summary(self, row: int) -> dict[str, float]:
        return {k: v[0].item() for k, v in self.summary_batch(np.array([row])).items()}

    def copy_row(self, other: SlotMemory, src: int, dst: int) -> None:
        """Copy env `src` of `other` (same sizes) into env `dst` of this batch."""
        for name, a in vars(self).items():
            if isinstance(a, np.ndarray) and a.shape[:1] == (self.num_envs,) and name != "mask":
                a[dst] = getattr(other, name)[src]
        self.mask[dst] = other.mask[src]
