"""The compiled step of the streaming family's native vector env (`streaming_vector.py`).

Each function does for one env (row `i`) exactly what the single env (`streaming.py`) does, on
the batched state arrays of `StreamingVectorEnv`; the `*_rows` kernels run it for many rows,
split over the cores (`prange`: rows never touch each other's state). A step is two kernels with
one Python call between them: `act_rows` applies every env's action and moves the envs that
advance to their next position, the vector env then generates items for rows whose block of items
is used up, and `begin_rows` makes the next item current in those rows and writes the mask.

Similarities come from `similarity.py` (the single env uses the same functions), transcendental
features from tables made once in Python, so that the two agree bit for bit.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from .bank import _EMPTY_REF, _LOG_AGE, _LOG_COUNT, _LOG_SCALE, _MAX_AGE, COUNT_CAP
from .episode_metrics import Fate
from .ops import Op
from .similarity import dot32, matvec32, unit32_of
from .stream import ItemKind

# Columns after the embedding in an item row and in a slot row (see streaming.py).
I_IS_QUERY, I_PROGRESS, I_RECALL_VALID, I_SIM_RECALL, I_SIM_QUERIES, I_QUERIES_SEEN, \
    I_INNER_LEFT, I_OCCUPANCY = range(8)
S_OCCUPIED, S_AGE, S_SINCE_USED, S_READS, S_EDITS, S_SIM_ITEM, S_SIM_RECALL, S_SIM_QUERIES = \
    range(8)
# Columns of the per-env counters (`StreamingVectorEnv.counts` are views of them).
COUNTS = ("correct", "stale", "abstentions", "wrong", "writes", "edits", "evictions",
          "retrieves", "invalid_actions", "lost_skipped", "lost_evicted", "lost_overwritten")
C_CORRECT, C_STALE, C_ABSTENTIONS, C_WRONG, C_WRITES, C_EDITS, C_EVICTIONS, C_RETRIEVES, \
    C_INVALID, C_LOST_SKIPPED, C_LOST_EVICTED, C_LOST_OVERWRITTEN = range(len(COUNTS))

_SKIP, _STORE, _EDIT, _EVICT, _RETRIEVE = (int(op) for op in Op)
ABSORBED = -1  # pseudo-op of an invalid action that only uses up one inner op
_DISTRACTOR, _FACT, _QUERY = (int(k) for k in ItemKind)
_SKIPPED, _STORED, _EVICTED, _OVERWRITTEN = (int(f) for f in Fate)


# The batched bank and per-env episode state the kernels read and write, passed as one argument
# (numba takes a namedtuple of arrays). `StreamingVectorEnv` owns the arrays; see its __init__.
Rows = namedtuple("Rows", (
    # the bank: [N, K, D] embeddings, [N, K] flags and counts, [N, K, 2] (written, used) times
    "emb", "occupied", "age_ref", "reads", "edits", "slot_fact", "slot_version", "size",
    # the position, the inner ops spent on the item, the current item
    "t", "inner", "kind", "item", "fact", "version", "answer", "answer_version",
    # the queries seen so far, and what `recall` holds
    "query_sum", "queries", "num_queries_seen", "recall", "recall_valid", "recall_fact",
    "recall_version",
    # episode metrics: [N, len(COUNTS)] counters, and per fact [N, F]
    "count_table", "utilisation_sum", "fact_version", "fate", "copies", "lost_version",
    # the observation buffers
    "ob_item", "ob_slots", "ob_recall",
))
# The items generated ahead (`StreamBlocks`): `[N, B]` arrays, `[N, B, D]` embeddings, and the
# stream position of each row's first item.
Blocks = namedtuple("Blocks", (
    "kind", "emb", "fact", "version", "answer", "answer_version", "asked_version", "start"))


@njit(cache=True, inline="always")
def _ages(b, i) -> None:
    """Log-scaled age and time since use of every slot of row `i` (0 for empty slots)."""
    age_ref, ob_slots, t = b.age_ref, b.ob_slots, b.t[i]
    D = b.emb.shape[2]
    for k in range(age_ref.shape[1]):
        for c in range(2):
            ref = age_ref[i, k, c]
            if t <= _MAX_AGE:
                # `_LOG_AGE[_MAX_AGE - t + ref]`, an empty slot's huge reference clipped to the
                # last entry (0), as `MemoryBank.ages` reads it.
                j = _MAX_AGE - t + ref
                if j > _MAX_AGE:
                    j = _MAX_AGE
                ob_slots[i, k, D + S_AGE + c] = _LOG_AGE[j]
            else:
                age = t - ref if t > ref else 0
                ob_slots[i, k, D + S_AGE + c] = np.float32(np.log1p(np.float64(age)) * _LOG_SCALE)


@njit(cache=True, inline="always")
def _drop(b, i, s, fate) -> None:
    """Metrics of slot `s`'s content leaving the bank (EVICT or an overwriting EDIT)."""
    f, v = b.slot_fact[i, s], b.slot_version[i, s]
    if f >= 0 and v == b.fact_version[i, f]:
        copies = b.copies
        copies[i, f] -= 1
        if copies[i, f] == 0:
            b.fate[i, f] = fate


