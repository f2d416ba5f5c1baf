"""The compiled step of the streaming family's native vector env (`streaming_vector.py`).

Each kernel does for each of the rows it is given exactly what the single env (`streaming.py`)
does for itself, on the batched state arrays of `StreamingVectorEnv`. Kernels run without the
GIL. A step is one call, `step_rows`: the rows are cut into contiguous parts that run in
parallel on numba's threads (rows never touch each other's state), and in each part
`act_rows` applies every env's action and moves the envs that advance to their next position,
`fill_rows` (stream_kernel.py) generates items for the rows whose block of items is used up, and
`begin_rows` makes the next item current in the rows that advanced and writes the mask. (One
compiled parallel call costs ~2 us to hand out; handing parts to Python threads cost ~70 us a
step, a tenth of a step at 1,024 envs.)

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
from .stream_kernel import fill_rows

# The hashes of similarity.py and stream_kernel.py these kernels were compiled against: numba's
# cache only notices edits of this file, so an edit of either must come with its new hash here
# (which recompiles the kernels); tests/test_similarity.py and tests/test_stream_kernel.py check
# them.
SIMILARITY_SHA256 = "8309b57724ddf3d9b0874948dfc28c3e37b9a974c752cf05e2ea16ee72897ecd"
STREAM_KERNEL_SHA256 = "3327d1aa246fd8d9a17a019787d3e5d30e039bf06f00854a1f7432449d0073c8"

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
# The items generated ahead (`StreamBlocks`): `[N, B]` arrays, `[N, B, D]` embeddings, the
# stream position of each row's first item and the number of items in each row.
Blocks = namedtuple("Blocks", (
    "kind", "emb", "fact", "version", "answer", "answer_version", "asked_version", "next_update",
    "start", "filled"))
# The generator state of the streams (`StreamBatch`, stream.py): the arrays `fill_rows` takes.
Streams = namedtuple("Streams", (
    "rng", "fact_fixed", "fact_base", "query_base", "has_own_value", "update_scale",
    "restate_scale", "pending", "next_fact_time", "gen_version", "gen_query", "query_pos",
    "query_fact", "query_answer"))


@njit(cache=True, inline="always")
def _copy(dst, src) -> None:
    """`dst[:] = src` as a loop: numba's slice assignment from an array guards against overlap
    with a temporary copy, a heap allocation per call that cost more than the copy itself."""
    for d in range(src.shape[0]):
        dst[d] = src[d]


@njit(cache=True, inline="always")
def _ages(age_ref, ob_slots, t, D) -> None:
    """Log-scaled age and time since use of every slot of one row (0 for empty slots), from the
    row's `[K, 2]` reference times into its `[K, D + ...]` observation rows."""
    for k in range(age_ref.shape[0]):
        for c in range(2):
            ref = age_ref[k, c]
            if t <= _MAX_AGE:
                # `_LOG_AGE[_MAX_AGE - t + ref]`, an empty slot's huge reference clipped to the
                # last entry (0), as `MemoryBank.ages` reads it.
                j = _MAX_AGE - t + ref
                if j > _MAX_AGE:
                    j = _MAX_AGE
                ob_slots[k, D + S_AGE + c] = _LOG_AGE[j]
            else:
                age = t - ref if t > ref else 0
                ob_slots[k, D + S_AGE + c] = np.float32(np.log1p(np.float64(age)) * _LOG_SCALE)


# A note on the shape of the kernels below: each is a loop over rows with the per-row work
# written out in its body, not a call per row of a helper that takes the state `b`. Handing a
# tuple of 32 arrays to a function costs a reference-count update of every array in it, which
# numba does not prune once the function has branches; per row that was 3-4x the work itself.


@njit(cache=True, inline="always")
def _drop(fact, version, fact_version, copies, fates, fate) -> None:
    """Metrics of one slot's content (`fact`, `version`) leaving the bank (EVICT or an
    overwriting EDIT), on its row's `[F]` arrays."""
    if fact >= 0 and version == fact_version[fact]:
        copies[fact] -= 1
        if copies[fact] == 0:
            fates[fact] = fate


