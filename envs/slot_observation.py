"""The observation keys `item`, `slots` and `recall` of a `SlotMemory` (slot_memory.py), compiled:
one pass over the rows asked for, each row's features written straight into the output arrays.

The numpy version this replaces made ~40 whole-batch temporaries a call and was ~30 % of an
embodied vector step at 1,024 envs. A single env is a `SlotMemory` of one row and calls the same
kernel, so single and vector envs still agree bit for bit; similarities are `similarity.dot32`,
as in the streaming family.

numba's on-disk cache only notices edits of this file: an edit of similarity.py must come with its
new hash in `SIMILARITY_SHA256` below (tests/test_similarity.py checks it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .bank import _LOG_COUNT, _LOG_SCALE, COUNT_CAP
from .similarity import dot32

SIMILARITY_SHA256 = "8309b57724ddf3d9b0874948dfc28c3e37b9a974c752cf05e2ea16ee72897ecd"


@njit(cache=True)
def observe_rows(rows, progress, max_inner_ops, item, recall, queries, recall_valid, is_query,
                 num_queries_seen, inner_ops, t, occupied, emb, written_at, used_at, slot_reads,
                 slot_edits, item_obs, slots_obs, recall_obs) -> None:
    """Row `n` of `item_obs [M, D + 8]`, `slots_obs [M, K, D + 8]`, `recall_obs [M, D + 1]` from
    env `rows[n]` of the memory's arrays (`progress[n]`: its episode progress). Columns after the
    embedding, as the streaming family's (`streaming.py`): item — is query, progress, recall
    valid, similarity to recall, to the queries' mean, log queries seen, inner ops left,
    occupancy; slot — occupied, log age, log time since use, reads, edits, similarity to the
    item, to recall, to the queries' mean."""
    K, D = emb.shape[1], emb.shape[2]
    for n in range(rows.shape[0]):
        i = rows[n]
        it, rc, qu = item[i], recall[i], queries[i]
        out = item_obs[n]
        size = 0
        for k in range(K):
            size += occupied[i, k]
        for d in range(D):
            out[d] = it[d]
        out[D] = 1.0 if is_query[i] else 0.0
        out[D + 1] = progress[n]
        out[D + 2] = 1.0 if recall_valid[i] else 0.0
        out[D + 3] = dot32(it, rc)
        out[D + 4] = dot32(it, qu)
        out[D + 5] = math.log1p(num_queries_seen[i]) * _LOG_SCALE
        out[D + 6] = 1.0 - inner_ops[i] / max_inner_ops
        out[D + 7] = size / K
        rec = recall_obs[n]
        for d in range(D):
            rec[d] = rc[d]
        rec[D] = 1.0 if recall_valid[i] else 0.0
        now = t[i]
        for k in range(K):
            e, row = emb[i, k], slots_obs[n, k]
            for d in range(D):
                row[d] = e[d]
            if occupied[i, k]:
                row[D] = 1.0
                row[D + 1] = math.log1p(now - written_at[i, k]) * _LOG_SCALE
                row[D + 2] = math.log1p(now - used_at[i, k]) * _LOG_SCALE
            else:
                row[D] = row[D + 1] = row[D + 2] = 0.0
            row[D + 3] = _LOG_COUNT[min(slot_reads[i, k], COUNT_CAP)]
            row[D + 4] = _LOG_COUNT[min(slot_edits[i, k], COUNT_CAP)]
            row[D + 5] = dot32(e, it)
            row[D + 6] = dot32(e, rc)
            row[D + 7] = dot32(e, qu)
