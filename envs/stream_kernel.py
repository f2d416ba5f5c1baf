"""Numba kernels that generate streaming episodes for many rows (envs) at once.

Two kernels, each one call for any number of rows:

- `start_rows`: a new episode in each given row: its random components (keys, values, topics),
  intro times, query schedule, the positions each fact's versions are needed at (`needed_*`, CSR)
  and the first mention of every fact booked.
- `fill_rows`: the next items of each given row, in order, into `[N, B, ...]` block arrays
  (`fill_rows_parallel`: the same, the rows spread over threads with `prange`).

All state is batched per row (`[N, F]`, `[N, F, D]`, `[N, Q]` arrays, allocated once by
`StreamBatch` in stream.py) and all randomness comes from the row's own generator
(`kernel_random`), seeded once per episode. Items are generated strictly one after the other and
each draws what it needs when it is made, so a row's items do not depend on how they are cut into
blocks, nor on which other rows share a call. Memory is `O(F + Q)` per row whatever the length:
only the next update and the next restatement of each fact are booked at any time.

A row's stream, item by item (see stream.py for the task-level description):
- a query position (fixed at start) emits the query; its answer is the current version of the
  asked fact's answer fact, snapshotted with the item;
- a booked mention emits a fact: an intro or update starts a new version (an update of a fact with
  a value of its own draws a fresh value) and books the fact's next update, an intro or
  restatement books the next restatement, each a geometric gap later, moved on past positions
  already taken by a booked mention or a query, never at or past `fact_end`;
- anything else is a distractor: a fresh random unit vector.

Set-up and items stay in one file, though it is long: numba's on-disk cache only notices edits of
a compiled function's own file, so helpers shared across files would need a guard like
`KERNEL_RANDOM_SHA256` below for each.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .embedding import W_FACT, W_KEY, W_QUERY, W_TOPIC, W_VALUE
from .kernel_random import below, normal, seed_row, shuffle, uniform

# The hash of kernel_random.py these kernels were compiled against. numba's cache only notices
# edits of this file, so an edit of kernel_random.py must come with a new hash here (that edit of
# this file is what recompiles the kernels); `python -c "import hashlib, memgym.envs.kernel_random
# as m; print(hashlib.sha256(open(m.__file__, 'rb').read()).hexdigest())"`. A test checks it.
KERNEL_RANDOM_SHA256 = "5a9b95e69ead79a0630c7149835986bc5f95fc5aad5c6acf68a7f9e991beef13"

NEVER = np.iinfo(np.int64).max
DISTRACTOR, FACT, QUERY = 0, 1, 2
# Slots of a fact's booked mentions (`pending[i, f]`): the next mention that starts a version (its
# intro, then its updates) and the next restatement.
_STARTS, _RESTATES = 0, 1
# A gap scale that means "no next mention of this kind" (real scales, 1 / log(1 - p), are <= 0).
NO_NEXT = 1.0
# `start_rows` status codes (column 0; column 1: the query concerned).
OK, TOO_SHORT_FOR_QUERIES, NO_FACT_BEFORE_QUERY = 0, 1, 2


# ---- episode set-up ----------------------------------------------------------------------------


@njit(cache=True)
def start_rows(rows, seeds, queryable, answer_of, link_of, topic_of, updatable, num_topics,
               length, end_schedule, fact_end, distractor_rate, update_rate, key_similarity,
               fact_dir, query_dir,
               rng, fact_fixed, fact_base, query_base, has_own_value, update_scale, restate_scale,
               pending, next_fact_time, gen_version, gen_query, query_pos, query_fact,
               query_answer, needed_ptr, needed_pos, status):
    """Start an episode in row `rows[n]` from `seeds[n]` and the task structure in row `n` of
    `queryable` ... `num_topics`. `status[n]` says whether its queries could be scheduled."""
    for n in range(rows.shape[0]):
        i = rows[n]
        status[n, 0], status[n, 1] = _start_row(
            rng[i], seeds[n], queryable[n], answer_of[n], link_of[n], topic_of[n], updatable[n],
            num_topics[n], length, end_schedule, fact_end, distractor_rate, update_rate,
            key_similarity, fact_dir, query_dir, fact_fixed[i], fact_base[i], query_base[i],
            has_own_value[i], update_scale[i], restate_scale[i], pending[i], gen_version[i],
            query_pos[i], query_fact[i], query_answer[i], needed_ptr[i], needed_pos[i])
        next_fact_time[i] = _earliest(pending[i])
        gen_query[i] = 0


@njit(cache=True)
def _start_row(state, seed, queryable, answer_of, link_of, topic_of, updatable, num_topics,
               length, end_schedule, fact_end, distractor_rate, update_rate, key_similarity,
               fact_dir, query_dir, fact_fixed, fact_base, query_base, has_own_value,
               update_scale, restate_scale, pending, gen_version, query_pos, query_fact,
               query_answer, needed_ptr, needed_pos):
    F, D = fact_base.shape
    seed_row(state, seed)
    _components(state, link_of, topic_of, max(num_topics, 1), key_similarity, fact_dir, query_dir,
                fact_fixed, fact_base, query_base)
    # Mean gap between mentions of one fact, so that mentions fill (1 - distractor_rate) of the
    # non-query positions.
    gap = F / (1.0 - distractor_rate)
    for f in range(F):
        has_own_value[f] = link_of[f] < 0
        ur = update_rate if updatable[f] else 0.0
        update_scale[f] = _gap_scale(min(1.0, ur / gap) if ur > 0.0 else 0.0)
        restate_scale[f] = _gap_scale(min(1.0, (1.0 - ur) / gap) if ur < 1.0 else 0.0)
        gen_version[f] = -1

    # Intro times: F distinct positions in the first `span`, in random order.
    span = min(fact_end, max(2 * F, int(math.ceil(gap))))
    intro = np.empty(F, np.int64)
    for f in range(F):
        x = below(state, span)
        while _contains(intro, f, x):
            x = below(state, span)
        intro[f] = x
        pending[f, _STARTS] = x
        pending[f, _RESTATES] = NEVER

    ready = np.empty(F, np.int64)  # a query about f may come after this position
    for f in range(F):
        ready[f] = max(intro[f], intro[answer_of[f]])
    code = _query_positions(intro, ready, queryable, length, end_schedule, query_pos)
    if code != OK:
        return code, 0
    failed = _query_facts(state, ready, queryable, answer_of, query_pos, query_fact, query_answer)
    if failed >= 0:
        return NO_FACT_BEFORE_QUERY, failed
    _needed_csr(query_pos, query_fact, query_answer, needed_ptr, needed_pos)
    return OK, 0


@njit(cache=True)
def _components(state, link_of, topic_of, T, key_similarity, fact_dir, query_dir,
                fact_fixed, fact_base, query_base):
    """Keys (mixed with a shared direction by `key_similarity`), values (a linked fact's value is
    the key of the fact it points at) and topics, as the three per-fact parts embeddings are made
    from: `fact_fixed` (all of a fact mention but its value), `fact_base` and `query_base`."""
    F, D = fact_base.shape
    shared = np.empty(D)
    _random_unit(state, shared)
    keys = np.empty((F, D))
    own = math.sqrt(1.0 - key_similarity * key_similarity)
    for f in range(F):
        _random_unit(state, keys[f])
        for d in range(D):
            keys[f, d] = key_similarity * shared[d] + own * keys[f, d]
        _normalise(keys[f])
    values = np.empty((F, D))
    for f in range(F):
        _random_unit(state, values[f])
    topics = np.empty((T, D))
    for k in range(T):
        _random_unit(state, topics[k])
    for f in range(F):
        value = keys[link_of[f]] if link_of[f] >= 0 else values[f]
        k = topic_of[f]
        for d in range(D):
            topic = W_TOPIC * topics[k, d] if k >= 0 else 0.0
            fixed = W_KEY * keys[f, d] + W_FACT * fact_dir[d] + topic
            fact_fixed[f, d] = fixed
            fact_base[f, d] = fixed + W_VALUE * value[d]
            query_base[f, d] = W_KEY * keys[f, d] + W_QUERY * query_dir[d] + topic


@njit(cache=True)
def _query_positions(intro, ready, queryable, length, end_schedule, query_pos):
    """All at the end, or spread evenly from the first askable moment to the last item, kept
    distinct, ordered and clear of the intros."""
    Q = query_pos.shape[0]
    if end_schedule:
        for k in range(Q):
            query_pos[k] = length - Q + k
        return OK
    start = NEVER
    for f in range(ready.shape[0]):
        if queryable[f]:
            start = min(start, ready[f] + 1)
    if Q > 1:
        step = (length - 1 - start) / (Q - 1)
        for k in range(Q - 1):
            query_pos[k] = _round_half_even(k * step + start)  # as `np.linspace(...).round()`
        query_pos[Q - 1] = length - 1
    else:
        query_pos[0] = start
    F = intro.shape[0]
    for k in range(Q):
        p = max(query_pos[k], query_pos[k - 1] + 1 if k else 0)
        while _contains(intro, F, p):
            p += 1
        query_pos[k] = p
    return OK if query_pos[Q - 1] < length else TOO_SHORT_FOR_QUERIES


@njit(cache=True)
def _query_facts(state, ready, queryable, answer_of, query_pos, query_fact, query_answer):
    """Which fact each query asks about: cycle through random orders of the askable facts, so each
    is asked about equally often, taking at each query the first of the current order that is
    ready. Returns -1, or the first query no fact is ready for."""
    C = 0
    for f in range(queryable.shape[0]):
        if queryable[f]:
            C += 1
    candidates = np.empty(C, np.int64)
    c = 0
    for f in range(queryable.shape[0]):
        if queryable[f]:
            candidates[c] = f
            c += 1
    Q = query_pos.shape[0]
    # At most one extra order is appended per query (and one query taken), so this never fills.
    order = np.empty(C * (Q + 2), np.int64)
    m = _append_order(state, candidates, order, 0)
    for k in range(Q):
        p = query_pos[k]
        j = _first_ready(order, m, ready, p)
        if j < 0:  # the rest of this cycle is introduced later: ask one a second time
            m = _append_order(state, candidates, order, m)
            j = _first_ready(order, m, ready, p)
        if j < 0:
            return k
        f = order[j]
        for h in range(j, m - 1):  # explicit loops: slice copies cost seconds of compile time
            order[h] = order[h + 1]
        m -= 1
        query_fact[k] = f
        query_answer[k] = answer_of[f]
        if m == 0:
            m = _append_order(state, candidates, order, 0)
    return -1


@njit(cache=True)
def _append_order(state, candidates, order, m):
    C = candidates.shape[0]
    for c in range(C):
        order[m + c] = candidates[c]
    shuffle(state, order[m : m + C])
    return m + C


@njit(cache=True)
def _first_ready(order, m, ready, p):
    for j in range(m):
        if ready[order[j]] < p:
            return j
    return -1


@njit(cache=True)
def _needed_csr(query_pos, query_fact, query_answer, needed_ptr, needed_pos):
    """For each fact `f`, `needed_pos[needed_ptr[f]:needed_ptr[f + 1]]`: the positions of the
    queries that need its current version (it is asked about, or answers). Sorted and distinct:
    queries come in order, one per position."""
    F = needed_ptr.shape[0] - 1
    needed_ptr[:] = 0
    Q = query_pos.shape[0]
    for k in range(Q):
        f, a = query_fact[k], query_answer[k]
        needed_ptr[f + 1] += 1
        if a != f:
            needed_ptr[a + 1] += 1
    for f in range(F):
        needed_ptr[f + 1] += needed_ptr[f]
    cursor = needed_ptr[:F].copy()
    for k in range(Q):
        f, a = query_fact[k], query_answer[k]
        needed_pos[cursor[f]] = query_pos[k]
        cursor[f] += 1
        if a != f:
            needed_pos[cursor[a]] = query_pos[k]
            cursor[a] += 1


# ---- items -------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)  # without the GIL: the vector env's threads each fill their rows
def fill_rows(rows, starts, limit, length, fact_end, noise_scale,
              rng, fact_fixed, fact_base, query_base, has_own_value, update_scale, restate_scale,
              pending, next_fact_time, gen_version, gen_query, query_pos, query_fact,
              query_answer,
              kind, emb, fact, version, answer, answer_version, asked_version, next_update,
              block_start, block_filled):
    """Items `starts[n], starts[n] + 1, ...` of row `rows[n]` (as many as a block holds and
    `limit` allows, never past `length`; `starts[n]` is the row's next ungenerated item) into
    the row's block: `kind`, `emb`, `fact` (-1: none), `version` (-1: none); for queries the
    fact whose current version answers it, that version and the version of the asked fact itself
    (multi-hop needs the bridge too), as of the query (-1 elsewhere); for mentions that start a
    version the time of the fact's next update (`next_update`, NEVER if none; -1 elsewhere). One row after another."""
    for n in range(rows.shape[0]):
        _fill_one(rows[n], starts[n], limit, length, fact_end, noise_scale, rng, fact_fixed,
                  fact_base, query_base, has_own_value, update_scale, restate_scale, pending,
                  next_fact_time, gen_version, gen_query, query_pos, query_fact, query_answer,
                  kind, emb, fact, version, answer, answer_version, asked_version, next_update,
                  block_start, block_filled)


@njit(cache=True, parallel=True)
def fill_rows_parallel(rows, starts, limit, length, fact_end, noise_scale,
                       rng, fact_fixed, fact_base, query_base, has_own_value, update_scale,
                       restate_scale, pending, next_fact_time, gen_version, gen_query, query_pos,
                       query_fact, query_answer,
                       kind, emb, fact, version, answer, answer_version, asked_version,
                       next_update, block_start, block_filled):
    """`fill_rows` with the rows spread over threads (rows are independent: same items)."""
    for n in prange(rows.shape[0]):
        _fill_one(rows[n], starts[n], limit, length, fact_end, noise_scale, rng, fact_fixed,
                  fact_base, query_base, has_own_value, update_scale, restate_scale, pending,
                  next_fact_time, gen_version, gen_query, query_pos, query_fact, query_answer,
                  kind, emb, fact, version, answer, answer_version, asked_version, next_update,
                  block_start, block_filled)


@njit(cache=True)
def _fill_one(i, t, limit, length, fact_end, noise_scale, rng, fact_fixed, fact_base, query_base,
              has_own_value, update_scale, restate_scale, pending, next_fact_time, gen_version,
              gen_query, query_pos, query_fact, query_answer, kind, emb, fact, version, answer,
              answer_version, asked_version, next_update, block_start, block_filled):
    count = min(kind.shape[1], length - t, limit)
    block_start[i] = t
    block_filled[i] = count
    gen_query[i], next_fact_time[i] = _fill_row(
        rng[i], t, count, fact_end, noise_scale, fact_fixed[i], fact_base[i], query_base[i],
        has_own_value[i], update_scale[i], restate_scale[i], pending[i], next_fact_time[i],
        gen_version[i], gen_query[i], query_pos[i], query_fact[i], query_answer[i], kind[i],
        emb[i], fact[i], version[i], answer[i], answer_version[i], asked_version[i],
        next_update[i])


@njit(cache=True)
def _fill_row(state, t, count, fact_end, noise_scale, fact_fixed, fact_base, query_base,
              has_own_value, update_scale, restate_scale, pending, ft, gen_version, q, query_pos,
              query_fact, query_answer, kind, emb, fact, version, answer, answer_version,
              asked_version, next_update):
    D = emb.shape[1]
    Q = query_pos.shape[0]
    x = np.empty(D)
    for j in range(count):
        p = t + j
        qt = query_pos[q] if q < Q else NEVER
        if p == qt:
            f, a = query_fact[q], query_answer[q]
            q += 1
            kind[j], fact[j], version[j], next_update[j] = QUERY, f, -1, -1
            answer[j], answer_version[j], asked_version[j] = a, gen_version[a], gen_version[f]
            _noisy(state, query_base[f], noise_scale, x, emb[j])
            continue
        answer[j], answer_version[j], asked_version[j] = -1, -1, -1
        if p != ft:
            kind[j], fact[j], version[j], next_update[j] = DISTRACTOR, -1, -1, -1
            _random_unit_into(state, x, emb[j])
            continue
        f, s = _booked_at(pending, p)
        pending[f, s] = NEVER
        v = gen_version[f]
        nu = -1
        if s == _STARTS:  # an intro (v == -1) or an update
            if v >= 0 and has_own_value[f]:
                _random_unit(state, x)
                for d in range(D):
                    fact_base[f, d] = fact_fixed[f, d] + W_VALUE * x[d]
            v += 1
            gen_version[f] = v
            nu = _book(state, pending, query_pos, q, f, _STARTS, p, update_scale[f], fact_end)
        if s == _RESTATES or v == 0:  # after an intro, restatements start too
            _book(state, pending, query_pos, q, f, _RESTATES, p, restate_scale[f], fact_end)
        ft = _earliest(pending)
        kind[j], fact[j], version[j], next_update[j] = FACT, f, v, nu
        _noisy(state, fact_base[f], noise_scale, x, emb[j])
    return q, ft


@njit(cache=True)
def _book(state, pending, query_pos, q, f, s, p, scale, fact_end):
    """Book fact `f`'s next mention of kind `s` a geometric gap after `p` (`1 + floor(log(u) *
    scale)`, `u` uniform in (0, 1]), moved on past positions taken by a booked mention or a query
    (`q`: the first query after `p`); returns its time, or NEVER (none, or not before
    `fact_end`)."""
    if scale == NO_NEXT:
        return NEVER
    g = math.log(1.0 - uniform(state)) * scale
    if g >= fact_end:  # also keeps the int conversion in range
        return NEVER
    nt = p + 1 + int(g)
    F = pending.shape[0]
    Q = query_pos.shape[0]
    k = q
    while True:
        while k < Q and query_pos[k] < nt:
            k += 1
        taken = k < Q and query_pos[k] == nt
        for h in range(F):
            if pending[h, 0] == nt or pending[h, 1] == nt:
                taken = True
        if not taken:
            break
        nt += 1
    if nt >= fact_end:
        return NEVER
    pending[f, s] = nt
    return nt


# ---- small helpers -----------------------------------------------------------------------------


@njit(cache=True)
def _booked_at(pending, p):
    for f in range(pending.shape[0]):
        if pending[f, 0] == p:
            return f, 0
        if pending[f, 1] == p:
            return f, 1
    return -1, -1  # not reached: `p` is the earliest booked time


@njit(cache=True)
def _earliest(pending):
    t = NEVER
    for f in range(pending.shape[0]):
        t = min(t, pending[f, 0], pending[f, 1])
    return t


@njit(cache=True)
def _contains(a, n, x):
    for k in range(n):
        if a[k] == x:
            return True
    return False


@njit(cache=True)
def _gap_scale(p):
    """`1 / log(1 - p)`, so that `1 + floor(log(u) * scale)` is geometric with success probability
    `p` (0 when p is 1: the next item; NO_NEXT when p is 0)."""
    if p <= 0.0:
        return NO_NEXT
    if p >= 1.0:
        return 0.0
    return 1.0 / math.log1p(-p)


@njit(cache=True)
def _round_half_even(x):
    r = math.floor(x + 0.5)
    if r - x == 0.5 and r % 2 == 1:  # a tie: round to the even neighbour, as numpy does
        r -= 1
    return int(r)


@njit(cache=True)
def _normalise(x):
    s = 0.0
    for d in range(x.shape[0]):
        s += x[d] * x[d]
    s = 1.0 / max(math.sqrt(s), 1e-12)
    for d in range(x.shape[0]):
        x[d] *= s


@njit(cache=True)
def _random_unit(state, x):
    """`x = unit(z)`, `z` standard normal (float64)."""
    _random_unit_into(state, x, x)


@njit(cache=True)
def _random_unit_into(state, x, out):
    """`out = unit(z)` (float32), `z` standard normal; `x` is scratch."""
    ss = 0.0
    for d in range(x.shape[0]):
        z = normal(state)
        x[d] = z
        ss += z * z
    inv = 1.0 / max(math.sqrt(ss), 1e-12)
    for d in range(x.shape[0]):
        out[d] = x[d] * inv


@njit(cache=True)
def _noisy(state, base, scale, x, out):
    """`out = unit(base + scale * z)` (float32), `z` standard normal; `x` is scratch."""
    ss = 0.0
    for d in range(x.shape[0]):
        v = base[d] + scale * normal(state)
        x[d] = v
        ss += v * v
    inv = 1.0 / max(math.sqrt(ss), 1e-12)
    for d in range(x.shape[0]):
        out[d] = x[d] * inv