@njit(cache=True, nogil=True)
def act_rows(b, rows, actions, mask, op_of, slot_of, max_inner, write_cost, num_queries,
             op, slot, reward, advanced, absorbed) -> None:
    """Apply each env's action (as `StreamingMemoryEnv.step` up to `_begin_item`): validity
    against `mask`, the op and its metrics, the reward; an op that advances moves `t` on and
    sets `advanced[i]`; `op` and `slot` are scratch. The vector env then ends episodes at
    `t == length` and makes the next item current in the others (`begin_rows`)."""
    K, D = b.emb.shape[1], b.emb.shape[2]
    num_actions = mask.shape[1]
    counts = b.count_table
    for n in range(rows.shape[0]):
        i = rows[n]
        a = actions[i]
        valid = 0 <= a < num_actions and mask[i, a] == 1
        absorbed[i] = False
        if valid:
            op[i], slot[i] = op_of[a], slot_of[a]
        else:
            counts[i, C_INVALID] += 1
            op[i], slot[i] = _SKIP, 0  # a spent bound falls back to SKIP: the stream moves on
            if b.inner[i] < max_inner:
                absorbed[i] = True
                op[i] = ABSORBED
        o, s = op[i], slot[i]
        r = 0.0
        ob_item, ob_slots = b.ob_item, b.ob_slots
        if o == _EVICT:
            counts[i, C_EVICTIONS] += 1
            _drop(b.slot_fact[i, s], b.slot_version[i, s], b.fact_version[i], b.copies[i],
                  b.fate[i], _EVICTED)
            b.emb[i, s, :] = 0.0
            b.occupied[i, s] = False
            b.age_ref[i, s, :] = _EMPTY_REF
            b.reads[i, s] = 0
            b.edits[i, s] = 0
            b.slot_fact[i, s] = -1
            b.slot_version[i, s] = -1
            b.size[i] -= 1
            ob_slots[i, s, :] = 0.0
            ob_item[i, D + I_OCCUPANCY] = b.size[i] / K
        elif o == _RETRIEVE:
            counts[i, C_RETRIEVES] += 1
            b.reads[i, s] += 1
            b.age_ref[i, s, 1] = b.t[i]
            recall = b.recall[i]
            _copy(recall, b.emb[i, s])
            b.recall_fact[i] = b.slot_fact[i, s]
            b.recall_version[i] = b.slot_version[i, s]
            b.recall_valid[i] = True
            ob_slots[i, s, D + S_READS] = _LOG_COUNT[min(b.reads[i, s], COUNT_CAP)]
            ob_slots[i, s, D + S_SINCE_USED] = 0.0
            _copy(b.ob_recall[i, :D], recall)
            b.ob_recall[i, D] = 1.0
            ob_item[i, D + I_RECALL_VALID] = 1.0
            ob_item[i, D + I_SIM_RECALL] = dot32(b.item[i], recall)
            matvec32(b.emb[i], recall, ob_slots[i, :, D + S_SIM_RECALL])
        elif o == _STORE or o == _EDIT:
            if o == _EDIT:
                _drop(b.slot_fact[i, s], b.slot_version[i, s], b.fact_version[i], b.copies[i],
                      b.fate[i], _OVERWRITTEN)
                b.edits[i, s] += 1
                counts[i, C_EDITS] += 1
                ob_slots[i, s, D + S_EDITS] = _LOG_COUNT[min(b.edits[i, s], COUNT_CAP)]
            else:
                b.occupied[i, s] = True
                b.size[i] += 1
                counts[i, C_WRITES] += 1
                ob_slots[i, s, D + S_OCCUPIED] = 1.0
                ob_item[i, D + I_OCCUPANCY] = b.size[i] / K
            item, t = b.item[i], b.t[i]
            _copy(b.emb[i, s], item)
            b.age_ref[i, s, :] = t
            f, v = b.fact[i], b.version[i]
            b.slot_fact[i, s] = f
            b.slot_version[i, s] = v
            _copy(ob_slots[i, s, :D], item)
            if b.num_queries_seen[i] > 0:
                ob_slots[i, s, D + S_SIM_QUERIES] = dot32(item, b.queries[i])
            if f >= 0 and v == b.fact_version[i, f]:
                b.copies[i, f] += 1
                b.fate[i, f] = _STORED
            r -= write_cost
        elif o == _SKIP and b.kind[i] == _QUERY:  # submit `recall` as the answer
            recall_valid = b.recall_valid[i]
            right_fact = b.recall_fact[i] == b.answer[i]
            if not recall_valid:
                counts[i, C_ABSTENTIONS] += 1
            elif right_fact and b.recall_version[i] == b.answer_version[i]:
                counts[i, C_CORRECT] += 1
                r += 1.0 / num_queries
            elif right_fact:
                counts[i, C_STALE] += 1
            else:
                counts[i, C_WRONG] += 1
        if o == ABSORBED or o == _EVICT or o == _RETRIEVE:
            b.inner[i] += 1
            ob_item[i, D + I_INNER_LEFT] = 1.0 - b.inner[i] / max_inner
            advanced[i] = False
        else:
            b.utilisation_sum[i] += b.size[i] / K
            b.t[i] += 1
            advanced[i] = True
        reward[i] = r