@njit(cache=True, inline="always")
def _evict(b, i, s, K) -> None:
    D = b.emb.shape[2]
    b.count_table[i, C_EVICTIONS] += 1
    _drop(b, i, s, _EVICTED)
    b.emb[i, s, :] = 0.0
    b.occupied[i, s] = False
    b.age_ref[i, s, 0] = _EMPTY_REF
    b.age_ref[i, s, 1] = _EMPTY_REF
    b.reads[i, s] = 0
    b.edits[i, s] = 0
    b.slot_fact[i, s] = -1
    b.slot_version[i, s] = -1
    b.size[i] -= 1
    b.ob_slots[i, s, :] = 0.0
    b.ob_item[i, D + I_OCCUPANCY] = b.size[i] / K


@njit(cache=True, inline="always")
def _retrieve(b, i, s) -> None:
    D = b.emb.shape[2]
    emb, recall = b.emb, b.recall
    b.count_table[i, C_RETRIEVES] += 1
    b.reads[i, s] += 1
    b.age_ref[i, s, 1] = b.t[i]
    recall[i, :] = emb[i, s]
    b.recall_fact[i] = b.slot_fact[i, s]
    b.recall_version[i] = b.slot_version[i, s]
    b.recall_valid[i] = True
    ob_slots, ob_item, ob_recall = b.ob_slots, b.ob_item, b.ob_recall
    ob_slots[i, s, D + S_READS] = _LOG_COUNT[min(b.reads[i, s], COUNT_CAP)]
    ob_slots[i, s, D + S_SINCE_USED] = 0.0
    ob_recall[i, :D] = recall[i]
    ob_recall[i, D] = 1.0
    ob_item[i, D + I_RECALL_VALID] = 1.0
    ob_item[i, D + I_SIM_RECALL] = dot32(b.item[i], recall[i])
    matvec32(emb[i], recall[i], ob_slots[i, :, D + S_SIM_RECALL])


@njit(cache=True, inline="always")
def _write(b, i, s, is_edit, K) -> None:
    D = b.emb.shape[2]
    t = b.t[i]
    ob_slots, ob_item = b.ob_slots, b.ob_item
    if is_edit:
        _drop(b, i, s, _OVERWRITTEN)
        b.edits[i, s] += 1
        b.count_table[i, C_EDITS] += 1
        ob_slots[i, s, D + S_EDITS] = _LOG_COUNT[min(b.edits[i, s], COUNT_CAP)]
    else:
        b.occupied[i, s] = True
        b.size[i] += 1
        b.count_table[i, C_WRITES] += 1
        ob_slots[i, s, D + S_OCCUPIED] = 1.0
        ob_item[i, D + I_OCCUPANCY] = b.size[i] / K
    item = b.item[i]
    b.emb[i, s, :] = item
    b.age_ref[i, s, 0] = t
    b.age_ref[i, s, 1] = t
    f, v = b.fact[i], b.version[i]
    b.slot_fact[i, s] = f
    b.slot_version[i, s] = v
    ob_slots[i, s, :D] = item
    if b.num_queries_seen[i] > 0:
        ob_slots[i, s, D + S_SIM_QUERIES] = dot32(item, b.queries[i])
    if f >= 0 and v == b.fact_version[i, f]:
        b.copies[i, f] += 1
        b.fate[i, f] = _STORED


