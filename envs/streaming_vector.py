"""`StreamingVectorEnv`: `N` envs of one streaming task stepped together in numpy, step for step
identical to `N` single envs (`gym.make(id)`) with the same seeds.

State is batched over envs: the bank is `[N, K, ...]` arrays, the observation three preallocated
`[N, ...]` buffers updated in place by the events of a step (as the single env updates its own),
the mask recomputed for all envs at once. A step groups the envs by what their action does
(absorbed invalid action, EVICT, RETRIEVE, STORE/EDIT, SKIP) and applies each group with array
operations: no Python loop over envs. Similarities are batched `matmul`s, which call the same BLAS
kernel per env as the single env's `np.dot`, so they agree bit for bit.

Items come from one `StreamBatch` with a row per env, generated ahead `block` items at a time
into `StreamBlocks` by compiled kernels: one call for all rows whose block is used up, one for
all rows that start an episode.

Autoreset is `SAME_STEP`: when an episode ends, the step returns the first observation of the
next episode; the last observation of the ended one is in `info["final_obs"]` and its step info
(with `metrics`) in `info["final_info"]`, as `SyncVectorEnv(..., autoreset_mode=SAME_STEP)` gives.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .bank import _EMPTY_REF, _LOG_AGE, _LOG_SCALE, _MAX_AGE, NUM_SLOT_FEATURES, count_feature
from .config import Level
from .episode_metrics import METRIC_NAMES, Fate
from .ops import Op
from .privileged import privileged_size, streaming_privileged
from .stream import ItemKind, StreamBatch, episode_seed
from .stream_block import StreamBlocks
from .streaming import NUM_ITEM_FEATURES, StreamingMemoryEnv

# Column offsets (after the embedding) in the item and slot rows; see streaming.py.
_IS_QUERY, _PROGRESS, _RECALL_VALID, _SIM_RECALL, _SIM_QUERIES, _QUERIES_SEEN, _INNER_LEFT, \
    _OCCUPANCY = range(NUM_ITEM_FEATURES)
OCCUPIED, AGE, SINCE_USED, READS, EDITS, SIM_ITEM, SIM_RECALL, SIM_QUERIES = range(
    NUM_SLOT_FEATURES)
_QUERY, _FACT = int(ItemKind.QUERY), int(ItemKind.FACT)
_ABSORBED = -1  # pseudo-op of an invalid action that only uses up one inner op


def _mv(mats: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """`[n, K, D] x [n, D] -> [n, K]`: one BLAS gemv per env, as `np.dot` in the single env."""
    return np.matmul(mats, vecs[:, :, None])[:, :, 0]


def _vv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products `[n, D] x [n, D] -> [n]`: one BLAS dot per env, as `a.dot(b)`."""
    return np.matmul(a[:, None, :], b[:, :, None])[:, 0, 0]


