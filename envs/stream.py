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

Generation is compiled (`stream_kernel.py`) and batched: a `StreamBatch` holds the state of `N`
streams and makes episodes and blocks of items for any subset of them in one call. The vector
env uses one with a row per env; a single env reads its one row item by item through
`FactStream`. Both run the same kernels on the same per-row state, so a vector env and single envs
with the same seeds make the same streams. An episode's randomness is one integer drawn from the
env's `np_random` after the task's `task_structure(np_random)`; everything else comes from the
kernels' own generator (`kernel_random.py`), seeded by it. (So episodes under a seed differ from
those of the numpy generator this replaced: the same distributions, other draws.)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from . import stream_kernel as kernel
from .config import ConfigError, QuerySchedule, StreamConfig
from .embedding import W_FACT, W_KEY, W_QUERY, W_TOPIC, W_VALUE, fixed_direction
from .stream_block import StreamBlocks

__all__ = ["NEVER", "ItemKind", "TaskStructure", "StreamBatch", "FactStream", "W_FACT", "W_KEY",
           "W_QUERY", "W_TOPIC", "W_VALUE"]

NEVER = kernel.NEVER
# Fills of at least this many rows are spread over threads. Fewer are not worth it when the
# machine is shared: a parallel call waits for its slowest thread, and a thread that has to wait
# for a busy core costs a scheduler time slice (32 rows took 7.7 ms in parallel instead of ~1 ms
# with one core taken by another process).
PARALLEL_ROWS = 256


class ItemKind(IntEnum):
    DISTRACTOR = kernel.DISTRACTOR
    FACT = kernel.FACT
    QUERY = kernel.QUERY


_FACT, _QUERY = int(ItemKind.FACT), int(ItemKind.QUERY)


@dataclass
class TaskStructure:
    """What a task decides about its facts at reset (arrays of length F)."""

    queryable: np.ndarray  # bool: may be asked about
    answer_of: np.ndarray  # int: the fact whose current version answers a query about this one
    link_of: np.ndarray  # int: fact whose key is this fact's value (-1: an ordinary value)
    topic_of: np.ndarray  # int: topic id (-1: none)
    num_topics: int = 0
    updatable: np.ndarray | None = None  # bool: may receive updates (default: all)


def episode_seed(rng: np.random.Generator) -> int:
    """The one draw from an env's `np_random` that seeds an episode's stream."""
    return int(rng.integers(2**63))