@njit(cache=True, inline="always")
def _answer(b, i, num_queries) -> float:
    c = b.count_table
    valid = b.recall_valid[i]
    right_fact = b.recall_fact[i] == b.answer[i]
    correct = valid and right_fact and b.recall_version[i] == b.answer_version[i]
    if not valid:
        c[i, C_ABSTENTIONS] += 1
    elif correct:
        c[i, C_CORRECT] += 1
    elif right_fact:
        c[i, C_STALE] += 1
    else:
        c[i, C_WRONG] += 1
    return 1.0 / num_queries if correct else 0.0


@njit(cache=True)
def act_rows(b, actions, mask, op_of, slot_of, max_inner, length, write_cost, num_queries,
             reward, advanced, absorbed) -> None:
    """Apply each env's action (as `StreamingMemoryEnv.step` up to `_begin_item`): validity
    against `mask`, the op and its metrics, the reward; an op that advances moves `t` on and
    sets `advanced[i]` (the vector env ends episodes at `t == length` and makes the next item
    current in the others with `begin_rows`)."""
    N, K = b.emb.shape[0], b.emb.shape[1]
    D = b.emb.shape[2]
    num_actions = mask.shape[1]
    for i in prange(N):
        a = actions[i]
        valid = 0 <= a < num_actions and mask[i, a] == 1
        absorbed[i] = False
        op = _SKIP
        slot = 0
        if not valid:
            b.count_table[i, C_INVALID] += 1
            if b.inner[i] < max_inner:
                absorbed[i] = True
                op = ABSORBED
        else:
            op, slot = op_of[a], slot_of[a]
        r = 0.0
        if op == _EVICT:
            _evict(b, i, slot, K)
        elif op == _RETRIEVE:
            _retrieve(b, i, slot)
        if op == ABSORBED or op == _EVICT or op == _RETRIEVE:
            b.inner[i] += 1
            b.ob_item[i, D + I_INNER_LEFT] = 1.0 - b.inner[i] / max_inner
            advanced[i] = False
        else:
            if op == _STORE or op == _EDIT:
                _write(b, i, slot, op == _EDIT, K)
                r -= write_cost
            elif b.kind[i] == _QUERY:
                r += _answer(b, i, num_queries)
            b.utilisation_sum[i] += b.size[i] / K
            b.t[i] += 1
            advanced[i] = True
        reward[i] = r


@njit(cache=True, inline="always")
def _needed(b, i, f, v) -> None:
    """Lost items: a query needs version `v` of fact `f` and no slot holds it."""
    slot_fact, slot_version = b.slot_fact, b.slot_version
    for k in range(slot_fact.shape[1]):
        if slot_fact[i, k] == f and slot_version[i, k] == v:
            return
    lost_version = b.lost_version
    if lost_version[i, f] != v:
        lost_version[i, f] = v
        fate = b.fate[i, f]
        if fate == _SKIPPED:
            b.count_table[i, C_LOST_SKIPPED] += 1
        elif fate == _EVICTED:
            b.count_table[i, C_LOST_EVICTED] += 1
        elif fate == _OVERWRITTEN:
            b.count_table[i, C_LOST_OVERWRITTEN] += 1


