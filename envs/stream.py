"""The hidden generator of a streaming task: which fact is mentioned when, which queries come when.

A stream talks about `F` facts. Each fact is introduced once, then mentioned again by two
independent processes: *updates* (a new value: the old one becomes stale) and *restatements* (the
same value again). Every other non-query position is a distractor. Only the next event of each
process is scheduled at any time, so memory is `O(F + Q)` whatever the stream length, and when a
version is written we already know when it expires (the time of the fact's next update). That is
what lets `next_use` answer exactly, in `O(log Q)`, the question an oracle asks: when will this
slot's content next be needed?

Queries are fixed at reset: `Q` positions, each asking about one fact, answered by the current
version of that fact's *answer fact* (itself, or for multi-hop the fact its bridge points at).
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .config import ConfigError, QuerySchedule, StreamConfig
from .embedding import NoiseSource, UnitSource, fixed_direction, random_units, unit

NEVER = np.iinfo(np.int64).max

# Weights of the components an embedding is mixed from (see embedding.py). W_FACT (the shared
# "this states a fact" direction) against D decides whether relevance is readable from the item
# alone: a random distractor's projection on it has std 1/sqrt(D). At W_FACT 0.8 and D 64 a linear
# probe tells facts from distractors 99.8% of the time, while two different facts stay far apart
# for similarity merging (cosine ~0.3 vs ~0.75 for two versions of one fact). At 0.6 and D 32 the
# probe misread ~7% and capped observation-only policies near 0.7 on Conflict-Medium
# (`python -m memgym.benchmarks.learnability`); a larger W_FACT makes all facts look alike.
W_KEY, W_VALUE, W_FACT, W_QUERY, W_TOPIC = 1.0, 0.7, 0.8, 0.7, 0.8


_BLOCK = 64  # items a single env generates at a time
_UNIFORMS = 64  # uniforms drawn at a time for the gaps between mentions


class ItemKind(IntEnum):
    DISTRACTOR = 0
    FACT = 1
    QUERY = 2


class Event(IntEnum):
    INTRO = 0
    UPDATE = 1
    RESTATE = 2


# A pending mention is booked as the plain int `fact * _EVENTS + event`, not a `(fact, Event)`
# tuple. A vector env keeps thousands of streams alive, and the garbage collector walks every
# container object they hold at each full collection: a dict of ints (and tuples of ints) it
# stops tracking, tuples holding an enum member it does not. With tuples, collections took 12-27%
# of a 4096-env streaming vector env's time; see also the tuples below, for the same reason.
_EVENTS = len(Event)
_INTRO, _UPDATE, _RESTATE = int(Event.INTRO), int(Event.UPDATE), int(Event.RESTATE)


_DISTRACTOR, _FACT, _QUERY = int(ItemKind.DISTRACTOR), int(ItemKind.FACT), int(ItemKind.QUERY)


def _gap_scales(p: np.ndarray) -> tuple[float | None, ...]:
    """`1 / log(1 - p)` per fact, so that `1 + int(log(u) * scale)` for `u` uniform in (0, 1] is
    geometric with success probability `p` (0 when p is 1; None when p is 0: no next mention)."""
    return tuple(None if x <= 0.0 else 0.0 if x >= 1.0 else 1.0 / math.log1p(-x)
                 for x in p.tolist())


@dataclass
class TaskStructure:
    """What a task decides about its facts at reset (arrays of length F)."""

    queryable: np.ndarray  # bool: may be asked about
    answer_of: np.ndarray  # int: the fact whose current version answers a query about this one
    link_of: np.ndarray  # int: fact whose key is this fact's value (-1: an ordinary value)
    topic_of: np.ndarray  # int: topic id (-1: none)
    num_topics: int = 0
    updatable: np.ndarray | None = None  # bool: may receive updates (default: all)


class FactStream:
    """Generates one episode, a block of items at a time (`block`; a single env reads them one by
    one through `item`). All randomness comes from the generator passed in."""

    def __init__(self, cfg: StreamConfig, rng: np.random.Generator, task: TaskStructure):
        self.cfg = cfg
        self.rng = rng
        self.task = task
        F, D, L, Q = cfg.num_facts, cfg.dim, cfg.length, cfg.num_queries
        # Random unit vectors (distractors and the fresh values of updates) and the noise of fact
        # mentions and queries come from two generators of their own, drawn in blocks; each is
        # consumed in item order, so what an item gets does not depend on how items are grouped
        # into blocks.
        seed = int(rng.integers(2**63))
        self.units = UnitSource(np.random.default_rng(seed), D)
        self._noise = NoiseSource(np.random.default_rng([seed, 1]), D, float(cfg.noise / np.sqrt(D)))
        self.fact_dir = fixed_direction("fact", D)
        self.query_dir = fixed_direction("query", D)

        # The shared key direction, own keys, values and topics in one draw (the same numbers as
        # one draw each, in this order).
        T = max(task.num_topics, 1)
        units = random_units(rng, 1 + 2 * F + T, D)
        shared, own = units[0], units[1 : 1 + F]
        ks = cfg.key_similarity
        self.keys = unit(ks * shared + np.sqrt(1.0 - ks * ks) * own)
        self.values = units[1 + F : 1 + 2 * F]
        linked = task.link_of >= 0
        self.values[linked] = self.keys[task.link_of[linked]]
        self.topics = units[1 + 2 * F :]
        # Each embedding is a fixed part plus fresh noise; the fixed parts are kept per fact and
        # only the fact's part is redone when an update changes its value.
        self._key_part = W_KEY * self.keys
        self._fact_part = W_FACT * self.fact_dir
        self._topic_part = W_TOPIC * self.topics
        self._fact_base = self._key_part + W_VALUE * self.values
        self._fact_base += self._fact_part
        topical = task.topic_of >= 0
        self._fact_base[topical] += self._topic_part[task.topic_of[topical]]
        self._query_base = self._key_part + W_QUERY * self.query_dir
        self._query_base[topical] += self._topic_part[task.topic_of[topical]]
        self.version = np.full(F, -1, np.int64)
        self._version_of = [-1] * F  # `version` as plain ints, read at every mention
        self.next_update = np.full(F, NEVER, np.int64)

        # Mean gap between mentions of one fact, so that mentions fill (1 - distractor_rate) of
        # the non-query positions.
        gap = F / (1.0 - cfg.distractor_rate)
        updatable = task.updatable if task.updatable is not None else np.ones(F, bool)
        ur = np.where(updatable, cfg.update_rate, 0.0)
        # Per fact and process, `1 / log(1 - p)` of the geometric gap to its next mention (0 when
        # p is 1: the next item; None when p is 0: never), as plain Python numbers for the loop.
        self._update_gap = _gap_scales(np.where(ur > 0, np.minimum(1.0, ur / gap), 0.0))
        self._restate_gap = _gap_scales(np.where(ur < 1, np.minimum(1.0, (1.0 - ur) / gap), 0.0))
        self._has_own_value = tuple((task.link_of < 0).tolist())
        self._uniforms: list[float] = []  # from `rng`, 64 at a time, for the gaps

        self.fact_end = L - Q if cfg.query_schedule is QuerySchedule.END else L
        span = min(self.fact_end, max(2 * F, int(np.ceil(gap))))
        intro = np.sort(rng.choice(span, size=F, replace=False))
        intro_of = rng.permutation(F)  # which fact each intro time belongs to
        intro_time = np.empty(F, np.int64)
        intro_time[intro_of] = intro
        self._schedule_queries(intro_time)
        # Plain ints for the generation loop (tuples: see `_EVENTS`).
        self._query_times = tuple(self.query_positions.tolist())
        self._query_list = tuple(self.query_facts.tolist())
        self._answer_list = tuple(self.query_answers.tolist())

        # Time -> `fact * _EVENTS + event` of each booked mention.
        self._pending: dict[int, int] = {
            t: f * _EVENTS + _INTRO for f, t in enumerate(intro_time.tolist())
        }
        self._pending_times = sorted(self._pending)  # a heap of the keys of `_pending`
        self._next_fact_time = self._pending_times[0]
        # Generation runs ahead of the episode (`block`): its own versions and query counter.
        self._gen_version = [-1] * F
        self._gen_query = 0
        # The single env's items (`item`), generated `_B` at a time into a fresh block each time
        # (an item's embedding stays valid while it is current).
        self._B = min(_BLOCK, L)
        self._start, self._filled = 0, 0

    # ---- queries -------------------------------------------------------------------------------

    def _schedule_queries(self, intro_time: np.ndarray) -> None:
        # Plain Python ints throughout: this runs at every reset.
        cfg, task, rng = self.cfg, self.task, self.rng
        L, Q = cfg.length, cfg.num_queries
        ready = np.maximum(intro_time, intro_time[task.answer_of]).tolist()
        candidates = np.flatnonzero(task.queryable)
        if cfg.query_schedule is QuerySchedule.END:
            positions = list(range(L - Q, L))
        else:
            taken = set(intro_time.tolist())
            start = min(ready[f] for f in candidates.tolist()) + 1
            # `np.linspace(start, L - 1, Q).round()`, computed the way numpy does, in Python.
            if Q > 1:
                step = (L - 1 - start) / (Q - 1)
                positions = [round(i * step + start) for i in range(Q - 1)] + [L - 1]
            else:
                positions = [start]
            for i in range(Q):  # keep positions distinct, ordered and clear of the intros
                p = max(positions[i], positions[i - 1] + 1 if i else 0)
                while p in taken:
                    p += 1
                positions[i] = p
            if positions[-1] >= L:
                raise ConfigError(f"length {L} is too short for {Q} interleaved queries; raise it")
        # Cycle through a random order of the askable facts, so each is asked about equally often.
        order = rng.permutation(candidates).tolist()
        asked = []
        for i, p in enumerate(positions):
            j = 0 if ready[order[0]] < p else next(
                (j for j, f in enumerate(order) if ready[f] < p), None
            )
            if j is None:  # the rest of this cycle is introduced later: ask one a second time
                order += rng.permutation(candidates).tolist()
                j = next((j for j, f in enumerate(order) if ready[f] < p), None)
            if j is None:
                raise ConfigError(f"length {L}: no fact comes before query {i}; raise `length`")
            asked.append(order.pop(j))
            if not order:
                order = rng.permutation(candidates).tolist()
        self.query_positions = np.array(positions, np.int64)
        self.query_facts = np.array(asked, np.int64)
        self.query_answers = task.answer_of[self.query_facts]
        self._query_set = dict.fromkeys(positions)  # a dict of ints: untracked (see `_EVENTS`)
        self._next_query = 0
        # For each fact, the sorted positions of the queries that need its current version.
        needed_at = [[] for _ in range(cfg.num_facts)]
        for p, f, a in zip(positions, asked, self.query_answers.tolist()):
            needed_at[f].append(p)
            if a != f:
                needed_at[a].append(p)
        self._needed_at = tuple(tuple(sorted(set(x))) for x in needed_at)

    # ---- generation ----------------------------------------------------------------------------

    def block(self, t: int, kind, emb, fact, version, answer, answer_version, asked_version,
              next_update=None) -> None:
        """Generate items `t, t+1, ...` (as many as `kind` is long; called for consecutive ranges)
        into the given arrays: `kind`, `emb` ([n, D]), `fact` (-1: none), `version` (-1: none);
        for queries the fact whose current version answers it, that version and the version of
        the asked fact itself (multi-hop needs the bridge too), as of the query (-1 elsewhere);
        for fact mentions that start a version the time of its next update (`next_update`,
        optional). The state `item` and `next_use` read (`version`, `next_update`) does not move.

        The schedule is a loop over fact mentions and queries (distractors are skipped over in
        one go); the embeddings of the whole block are then made with a few array operations."""
        n = len(kind)
        end = t + n
        gen = self._gen_version
        qtimes, qfacts, qanswers = self._query_times, self._query_list, self._answer_list
        nq = len(qtimes)
        q = self._gen_query
        pending, times, schedule = self._pending, self._pending_times, self._schedule
        has_own_value, update_gap, restate_gap = (
            self._has_own_value, self._update_gap, self._restate_gap)
        F = len(gen)
        ft = self._next_fact_time
        # Per mention or query, in order: position in the block, fact, version, base row.
        events, facts, versions, sources = [], [], [], []
        queries, answers, answer_versions, asked_versions = [], [], [], []
        starts, next_updates = [], []  # mentions that start a version, and its next update
        updates, updated_facts = [], []  # position and fact of each fresh value
        row_of: dict[int, int] = {}  # fact -> base row of a value updated in this block
        while True:
            qt = qtimes[q] if q < nq else NEVER
            p = qt if qt < ft else ft
            if p >= end:
                break
            j = p - t
            events.append(j)
            if p == qt:
                f, a = qfacts[q], qanswers[q]
                q += 1
                facts.append(f)
                versions.append(-1)
                sources.append(F + f)
                queries.append(j)
                answers.append(a)
                answer_versions.append(gen[a])
                asked_versions.append(gen[f])
                continue
            f, event = divmod(pending.pop(p), _EVENTS)
            heapq.heappop(times)
            v = gen[f]
            if event != _RESTATE:
                v += 1
                gen[f] = v
                if event == _UPDATE and has_own_value[f]:
                    row_of[f] = 2 * F + len(updates)
                    updates.append(j)
                    updated_facts.append(f)
                starts.append(j)
                next_updates.append(schedule(f, p, _UPDATE, update_gap[f]))
            if event != _UPDATE:
                schedule(f, p, _RESTATE, restate_gap[f])
            ft = times[0] if times else NEVER
            facts.append(f)
            versions.append(v)
            sources.append(row_of.get(f, f))
        self._gen_query = q
        self._next_fact_time = ft

        kind[:] = _DISTRACTOR
        fact[:] = -1
        version[:] = -1
        answer[:] = -1
        answer_version[:] = -1
        asked_version[:] = -1
        if events:
            kind[events] = _FACT
            fact[events] = facts
            version[events] = versions
        if queries:
            kind[queries] = _QUERY
            answer[queries] = answers
            answer_version[queries] = answer_versions
            asked_version[queries] = asked_versions
        if next_update is not None and starts:
            next_update[starts] = next_updates
        # Unit vectors in item order: distractors, and the fresh value of each update.
        need = kind == _DISTRACTOR
        if updates:
            need[updates] = True
        at = np.flatnonzero(need)
        units = self.units.take(len(at))
        emb[at] = units
        if not events:
            return
        table = [self._fact_base, self._query_base]
        if updates:
            values = units[np.searchsorted(at, updates)]
            fs = np.array(updated_facts)
            base = W_VALUE * values
            base += self._key_part[fs]
            base += self._fact_part
            topic = self.task.topic_of[fs]
            topical = topic >= 0
            if topical.any():
                base[topical] += self._topic_part[topic[topical]]
            table.append(base)
        x = self._noise.take(len(events))
        x += np.concatenate(table)[sources]
        if updates:
            # The last value of each updated fact is its value from now on.
            last = list({f: u for u, f in enumerate(updated_facts)}.items())
            f_last, u_last = np.array(last).T
            self.values[f_last] = values[u_last]
            self._fact_base[f_last] = base[u_last]
        x /= np.maximum(np.sqrt(np.add.reduce(x * x, axis=1)), 1e-12)[:, None]
        emb[events] = x

    def _schedule(self, f: int, t: int, event: int, scale: float | None) -> int:
        """Book the next `event` of fact `f` a geometric gap after `t` (moved on past taken
        positions); returns its time, or NEVER."""
        if scale is None:
            return NEVER
        u = self._uniforms
        if not u:
            u.extend((1.0 - self.rng.random(_UNIFORMS)).tolist()[::-1])  # in (0, 1], popped
        nt = t + 1 + int(math.log(u.pop()) * scale)
        pending, queries = self._pending, self._query_set
        while nt in pending or nt in queries:
            nt += 1
        if nt >= self.fact_end:
            return NEVER
        pending[nt] = f * _EVENTS + event
        heapq.heappush(self._pending_times, nt)
        return nt

    def item(self, t: int):
        """`(kind, embedding, fact, version)` of the item at position `t` (called once per t, in
        order), moving the current state (`version`, `next_update`, the query counter) to it."""
        j = t - self._start
        if j >= self._filled:
            self._fill(t)
            j = 0
        k, f, v = self._kinds[j], self._facts[j], self._versions[j]
        if k == _QUERY:
            self._next_query += 1
            return ItemKind.QUERY, self._emb[j], f, -1
        if k == _FACT:
            if v != self._version_of[f]:
                self._version_of[f] = v
                self.version[f] = v
                self.next_update[f] = self._next_updates[j]
            return ItemKind.FACT, self._emb[j], f, v
        return ItemKind.DISTRACTOR, self._emb[j], -1, -1

    def _fill(self, t: int) -> None:
        n = min(self._B, self.cfg.length - t)
        kind = np.empty(n, np.int8)
        emb = np.empty((n, self.cfg.dim), np.float32)
        fact, version, nu = (np.empty(n, np.int64) for _ in range(3))
        scratch = np.empty((3, n), np.int64)
        self.block(t, kind, emb, fact, version, *scratch, next_update=nu)
        self._kinds, self._facts, self._versions = kind.tolist(), fact.tolist(), version.tolist()
        self._next_updates, self._emb = nu.tolist(), emb
        self._start, self._filled = t, n

    # ---- the future, for oracles ---------------------------------------------------------------

    def next_use(self, fact: int, version: int, t: int) -> int:
        """First position >= t of a query that needs this version of this fact, or NEVER."""
        if fact < 0 or version != self._version_of[fact]:
            return NEVER
        needed = self._needed_at[fact]
        i = bisect.bisect_left(needed, t)
        if i < len(needed) and needed[i] < self.next_update[fact]:
            return int(needed[i])
        return NEVER