@njit(cache=True, inline="always")
def _needed(slot_fact, slot_version, lost_version, fates, counts, f, v) -> None:
    """Lost items, on one row's arrays: a query needs version `v` of fact `f` and no slot
    holds it."""
    for k in range(slot_fact.shape[0]):
        if slot_fact[k] == f and slot_version[k] == v:
            return
    if lost_version[f] != v:
        lost_version[f] = v
        fate = fates[f]
        if fate == _SKIPPED:
            counts[C_LOST_SKIPPED] += 1
        elif fate == _EVICTED:
            counts[C_LOST_EVICTED] += 1
        elif fate == _OVERWRITTEN:
            counts[C_LOST_OVERWRITTEN] += 1


@njit(cache=True, inline="always")
def _begin_items(b, rows, blocks, length, needs_bridge, log_queries) -> None:
    """Make the item at `t` current in each of `rows` (as the single env's `_begin_item`)."""
    D = b.emb.shape[2]
    ob_item, ob_slots = b.ob_item, b.ob_slots
    for n in range(rows.shape[0]):
        i = rows[n]
        j = b.t[i] - blocks.start[i]
        kind = blocks.kind[i, j]
        fact = blocks.fact[i, j]
        item = b.item[i]
        _copy(item, blocks.emb[i, j])
        b.kind[i] = kind
        b.fact[i] = fact
        b.version[i] = blocks.version[i, j]
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
                _needed(b.slot_fact[i], b.slot_version[i], b.lost_version[i], b.fate[i],
                        b.count_table[i], fact, blocks.asked_version[i, j])
            _needed(b.slot_fact[i], b.slot_version[i], b.lost_version[i], b.fate[i],
                    b.count_table[i], b.answer[i], b.answer_version[i])
            query_sum, queries = b.query_sum[i], b.queries[i]
            for d in range(D):
                query_sum[d] += item[d]
            b.num_queries_seen[i] += 1
            unit32_of(query_sum, queries)
            matvec32(b.emb[i], queries, ob_slots[i, :, D + S_SIM_QUERIES])
            ob_item[i, D + I_QUERIES_SEEN] = log_queries[b.num_queries_seen[i]]
        elif kind == _FACT:
            v = b.version[i]
            if v != b.fact_version[i, fact]:
                b.fate[i, fact] = _SKIPPED
                b.copies[i, fact] = 0
                b.fact_version[i, fact] = v
        ob_item[i, D + I_IS_QUERY] = 1.0 if kind == _QUERY else 0.0
        _copy(ob_item[i, :D], item)
        ob_item[i, D + I_PROGRESS] = b.t[i] / length
        if b.num_queries_seen[i] > 0:
            ob_item[i, D + I_SIM_QUERIES] = dot32(item, b.queries[i])
        matvec32(b.emb[i], item, ob_slots[i, :, D + S_SIM_ITEM])
        _ages(b.age_ref[i], ob_slots[i], b.t[i], D)