@njit(cache=True, inline="always")
def _begin_item(b, i, blocks, length, needs_bridge, log_queries) -> None:
    """Make the item at `t` current in row `i` (as the single env's `_begin_item`)."""
    D = b.emb.shape[2]
    j = b.t[i] - blocks.start[i]
    kind = blocks.kind[i, j]
    emb = blocks.emb[i, j]
    fact = blocks.fact[i, j]
    b.kind[i] = kind
    item = b.item[i]
    item[:] = emb
    b.fact[i] = fact
    b.version[i] = blocks.version[i, j]
    ob_item, ob_slots = b.ob_item, b.ob_slots
    if b.recall_valid[i]:  # `recall` holds for one item only
        b.recall[i, :] = 0.0
        b.recall_valid[i] = False
        b.recall_fact[i] = -1
        b.recall_version[i] = -1
        b.ob_recall[i, :] = 0.0
        ob_slots[i, :, D + S_SIM_RECALL] = 0.0
        ob_item[i, D + I_RECALL_VALID] = 0.0
        ob_item[i, D + I_SIM_RECALL] = 0.0
    b.inner[i] = 0
    ob_item[i, D + I_INNER_LEFT] = 1.0
    if kind == _QUERY:
        b.answer[i] = blocks.answer[i, j]
        b.answer_version[i] = blocks.answer_version[i, j]
        if needs_bridge:
            _needed(b, i, fact, blocks.asked_version[i, j])
        _needed(b, i, b.answer[i], b.answer_version[i])
        query_sum, queries = b.query_sum, b.queries
        for d in range(D):
            query_sum[i, d] += item[d]
        b.num_queries_seen[i] += 1
        unit32_of(query_sum[i], queries[i])
        matvec32(b.emb[i], queries[i], ob_slots[i, :, D + S_SIM_QUERIES])
        ob_item[i, D + I_QUERIES_SEEN] = log_queries[b.num_queries_seen[i]]
    elif kind == _FACT:
        v = b.version[i]
        if v != b.fact_version[i, fact]:
            b.fate[i, fact] = _SKIPPED
            b.copies[i, fact] = 0
            b.fact_version[i, fact] = v
    ob_item[i, D + I_IS_QUERY] = 1.0 if kind == _QUERY else 0.0
    ob_item[i, :D] = item
    ob_item[i, D + I_PROGRESS] = b.t[i] / length
    if b.num_queries_seen[i] > 0:
        ob_item[i, D + I_SIM_QUERIES] = dot32(item, b.queries[i])
    matvec32(b.emb[i], item, ob_slots[i, :, D + S_SIM_ITEM])
    _ages(b, i)


@njit(cache=True, inline="always")
def _row_mask(b, i, mask, max_inner) -> None:
    """Row `i`'s valid actions: SKIP always; STORE into free and EDIT of occupied slots unless
    the item is a query; EVICT and RETRIEVE of occupied slots while inner ops are left."""
    occupied = b.occupied
    K = occupied.shape[1]
    writable = b.kind[i] != _QUERY
    inner_ok = b.inner[i] < max_inner
    mask[i, 0] = 1
    for k in range(K):
        occ = occupied[i, k]
        mask[i, 1 + k] = 1 if (writable and not occ) else 0
        mask[i, 1 + K + k] = 1 if (writable and occ) else 0
        m = 1 if (inner_ok and occ) else 0
        mask[i, 1 + 2 * K + k] = m
        mask[i, 1 + 3 * K + k] = m


@njit(cache=True)
def begin_rows(b, blocks, advanced, mask, length, max_inner, needs_bridge, log_queries) -> None:
    """Every row: the next item made current where `advanced` (and the episode goes on), then
    the mask. Rows that did not advance keep their observation (their inner op updated it)."""
    N = b.emb.shape[0]
    for i in prange(N):
        if advanced[i] and b.t[i] < length:
            _begin_item(b, i, blocks, length, needs_bridge, log_queries)
        _row_mask(b, i, mask, max_inner)