class StreamBatch:
    """The generator state of `num_rows` streams of one config, as `[N, ...]` arrays (see
    stream_kernel.py for what each holds)."""

    parallel_rows = PARALLEL_ROWS

    def __init__(self, cfg: StreamConfig, num_rows: int):
        self.cfg = cfg
        N, F, D, Q = num_rows, cfg.num_facts, cfg.dim, cfg.num_queries
        self.end_schedule = cfg.query_schedule is QuerySchedule.END
        self.fact_end = cfg.length - Q if self.end_schedule else cfg.length
        self.noise_scale = float(cfg.noise / np.sqrt(D))
        self.fact_dir = fixed_direction("fact", D).astype(np.float64)
        self.query_dir = fixed_direction("query", D).astype(np.float64)
        self.rng = np.zeros((N, 4), np.uint64)
        self.fact_fixed = np.zeros((N, F, D), np.float32)
        self.fact_base = np.zeros((N, F, D), np.float32)
        self.query_base = np.zeros((N, F, D), np.float32)
        self.has_own_value = np.zeros((N, F), bool)
        self.update_scale = np.zeros((N, F), np.float64)
        self.restate_scale = np.zeros((N, F), np.float64)
        self.pending = np.full((N, F, 2), NEVER, np.int64)
        self.next_fact_time = np.full(N, NEVER, np.int64)
        self.gen_version = np.full((N, F), -1, np.int64)
        self.gen_query = np.zeros(N, np.int64)
        self.query_pos = np.zeros((N, Q), np.int64)
        self.query_fact = np.zeros((N, Q), np.int64)
        self.query_answer = np.zeros((N, Q), np.int64)
        self.needed_ptr = np.zeros((N, F + 1), np.int64)
        self.needed_pos = np.zeros((N, 2 * Q), np.int64)

    def start(self, rows: np.ndarray, seeds: np.ndarray, tasks: list[TaskStructure]) -> None:
        """A new episode in each of `rows`, from `seeds[n]` and `tasks[n]`."""
        # Contiguous int64 always, so the kernels keep their one compiled signature.
        rows = np.ascontiguousarray(rows, np.int64)
        cfg, n, F = self.cfg, len(rows), self.cfg.num_facts
        queryable, updatable = np.empty((n, F), bool), np.empty((n, F), bool)
        answer_of, link_of, topic_of = (np.empty((n, F), np.int64) for _ in range(3))
        num_topics = np.empty(n, np.int64)
        for k, task in enumerate(tasks):
            queryable[k] = task.queryable
            answer_of[k] = task.answer_of
            link_of[k] = task.link_of
            topic_of[k] = task.topic_of
            updatable[k] = True if task.updatable is None else task.updatable
            num_topics[k] = task.num_topics
        status = np.zeros((n, 2), np.int64)
        kernel.start_rows(
            rows, np.ascontiguousarray(seeds, np.int64), queryable, answer_of, link_of, topic_of,
            updatable, num_topics, cfg.length, self.end_schedule, self.fact_end,
            cfg.distractor_rate, cfg.update_rate, cfg.key_similarity, self.fact_dir,
            self.query_dir, self.rng, self.fact_fixed, self.fact_base, self.query_base,
            self.has_own_value, self.update_scale, self.restate_scale, self.pending,
            self.next_fact_time, self.gen_version, self.gen_query, self.query_pos,
            self.query_fact, self.query_answer, self.needed_ptr, self.needed_pos, status)
        bad = np.flatnonzero(status[:, 0] != kernel.OK)
        if len(bad):
            code, query = status[bad[0]]
            L, Q = cfg.length, cfg.num_queries
            if code == kernel.TOO_SHORT_FOR_QUERIES:
                raise ConfigError(f"length {L} is too short for {Q} interleaved queries; raise it")
            raise ConfigError(f"length {L}: no fact comes before query {query}; raise `length`")

    def fill(self, rows: np.ndarray, starts: np.ndarray, blocks: StreamBlocks,
             limit: int | None = None) -> None:
        """The next items of each of `rows`, from `starts[n]` (the row's next ungenerated item)
        on, into the same rows of `blocks`: a block's worth, or `limit` items if fewer. The items
        are the same however a stream is cut into fills."""
        rows = np.ascontiguousarray(rows, np.int64)
        starts = np.ascontiguousarray(starts, np.int64)
        parallel = len(rows) >= self.parallel_rows
        fill = kernel.fill_rows_parallel if parallel else kernel.fill_rows
        fill(
            rows, starts, blocks.block if limit is None else limit, self.cfg.length,
            self.fact_end, self.noise_scale, self.rng,
            self.fact_fixed, self.fact_base, self.query_base, self.has_own_value,
            self.update_scale, self.restate_scale, self.pending, self.next_fact_time,
            self.gen_version, self.gen_query, self.query_pos, self.query_fact, self.query_answer,
            blocks.kind, blocks.emb, blocks.fact, blocks.version, blocks.answer,
            blocks.answer_version, blocks.asked_version, blocks.next_update, blocks.start,
            blocks.filled)


_ROW = np.zeros(1, np.int64)


class FactStream:
    """One episode's stream for a single env: a one-row `StreamBatch`, read item by item
    (`item`), with the state as of the current item (`version`, `next_update`) for the env's
    metrics and `next_use` for oracles."""

    def __init__(self, cfg: StreamConfig, block: int = 64):
        self.cfg = cfg
        self._batch = StreamBatch(cfg, 1)
        self._blocks = StreamBlocks(1, block, cfg.dim)
        self._starts = np.zeros(1, np.int64)

    def start(self, task: TaskStructure, seed: int) -> None:
        """A new episode from `task` and `seed` (`episode_seed`), generated by the same kernel
        calls a vector env makes for one of its rows."""
        self.task = task
        b = self._batch
        b.start(_ROW, np.array([seed], np.int64), [task])
        F = self.cfg.num_facts
        self.query_positions = b.query_pos[0].copy()
        self.query_facts = b.query_fact[0].copy()
        self.query_answers = b.query_answer[0].copy()
        ptr, pos = b.needed_ptr[0].tolist(), b.needed_pos[0].tolist()
        # For each fact, the sorted positions of the queries that need its current version.
        self._needed_at = tuple(tuple(pos[ptr[f] : ptr[f + 1]]) for f in range(F))
        self.version = np.full(F, -1, np.int64)
        self._version_of = [-1] * F  # `version` as plain ints, read at every mention
        self.next_update = np.full(F, NEVER, np.int64)
        self._next_query = 0
        self._start, self._filled = 0, 0

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
        blocks = self._blocks
        self._starts[0] = t
        self._batch.fill(_ROW, self._starts, blocks)
        n = int(blocks.filled[0])
        # Plain lists for the per-item reads; a copy of the embeddings, so an item's embedding
        # stays valid after the block is refilled.
        self._kinds = blocks.kind[0, :n].tolist()
        self._facts = blocks.fact[0, :n].tolist()
        self._versions = blocks.version[0, :n].tolist()
        self._next_updates = blocks.next_update[0, :n].tolist()
        self._emb = blocks.emb[0, :n].copy()
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