@njit(cache=True, inline="always")
def _masks(b, rows, mask, max_inner) -> None:
    """The valid actions of each of `rows`: SKIP always; STORE into free and EDIT of occupied
    slots unless the item is a query; EVICT and RETRIEVE of occupied slots while inner ops are
    left."""
    K = b.occupied.shape[1]
    for n in range(rows.shape[0]):
        i = rows[n]
        writable = np.int8(b.kind[i] != _QUERY)
        inner_ok = np.int8(b.inner[i] < max_inner)
        occupied = b.occupied[i].view(np.int8)
        row = mask[i]
        row[0] = 1
        # Branch-free, so the loop runs on the vector units (a branch per entry cost ~4x).
        for k in range(K):
            occ = occupied[k]
            row[1 + k] = writable & (1 - occ)
            row[1 + K + k] = writable & occ
            row[1 + 2 * K + k] = inner_ok & occ
            row[1 + 3 * K + k] = inner_ok & occ


@njit(cache=True, nogil=True)
def begin_rows(b, going, rows, blocks, mask, length, max_inner, needs_bridge,
               log_queries) -> None:
    """The next item made current in the rows `going` (they advanced and their episode goes
    on), then the mask of the `rows` (`going` among them). Rows that did not advance keep
    their observation (their inner op updated it)."""
    _begin_items(b, going, blocks, length, needs_bridge, log_queries)
    _masks(b, rows, mask, max_inner)


@njit(cache=True, inline="always")
def _rebuild(b, rows, length, max_inner, log_queries) -> None:
    """Every observation feature of each of `rows` from scratch (the single env's
    `_rebuild_observation` and `MemoryBank.features`)."""
    K, D = b.emb.shape[1], b.emb.shape[2]
    ob_item, ob_slots, ob_recall = b.ob_item, b.ob_slots, b.ob_recall
    for n in range(rows.shape[0]):
        i = rows[n]
        emb, item, recall, queries = b.emb[i], b.item[i], b.recall[i], b.queries[i]
        _copy(ob_item[i, :D], item)
        ob_item[i, D + I_IS_QUERY] = 1.0 if b.kind[i] == _QUERY else 0.0
        ob_item[i, D + I_PROGRESS] = b.t[i] / length
        ob_item[i, D + I_RECALL_VALID] = 1.0 if b.recall_valid[i] else 0.0
        ob_item[i, D + I_SIM_RECALL] = dot32(item, recall)
        ob_item[i, D + I_SIM_QUERIES] = dot32(item, queries)
        ob_item[i, D + I_QUERIES_SEEN] = log_queries[b.num_queries_seen[i]]
        ob_item[i, D + I_INNER_LEFT] = 1.0 - b.inner[i] / max_inner
        ob_item[i, D + I_OCCUPANCY] = b.size[i] / K
        _copy(ob_recall[i, :D], recall)
        ob_recall[i, D] = 1.0 if b.recall_valid[i] else 0.0
        for k in range(K):
            _copy(ob_slots[i, k, :D], emb[k])
            ob_slots[i, k, D + S_OCCUPIED] = 1.0 if b.occupied[i, k] else 0.0
            ob_slots[i, k, D + S_READS] = _LOG_COUNT[min(b.reads[i, k], COUNT_CAP)]
            ob_slots[i, k, D + S_EDITS] = _LOG_COUNT[min(b.edits[i, k], COUNT_CAP)]
        _ages(b.age_ref[i], ob_slots[i], b.t[i], D)
        matvec32(emb, item, ob_slots[i, :, D + S_SIM_ITEM])
        matvec32(emb, recall, ob_slots[i, :, D + S_SIM_RECALL])
        matvec32(emb, queries, ob_slots[i, :, D + S_SIM_QUERIES])


@njit(cache=True, nogil=True)
def rebuild_rows(b, rows, length, max_inner, log_queries) -> None:
    _rebuild(b, rows, length, max_inner, log_queries)


