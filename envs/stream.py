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
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .config import ConfigError, QuerySchedule, StreamConfig
from .embedding import NoiseSource, UnitSource, fixed_direction, random_units, unit, unit_vector

NEVER = np.iinfo(np.int64).max

# Weights of the components an embedding is mixed from (see embedding.py). W_FACT (the shared
# "this states a fact" direction) against D decides whether relevance is readable from the item
# alone: a random distractor's projection on it has std 1/sqrt(D). At W_FACT 0.8 and D 64 a linear
# probe tells facts from distractors 99.8% of the time, while two different facts stay far apart
# for similarity merging (cosine ~0.3 vs ~0.75 for two versions of one fact). At 0.6 and D 32 the
# probe misread ~7% and capped observation-only policies near 0.7 on Conflict-Medium
# (`python -m memgym.benchmarks.learnability`); a larger W_FACT makes all facts look alike.
W_KEY, W_VALUE, W_FACT, W_QUERY, W_TOPIC = 1.0, 0.7, 0.8, 0.7, 0.8


class ItemKind(IntEnum):
    DISTRACTOR = 0
    FACT = 1
    QUERY = 2


class Event(IntEnum):
    INTRO = 0
    UPDATE = 1
    RESTATE = 2


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
    """Generates one episode item by item. All randomness comes from the generator passed in."""

    def __init__(self, cfg: StreamConfig, rng: np.random.Generator, task: TaskStructure):
        self.cfg = cfg
        self.rng = rng
        self.task = task
        F, D, L, Q = cfg.num_facts, cfg.dim, cfg.length, cfg.num_queries
        # Distractors, and the noise and fresh values of fact mentions, come from two generators
        # of their own, drawn in blocks (cheaper per item than a draw each time).
        seed = int(rng.integers(2**63))
        self.distractors = UnitSource(np.random.default_rng(seed), D)
        fact_rng = np.random.default_rng([seed, 1])
        self._noise = NoiseSource(fact_rng, D, float(cfg.noise / np.sqrt(D)))
        self._fresh_values = UnitSource(fact_rng, D)
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
        # Plain Python lists: read once per fact mention.
        self._update_p = np.where(ur > 0, np.minimum(1.0, ur / gap), 0.0).tolist()
        self._restate_p = np.where(ur < 1, np.minimum(1.0, (1.0 - ur) / gap), 0.0).tolist()
        self._has_own_value = (task.link_of < 0).tolist()
        self._topic_of = task.topic_of.tolist()

        self.fact_end = L - Q if cfg.query_schedule is QuerySchedule.END else L
        span = min(self.fact_end, max(2 * F, int(np.ceil(gap))))
        intro = np.sort(rng.choice(span, size=F, replace=False))
        intro_of = rng.permutation(F)  # which fact each intro time belongs to
        intro_time = np.empty(F, np.int64)
        intro_time[intro_of] = intro
        self._schedule_queries(intro_time)
        self._query_times = self.query_positions.tolist()  # plain ints for the per-item check

        self._pending: dict[int, tuple[int, Event]] = {
            int(intro_time[f]): (int(f), Event.INTRO) for f in range(F)
        }
        self._pending_times = sorted(self._pending)  # a heap of the keys of `_pending`
        self._next_fact_time = self._pending_times[0]

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
        self._query_set = set(positions)
        self._next_query = 0
        # For each fact, the sorted positions of the queries that need its current version.
        needed_at = [[] for _ in range(cfg.num_facts)]
        for p, f, a in zip(positions, asked, self.query_answers.tolist()):
            needed_at[f].append(p)
            if a != f:
                needed_at[a].append(p)
        self._needed_at = [sorted(set(x)) for x in needed_at]

    # ---- generation ----------------------------------------------------------------------------

    def item(self, t: int):
        """`(kind, embedding, fact, version)` of the item at position `t` (called once per t)."""
        q = self._next_query
        if q < len(self._query_times) and self._query_times[q] == t:
            self._next_query += 1
            f = int(self.query_facts[q])
            return ItemKind.QUERY, self._query_embedding(f), f, -1
        if t == self._next_fact_time:
            f, event = self._pending.pop(t)
            heapq.heappop(self._pending_times)
            version = self._version_of[f]
            if event is not Event.RESTATE:
                version += 1
                self._version_of[f] = version
                self.version[f] = version
                if event is Event.UPDATE and self._has_own_value[f]:
                    self._new_value(f)
                self.next_update[f] = self._schedule(f, t, Event.UPDATE, self._update_p[f])
            if event is not Event.UPDATE:
                self._schedule(f, t, Event.RESTATE, self._restate_p[f])
            self._next_fact_time = self._pending_times[0] if self._pending_times else NEVER
            return ItemKind.FACT, self._fact_embedding(f), f, version
        return ItemKind.DISTRACTOR, self.distractors.draw(), -1, -1

    def _schedule(self, f: int, t: int, event: Event, p: float) -> int:
        if p <= 0.0:
            return NEVER
        nt = t + int(self.rng.geometric(p))
        while nt in self._pending or nt in self._query_set:
            nt += 1
        if nt >= self.fact_end:
            return NEVER
        self._pending[nt] = (f, event)
        heapq.heappush(self._pending_times, nt)
        return nt

    def _new_value(self, f: int) -> None:
        """An update: a fresh value, and the fact's fixed part redone (in the order of the sums
        at reset, so it is the same number)."""
        value = self._fresh_values.draw()
        self.values[f] = value
        base = W_VALUE * value
        base += self._key_part[f]
        base += self._fact_part
        topic = self._topic_of[f]
        if topic >= 0:
            base += self._topic_part[topic]
        self._fact_base[f] = base

    def _fact_embedding(self, f: int) -> np.ndarray:
        return unit_vector(self._noise.draw() + self._fact_base[f])

    def _query_embedding(self, f: int) -> np.ndarray:
        return unit_vector(self._noise.draw() + self._query_base[f])

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