class StreamingVectorEnv(gym.vector.VectorEnv):
    """Base class; each task's vector env names its single env in `env_class`."""

    env_class: ClassVar[type[StreamingMemoryEnv]]
    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, level: str | Level = Level.MEDIUM, block: int = 64, **kw):
        self.num_envs = N = num_envs
        # One single env builds every episode's task structure, from each env's own generator
        # (`np_random` of the single env it mirrors; created as `gym.Env.reset` creates it).
        self.task = g = self.env_class(level, **kw)
        self.np_randoms: list[np.random.Generator | None] = [None] * N
        self.config, self.codec = cfg, codec = g.config, g.codec
        self.single_observation_space = g.observation_space
        self.single_action_space = g.action_space
        self.observation_space = batch_space(g.observation_space, N)
        self.action_space = batch_space(g.action_space, N)
        self.needs_bridge = self.env_class.task_needs_bridge
        K, D, F, A = cfg.capacity, cfg.dim, cfg.num_facts, codec.n
        self.K, self.D, self.L, self.A = K, D, cfg.length, A
        self.rows = np.arange(N)
        self.stream_batch = StreamBatch(cfg, N)
        self.blocks = StreamBlocks(N, block, D)
        op_of = np.array([codec.decode(a)[0] for a in range(A)], np.int64)
        op_of[0] = Op.SKIP
        self._op_of = op_of
        self._slot_of = np.array([max(codec.decode(a)[1], 0) for a in range(A)], np.int64)
        # The bank, batched.
        self.emb = np.zeros((N, K, D), np.float32)
        self.occupied = np.zeros((N, K), bool)
        self.written_at = np.zeros((N, K), np.int64)
        self.used_at = np.zeros((N, K), np.int64)
        self.age_ref = np.full((N, K, 2), _EMPTY_REF, np.int64)  # (written, used) references
        self.reads = np.zeros((N, K), np.int64)
        self.edits = np.zeros((N, K), np.int64)
        self.slot_fact = np.full((N, K), -1, np.int64)
        self.slot_version = np.full((N, K), -1, np.int64)
        self.size = np.zeros(N, np.int64)
        # Per-env episode state.
        self.t = np.zeros(N, np.int64)
        self.inner = np.zeros(N, np.int64)
        self.kind = np.zeros(N, np.int8)
        self.item = np.zeros((N, D), np.float32)
        self.fact = np.full(N, -1, np.int64)
        self.version = np.full(N, -1, np.int64)
        self.answer = np.full(N, -1, np.int64)
        self.answer_version = np.full(N, -1, np.int64)
        self.query_sum = np.zeros((N, D), np.float64)
        self.queries = np.zeros((N, D), np.float32)
        self.num_queries_seen = np.zeros(N, np.int64)
        self.recall = np.zeros((N, D), np.float32)
        self.recall_valid = np.zeros(N, bool)
        self.recall_fact = np.full(N, -1, np.int64)
        self.recall_version = np.full(N, -1, np.int64)
        # Episode metrics, batched (see episode_metrics.py).
        self.counts = {name: np.zeros(N, np.int64) for name in (
            "correct", "stale", "abstentions", "wrong", "writes", "edits", "evictions",
            "retrieves", "invalid_actions", "lost_skipped", "lost_evicted", "lost_overwritten")}
        self.utilisation_sum = np.zeros(N, np.float64)
        self.fact_version = np.full((N, F), -1, np.int64)  # latest version mentioned
        self.fate = np.zeros((N, F), np.int64)
        self.copies = np.zeros((N, F), np.int64)
        self.lost_version = np.full((N, F), -1, np.int64)  # latest version counted as lost
        # The observation buffers and the mask (current and previous: an ended episode's last
        # observation keeps the mask its last action was chosen from).
        self.ob_item = np.zeros((N, D + NUM_ITEM_FEATURES), np.float32)
        self.ob_slots = np.zeros((N, K, D + NUM_SLOT_FEATURES), np.float32)
        self.ob_recall = np.zeros((N, D + 1), np.float32)
        self.mask = np.zeros((N, A), np.int8)
        self.mask[:, 0] = 1
        self._prev_mask = self.mask.copy()
        # Scratch of the per-step dense columns (`_item_columns`).
        self._sim = np.zeros((N, K, 1), np.float32)
        self._age_index = np.zeros((N, K, 2), np.int64)
        self._age_out = np.zeros((N, K, 2), np.float32)

    # ---- reset ---------------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"got {len(seed)} seeds for {self.num_envs} envs")
            seeds = list(seed)
        self._new_episodes(self.rows, seeds)
        return self._observation(), {}

    def _new_episodes(self, rows: np.ndarray, seeds=None) -> None:
        """Start a new episode in each of `rows` (a loop over these envs only), as the single
        env's `reset` does: same draws from its `np_random`, same first observation."""
        self._start_streams(rows, seeds)
        self.emb[rows] = 0.0
        self.occupied[rows] = False
        self.written_at[rows] = 0
        self.used_at[rows] = 0
        self.age_ref[rows] = _EMPTY_REF
        self.reads[rows] = 0
        self.edits[rows] = 0
        self.slot_fact[rows] = -1
        self.slot_version[rows] = -1
        self.size[rows] = 0
        self.t[rows] = 0
        self.inner[rows] = 0
        self.kind[rows] = 0
        self.query_sum[rows] = 0.0
        self.queries[rows] = 0.0
        self.num_queries_seen[rows] = 0
        self.recall[rows] = 0.0
        self.recall_valid[rows] = False
        self.recall_fact[rows] = -1
        self.recall_version[rows] = -1
        for c in self.counts.values():
            c[rows] = 0
        self.utilisation_sum[rows] = 0.0
        self.fact_version[rows] = -1
        self.fate[rows] = Fate.SKIPPED
        self.copies[rows] = 0
        self.lost_version[rows] = -1
        self.ob_item[rows] = 0.0
        self.ob_slots[rows] = 0.0
        self.ob_recall[rows] = 0.0
        self._begin_item(rows)
        self._rebuild(rows)
        self._update_mask(rows)

    # ---- the streams: episode generation ---------------------------------------------------------

    def _start_streams(self, rows: np.ndarray, seeds=None) -> None:
        """A new episode's stream in each of `rows`, drawn from the row's `np_random` as the
        single env's `reset` draws it (`seeds[n]`, when given and not None, reseeds row
        `rows[n]`), and its first block of items."""
        tasks, episode_seeds = [], np.empty(len(rows), np.int64)
        for n, i in enumerate(rows.tolist()):
            seed = None if seeds is None else seeds[n]
            if seed is not None or self.np_randoms[i] is None:
                self.np_randoms[i] = seeding.np_random(seed)[0]
            rng = self.np_randoms[i]
            tasks.append(self.task.task_structure(rng))
            episode_seeds[n] = episode_seed(rng)
        self.stream_batch.start(rows, episode_seeds, tasks)
        self.stream_batch.fill(rows, np.zeros(len(rows), np.int64), self.blocks)

    def _refill(self, rows: np.ndarray) -> None:
        """The next block of items of each of `rows`, from the row's position `t` on."""
        self.stream_batch.fill(rows, self.t[rows], self.blocks)

    # ---- step ----------------------------------------------------------------------------------

    def step(self, actions):
        N, K, D = self.num_envs, self.K, self.D
        a = np.asarray(actions).astype(np.int64).reshape(N)
        in_range = (a >= 0) & (a < self.A)
        a = np.where(in_range, a, 0)
        valid = in_range & (self.mask[self.rows, a] == 1)
        invalid = ~valid
        self.counts["invalid_actions"] += invalid
        absorbed = invalid & (self.inner < self.config.max_inner_ops)
        a[invalid] = 0  # a spent bound falls back to SKIP so the stream moves on
        op = self._op_of[a]
        op[absorbed] = _ABSORBED
        slot = self._slot_of[a]
        reward = np.zeros(N, np.float64)

        evict = np.flatnonzero(op == Op.EVICT)
        if len(evict):
            self._evict(evict, slot[evict])
        retrieve = np.flatnonzero(op == Op.RETRIEVE)
        if len(retrieve):
            self._retrieve(retrieve, slot[retrieve])
        inner = np.flatnonzero((op == _ABSORBED) | (op == Op.EVICT) | (op == Op.RETRIEVE))
        if len(inner):
            self.inner[inner] += 1
            self.ob_item[inner, D + _INNER_LEFT] = (
                1.0 - self.inner[inner] / self.config.max_inner_ops)
        write = np.flatnonzero((op == Op.STORE) | (op == Op.EDIT))
        if len(write):
            self._write(write, slot[write], op[write] == Op.EDIT)
            reward[write] -= self.config.write_cost
        answer = np.flatnonzero((op == Op.SKIP) & (self.kind == _QUERY))
        if len(answer):
            reward[answer] += self._answer(answer)

        advance = np.flatnonzero((op == Op.SKIP) | (op == Op.STORE) | (op == Op.EDIT))
        self.utilisation_sum[advance] += self.size[advance] / K
        self.t[advance] += 1
        ended = self.t[advance] >= self.L
        done, going = advance[ended], advance[~ended]
        if len(going):
            self._begin_item(going, columns=False)
        # Similarity to the item and ages change in every row that advanced; recomputing them in
        # every row (one batched matmul, one table lookup) is cheaper than gathering those rows,
        # and gives the rows that did not advance what they already hold (EVICT zeroed a slot's
        # embedding and references with its row; RETRIEVE set its time since use to 0).
        self._item_columns()
        self._prev_mask, self.mask = self.mask, self._prev_mask
        self._update_mask()  # the ended rows again after their reset, below
        terminated = np.zeros(N, bool)
        info: dict[str, Any] = {}
        if len(done):
            terminated[done] = True
            self._rebuild(done)
            info.update(self._final_info(done))
            self._new_episodes(done)
        running = ~terminated
        info["invalid_action"] = absorbed & running
        info["_invalid_action"] = running
        return self._observation(), reward, terminated, np.zeros(N, bool), info

    # ---- events --------------------------------------------------------------------------------

    def _drop(self, rows, slots, fate: Fate) -> None:
        """Metrics of a slot's content leaving the bank (EVICT or overwriting EDIT)."""
        f, v = self.slot_fact[rows, slots], self.slot_version[rows, slots]
        fs = np.maximum(f, 0)
        current = (f >= 0) & (v == self.fact_version[rows, fs])
        r, fc = rows[current], fs[current]
        self.copies[r, fc] -= 1
        gone = self.copies[r, fc] == 0
        self.fate[r[gone], fc[gone]] = fate

    def _evict(self, rows, slots) -> None:
        self.counts["evictions"][rows] += 1
        self._drop(rows, slots, Fate.EVICTED)
        self.emb[rows, slots] = 0.0
        self.occupied[rows, slots] = False
        self.written_at[rows, slots] = 0
        self.used_at[rows, slots] = 0
        self.age_ref[rows, slots] = _EMPTY_REF
        self.reads[rows, slots] = 0
        self.edits[rows, slots] = 0
        self.slot_fact[rows, slots] = -1
        self.slot_version[rows, slots] = -1
        self.size[rows] -= 1
        self.ob_slots[rows, slots] = 0.0
        self.ob_item[rows, self.D + _OCCUPANCY] = self.size[rows] / self.K

    def _retrieve(self, rows, slots) -> None:
        D, t = self.D, self.t[rows]
        self.counts["retrieves"][rows] += 1
        self.reads[rows, slots] += 1
        self.used_at[rows, slots] = t
        self.age_ref[rows, slots, 1] = t
        recall = self.emb[rows, slots]
        self.recall[rows] = recall
        self.recall_fact[rows] = self.slot_fact[rows, slots]
        self.recall_version[rows] = self.slot_version[rows, slots]
        self.recall_valid[rows] = True
        self.ob_slots[rows, slots, D + READS] = count_feature(self.reads[rows, slots])
        self.ob_slots[rows, slots, D + SINCE_USED] = 0.0
        self.ob_recall[rows, :D] = recall
        self.ob_recall[rows, D] = 1.0
        self.ob_item[rows, D + _RECALL_VALID] = 1.0
        self.ob_item[rows, D + _SIM_RECALL] = _vv(self.item[rows], recall)
        self.ob_slots[rows, :, D + SIM_RECALL] = _mv(self.emb[rows], recall)

    def _write(self, rows, slots, is_edit) -> None:
        D, t = self.D, self.t[rows]
        edit, store = rows[is_edit], rows[~is_edit]
        es, ss = slots[is_edit], slots[~is_edit]
        if len(edit):
            self._drop(edit, es, Fate.OVERWRITTEN)
            self.edits[edit, es] += 1
            self.counts["edits"][edit] += 1
            self.ob_slots[edit, es, D + EDITS] = count_feature(self.edits[edit, es])
        if len(store):
            self.occupied[store, ss] = True
            self.size[store] += 1
            self.counts["writes"][store] += 1
            self.ob_slots[store, ss, D + OCCUPIED] = 1.0
            self.ob_item[store, D + _OCCUPANCY] = self.size[store] / self.K
        item = self.item[rows]
        self.emb[rows, slots] = item
        self.written_at[rows, slots] = t
        self.used_at[rows, slots] = t
        self.age_ref[rows, slots] = t[:, None]
        f, v = self.fact[rows], self.version[rows]
        self.slot_fact[rows, slots] = f
        self.slot_version[rows, slots] = v
        self.ob_slots[rows, slots, :D] = item
        asked = self.num_queries_seen[rows] > 0
        if asked.any():
            r = rows[asked]
            self.ob_slots[r, slots[asked], D + SIM_QUERIES] = _vv(item[asked], self.queries[r])
        fs = np.maximum(f, 0)
        current = (f >= 0) & (v == self.fact_version[rows, fs])
        r, fc = rows[current], fs[current]
        self.copies[r, fc] += 1
        self.fate[r, fc] = Fate.STORED

    def _answer(self, rows) -> np.ndarray:
        c = self.counts
        valid = self.recall_valid[rows]
        right_fact = self.recall_fact[rows] == self.answer[rows]
        correct = valid & right_fact & (self.recall_version[rows] == self.answer_version[rows])
        c["abstentions"][rows] += ~valid
        c["correct"][rows] += correct
        c["stale"][rows] += valid & right_fact & ~correct
        c["wrong"][rows] += valid & ~right_fact
        return np.where(correct, 1.0 / self.config.num_queries, 0.0)

    def _begin_item(self, rows, columns: bool = True) -> None:
        """Make the item at `t` current in each of `rows` (as the single env's `_begin_item`);
        `columns=False` leaves the slots' similarity to the item and ages to `_item_columns`."""
        D, blocks = self.D, self.blocks
        j = self.t[rows] - blocks.start[rows]
        spent = j >= blocks.filled[rows]
        if spent.any():
            self._refill(rows[spent])
            j = self.t[rows] - blocks.start[rows]
        kind = blocks.kind[rows, j]
        emb = blocks.emb[rows, j]
        fact = blocks.fact[rows, j]
        self.kind[rows], self.item[rows] = kind, emb
        self.fact[rows], self.version[rows] = fact, blocks.version[rows, j]
        item, slots = self.ob_item, self.ob_slots

        cleared = rows[self.recall_valid[rows]]  # `recall` holds for one item only
        if len(cleared):
            self.recall[cleared] = 0.0
            self.recall_valid[cleared] = False
            self.recall_fact[cleared] = -1
            self.recall_version[cleared] = -1
            self.ob_recall[cleared] = 0.0
            slots[cleared, :, D + SIM_RECALL] = 0.0
            item[cleared, D + _RECALL_VALID] = 0.0
            item[cleared, D + _SIM_RECALL] = 0.0
        self.inner[rows] = 0
        item[rows, D + _INNER_LEFT] = 1.0

        is_query = kind == _QUERY
        if is_query.any():
            q, qj = rows[is_query], j[is_query]
            self.answer[q] = blocks.answer[q, qj]
            self.answer_version[q] = blocks.answer_version[q, qj]
            if self.needs_bridge:
                self._needed(q, fact[is_query], blocks.asked_version[q, qj])
            self._needed(q, self.answer[q], self.answer_version[q])
            self.query_sum[q] += emb[is_query]
            self.num_queries_seen[q] += 1
            s = self.query_sum[q]
            norm = np.sqrt(np.matmul(s[:, None, :], s[:, :, None])[:, 0, 0])
            safe = np.where(norm > 0, norm, 1.0)[:, None]
            self.queries[q] = np.where(norm[:, None] > 0, s / safe, 0.0).astype(np.float32)
            slots[q, :, D + SIM_QUERIES] = _mv(self.emb[q], self.queries[q])
            item[q, D + _QUERIES_SEEN] = np.log1p(self.num_queries_seen[q]) / 8.0
        mention = kind == _FACT
        if mention.any():
            m, f, v = rows[mention], fact[mention], self.version[rows[mention]]
            new = v != self.fact_version[m, f]
            m, f, v = m[new], f[new], v[new]
            self.fate[m, f] = Fate.SKIPPED
            self.copies[m, f] = 0
            self.fact_version[m, f] = v
        item[rows, D + _IS_QUERY] = is_query
        item[rows, :D] = emb
        item[rows, D + _PROGRESS] = self.t[rows] / self.L
        asked = self.num_queries_seen[rows] > 0
        if asked.any():
            r = rows[asked]
            item[r, D + _SIM_QUERIES] = _vv(emb[asked], self.queries[r])
        if columns:
            slots[rows, :, D + SIM_ITEM] = _mv(self.emb[rows], emb)
            slots[rows, :, D + AGE : D + SINCE_USED + 1] = self._ages(rows)

    def _item_columns(self) -> None:
        """The slots' similarity to the item and ages, in every env."""
        D, slots = self.D, self.ob_slots
        np.matmul(self.emb, self.item[:, :, None], out=self._sim)
        slots[:, :, D + SIM_ITEM] = self._sim[:, :, 0]
        if self.t.max() <= _MAX_AGE:
            # `_LOG_AGE[_MAX_AGE - t + ref]`, an empty slot's huge reference clipped to the last
            # entry (0), as `MemoryBank.ages` reads it.
            np.subtract(self.age_ref, (self.t - _MAX_AGE)[:, None, None], out=self._age_index)
            _LOG_AGE.take(self._age_index, mode="clip", out=self._age_out)
            slots[:, :, D + AGE : D + SINCE_USED + 1] = self._age_out
        else:
            slots[:, :, D + AGE : D + SINCE_USED + 1] = self._ages(self.rows)

    def _needed(self, rows, facts, versions) -> None:
        """Lost items: a query needs this version of this fact and no slot holds it."""
        held = ((self.slot_fact[rows] == facts[:, None])
                & (self.slot_version[rows] == versions[:, None])).any(1)
        lost = ~held & (self.lost_version[rows, facts] != versions)
        r, f = rows[lost], facts[lost]
        self.lost_version[r, f] = versions[lost]
        fate = self.fate[r, f]
        for name, which in (("lost_skipped", Fate.SKIPPED), ("lost_evicted", Fate.EVICTED),
                            ("lost_overwritten", Fate.OVERWRITTEN)):
            self.counts[name][r] += fate == which

    def _ages(self, rows) -> np.ndarray:
        """Log-scaled age and time since use, `[n, K, 2]` (0 for empty slots), as `bank.ages`."""
        t = self.t[rows][:, None, None]
        ref = self.age_ref[rows]
        if (t <= _MAX_AGE).all():
            return _LOG_AGE[_MAX_AGE - t + np.minimum(np.maximum(ref, 0), t)]
        return (np.log1p(np.maximum(t - ref, 0)) * _LOG_SCALE).astype(np.float32)

    def _update_mask(self, rows=None) -> None:
        """The mask of `rows` (default: every env, with slices rather than a gather)."""
        K = self.K
        r = slice(None) if rows is None else rows
        occ = self.occupied[r]
        writable = (self.kind[r] != _QUERY)[:, None]
        inner_ok = (self.inner[r] < self.config.max_inner_ops)[:, None]
        mask = self.mask if rows is None else np.empty((len(rows), 1 + 4 * K), np.int8)
        mask[:, 0] = 1
        np.logical_and(~occ, writable, out=mask[:, 1 : 1 + K], casting="unsafe")
        np.logical_and(occ, writable, out=mask[:, 1 + K : 1 + 2 * K], casting="unsafe")
        np.logical_and(occ, inner_ok, out=mask[:, 1 + 2 * K : 1 + 3 * K], casting="unsafe")
        mask[:, 1 + 3 * K : 1 + 4 * K] = mask[:, 1 + 2 * K : 1 + 3 * K]
        if rows is not None:
            self.mask[rows] = mask

    # ---- whole observations (reset, episode end) -----------------------------------------------

    def _rebuild(self, rows) -> None:
        """Every observation feature of `rows` from scratch, as the single env's
        `_rebuild_observation` (and `MemoryBank.features`) compute them."""
        cfg, D, K = self.config, self.D, self.K
        item, emb = self.item[rows], self.emb[rows]
        recall, queries = self.recall[rows], self.queries[rows]
        ob = self.ob_item
        ob[rows, :D] = item
        ob[rows, D + _IS_QUERY] = self.kind[rows] == _QUERY
        ob[rows, D + _PROGRESS] = self.t[rows] / cfg.length
        ob[rows, D + _RECALL_VALID] = self.recall_valid[rows]
        ob[rows, D + _SIM_RECALL] = _vv(item, recall)
        ob[rows, D + _SIM_QUERIES] = _vv(item, queries)
        ob[rows, D + _QUERIES_SEEN] = np.log1p(self.num_queries_seen[rows]) / 8.0
        ob[rows, D + _INNER_LEFT] = 1.0 - self.inner[rows] / cfg.max_inner_ops
        ob[rows, D + _OCCUPANCY] = self.size[rows] / K
        self.ob_recall[rows, :D] = recall
        self.ob_recall[rows, D] = self.recall_valid[rows]
        s = self.ob_slots
        s[rows, :, :D] = emb
        s[rows, :, D + OCCUPIED] = self.occupied[rows]
        s[rows, :, D + AGE : D + SINCE_USED + 1] = self._ages(rows)
        s[rows, :, D + READS] = count_feature(self.reads[rows])
        s[rows, :, D + EDITS] = count_feature(self.edits[rows])
        s[rows, :, D + SIM_ITEM] = _mv(emb, item)
        s[rows, :, D + SIM_RECALL] = _mv(emb, recall)
        s[rows, :, D + SIM_QUERIES] = _mv(emb, queries)

    def _final_info(self, rows) -> dict[str, Any]:
        """`final_obs` and `final_info` (with the episode's metrics) of the ended `rows`."""
        N, Q, c = self.num_envs, self.config.num_queries, self.counts
        item, slots, recall = self.ob_item[rows], self.ob_slots[rows], self.ob_recall[rows]
        mask = self._prev_mask[rows]
        final_obs = np.full(N, None, dtype=object)
        for n, i in enumerate(rows.tolist()):
            final_obs[i] = {"item": item[n], "slots": slots[n], "recall": recall[n],
                            "action_mask": mask[n]}
        ended = np.zeros(N, bool)
        ended[rows] = True
        values = {
            "accuracy": c["correct"] / Q,
            "mean_utilisation": self.utilisation_sum / self.L,
            "lost_items": c["lost_skipped"] + c["lost_evicted"] + c["lost_overwritten"],
            **c,
        }
        metrics: dict[str, Any] = {}
        for name in METRIC_NAMES:
            v = values[name]
            full = np.zeros(N, v.dtype)
            full[rows] = v[rows]
            metrics[name], metrics[f"_{name}"] = full, ended.copy()
        final_info = {"invalid_action": np.zeros(N, bool), "_invalid_action": ended.copy(),
                      "metrics": metrics, "_metrics": ended.copy()}
        return {"final_obs": final_obs, "_final_obs": ended.copy(),
                "final_info": final_info, "_final_info": ended}

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "item": self.ob_item.copy(),
            "slots": self.ob_slots.copy(),
            "recall": self.ob_recall.copy(),
            "action_mask": self.mask.copy(),
        }

    def action_masks(self) -> np.ndarray:
        """Valid actions `[N, n_actions]` as booleans (sb3-contrib's MaskablePPO convention)."""
        return self.mask.astype(bool)

    @property
    def privileged_width(self) -> int:
        """Width of `privileged()`, known before the first reset."""
        return privileged_size(self.K)

    def privileged(self) -> np.ndarray:
        """Hidden-state features of the current step for an asymmetric critic (`envs/privileged.py`);
        never part of the observation."""
        return streaming_privileged(self)


def _vector_env(single: type[StreamingMemoryEnv]) -> type[StreamingVectorEnv]:
    name = single.__name__.replace("Env", "VectorEnv")
    doc = f"`{single.__name__}` x N, batched in numpy (see `StreamingVectorEnv`)."
    return type(name, (StreamingVectorEnv,), {"env_class": single, "__doc__": doc,
                                              "__module__": __name__})


def _tasks():
    from .conflict import ConflictEnv
    from .multihop import MultiHopEnv
    from .retrieval import RetrievalEnv
    from .test_time_learning import TestTimeLearningEnv

    return RetrievalEnv, ConflictEnv, MultiHopEnv, TestTimeLearningEnv


RetrievalVectorEnv, ConflictVectorEnv, MultiHopVectorEnv, TestTimeLearningVectorEnv = map(
    _vector_env, _tasks())