@njit(cache=True, nogil=True)
def new_episode_rows(b, rows, blocks, mask, length, max_inner, needs_bridge, log_queries) -> None:
    """A fresh bank and episode state in each of `rows` (their streams already started), the
    first item made current, the whole observation and the mask (as the single env's `reset`)."""
    for n in range(rows.shape[0]):
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
    _begin_items(b, rows, blocks, length, needs_bridge, log_queries)
    _rebuild(b, rows, length, max_inner, log_queries)
    _masks(b, rows, mask, max_inner)


@njit(cache=True, inline="always")
def _step_part(b, blocks, streams, lo, hi, actions, mask, new_mask, op_of, slot_of, max_inner,
               write_cost, num_queries, length, fact_end, noise_scale, needs_bridge, log_queries,
               op, slot, reward, advanced, absorbed, going, spent, spent_at) -> None:
    """The step of rows `lo` to `hi` (see `step_rows`)."""
    rows = np.arange(lo, hi)
    act_rows(b, rows, actions, mask, op_of, slot_of, max_inner, write_cost, num_queries, op,
             slot, reward, advanced, absorbed)
    n_going = n_spent = 0
    for i in range(lo, hi):
        if advanced[i] and b.t[i] < length:
            going[lo + n_going] = i
            n_going += 1
            if b.t[i] - blocks.start[i] >= blocks.filled[i]:
                spent[lo + n_spent] = i
                spent_at[lo + n_spent] = b.t[i]
                n_spent += 1
    if n_spent > 0:
        g = streams
        fill_rows(spent[lo : lo + n_spent], spent_at[lo : lo + n_spent], blocks.kind.shape[1],
                  length, fact_end, noise_scale, g.rng, g.fact_fixed, g.fact_base, g.query_base,
                  g.has_own_value, g.update_scale, g.restate_scale, g.pending, g.next_fact_time,
                  g.gen_version, g.gen_query, g.query_pos, g.query_fact, g.query_answer,
                  blocks.kind, blocks.emb, blocks.fact, blocks.version, blocks.answer,
                  blocks.answer_version, blocks.asked_version, blocks.next_update, blocks.start,
                  blocks.filled)
    begin_rows(b, going[lo : lo + n_going], rows, blocks, new_mask, length, max_inner,
               needs_bridge, log_queries)


@njit(cache=True, nogil=True, parallel=True)
def step_rows(b, blocks, streams, bounds, actions, mask, new_mask, op_of, slot_of, max_inner,
              write_cost, num_queries, length, fact_end, noise_scale, needs_bridge, log_queries,
              op, slot, reward, advanced, absorbed, going, spent, spent_at) -> None:
    """One step of every row: rows `bounds[c]` to `bounds[c + 1]` are part `c`, the parts run in
    parallel. In each part: `act_rows` (actions checked against `mask`), items generated for the
    rows that advance, go on (`t < length`) and have used up their block, and `begin_rows` (the
    mask into `new_mask`). `going`, `spent`, `spent_at` are `[N]` scratch; the vector env ends
    the episodes at `t == length` afterwards."""
    for c in prange(bounds.shape[0] - 1):
        _step_part(b, blocks, streams, bounds[c], bounds[c + 1], actions, mask, new_mask, op_of,
                   slot_of, max_inner, write_cost, num_queries, length, fact_end, noise_scale,
                   needs_bridge, log_queries, op, slot, reward, advanced, absorbed, going, spent,
                   spent_at)


@njit(cache=True, nogil=True)
def step_rows_serial(b, blocks, streams, bounds, actions, mask, new_mask, op_of, slot_of,
                     max_inner, write_cost, num_queries, length, fact_end, noise_scale,
                     needs_bridge, log_queries, op, slot, reward, advanced, absorbed, going, spent,
                     spent_at) -> None:
    """`step_rows` on the calling thread alone: with one part there is nothing to run in
    parallel, and numba's parallel threads would wake (and spin a while after) for nothing, on
    the core a caller's policy may be using."""
    _step_part(b, blocks, streams, bounds[0], bounds[bounds.shape[0] - 1], actions, mask,
               new_mask, op_of, slot_of, max_inner, write_cost, num_queries, length, fact_end,
               noise_scale, needs_bridge, log_queries, op, slot, reward, advanced, absorbed,
               going, spent, spent_at)