@njit(cache=True, inline="always")
def _rebuild(b, i, length, max_inner, log_queries) -> None:
    """Every observation feature of row `i` from scratch (the single env's
    `_rebuild_observation` and `MemoryBank.features`)."""
    emb = b.emb
    K, D = emb.shape[1], emb.shape[2]
    item, recall, queries = b.item[i], b.recall[i], b.queries[i]
    ob_item, ob_slots, ob_recall = b.ob_item, b.ob_slots, b.ob_recall
    ob_item[i, :D] = item
    ob_item[i, D + I_IS_QUERY] = 1.0 if b.kind[i] == _QUERY else 0.0
    ob_item[i, D + I_PROGRESS] = b.t[i] / length
    ob_item[i, D + I_RECALL_VALID] = 1.0 if b.recall_valid[i] else 0.0
    ob_item[i, D + I_SIM_RECALL] = dot32(item, recall)
    ob_item[i, D + I_SIM_QUERIES] = dot32(item, queries)
    ob_item[i, D + I_QUERIES_SEEN] = log_queries[b.num_queries_seen[i]]
    ob_item[i, D + I_INNER_LEFT] = 1.0 - b.inner[i] / max_inner
    ob_item[i, D + I_OCCUPANCY] = b.size[i] / K
    ob_recall[i, :D] = recall
    ob_recall[i, D] = 1.0 if b.recall_valid[i] else 0.0
    for k in range(K):
        ob_slots[i, k, :D] = emb[i, k]
        ob_slots[i, k, D + S_OCCUPIED] = 1.0 if b.occupied[i, k] else 0.0
        ob_slots[i, k, D + S_READS] = _LOG_COUNT[min(b.reads[i, k], COUNT_CAP)]
        ob_slots[i, k, D + S_EDITS] = _LOG_COUNT[min(b.edits[i, k], COUNT_CAP)]
    _ages(b, i)
    matvec32(emb[i], item, ob_slots[i, :, D + S_SIM_ITEM])
    matvec32(emb[i], recall, ob_slots[i, :, D + S_SIM_RECALL])
    matvec32(emb[i], queries, ob_slots[i, :, D + S_SIM_QUERIES])


@njit(cache=True)
def rebuild_rows(b, rows, length, max_inner, log_queries) -> None:
    for n in prange(rows.shape[0]):
        _rebuild(b, rows[n], length, max_inner, log_queries)


@njit(cache=True)
def new_episode_rows(b, rows, blocks, mask, length, max_inner, needs_bridge, log_queries) -> None:
    """A fresh bank and episode state in each of `rows` (their streams already started), the
    first item made current, the whole observation and the mask (as the single env's `reset`)."""
    for n in prange(rows.shape[0]):
        i = rows[n]
        b.emb[i] = 0.0
        b.occupied[i] = False
        b.age_ref[i] = _EMPTY_REF
        b.reads[i] = 0
        b.edits[i] = 0
        b.slot_fact[i] = -1
        b.slot_version[i] = -1
        b.size[i] = 0
        b.t[i] = 0
        b.inner[i] = 0
        b.kind[i] = 0
        b.query_sum[i] = 0.0
        b.queries[i] = 0.0
        b.num_queries_seen[i] = 0
        b.recall[i] = 0.0
        b.recall_valid[i] = False
        b.recall_fact[i] = -1
        b.recall_version[i] = -1
        b.count_table[i] = 0
        b.utilisation_sum[i] = 0.0
        b.fact_version[i] = -1
        b.fate[i] = _SKIPPED
        b.copies[i] = 0
        b.lost_version[i] = -1
        b.ob_item[i] = 0.0
        b.ob_slots[i] = 0.0
        b.ob_recall[i] = 0.0
        _begin_item(b, i, blocks, length, needs_bridge, log_queries)
        _rebuild(b, i, length, max_inner, log_queries)
        _row_mask(b, i, mask, max_inner)
