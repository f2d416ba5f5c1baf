"""Items of a `FactStream` generated ahead in blocks, for the streaming vector env.

Each env of a vector env keeps its own `FactStream` (its own generators) and asks it for the next
`B` items at once; the hot path then reads items out of `[N, B, ...]` arrays with one gather.
Generating ahead draws nothing a single env would not draw, in the same order: a stream draws only
when an item is made, items are made in order, and a block never reaches past the episode's last
item (the next episode's stream is built from the same `np_random` afterwards, as in the single
env). What a single env reads from the stream *at* an item (the current version of the facts a
query needs) is snapshotted with the item, since the stream has moved on by the time it is used.
"""

from __future__ import annotations

import numpy as np

from .stream import NEVER, FactStream, ItemKind

_QUERY = int(ItemKind.QUERY)


class StreamBlocks:
    """`[N, B]` arrays of upcoming items, one row per env, refilled row by row."""

    def __init__(self, num_envs: int, block: int, dim: int):
        N, B = num_envs, block
        self.block = B
        self.kind = np.zeros((N, B), np.int8)
        self.emb = np.zeros((N, B, dim), np.float32)
        self.fact = np.full((N, B), -1, np.int64)
        self.version = np.full((N, B), -1, np.int64)
        # Queries only: the fact whose current version answers it, that version, and the version
        # of the asked fact itself (multi-hop needs the bridge too), as of the query.
        self.answer = np.full((N, B), -1, np.int64)
        self.answer_version = np.full((N, B), -1, np.int64)
        self.asked_version = np.full((N, B), -1, np.int64)
        self.start = np.zeros(N, np.int64)  # stream position of each row's first item
        self.filled = np.zeros(N, np.int64)  # items in each row

    def fill(self, i: int, stream: FactStream, t: int, length: int) -> None:
        """Generate items `t, t+1, ...` (at most `B`, never past `length`) into row `i`."""
        n = min(self.block, length - t)
        kind, emb, fact, version = self.kind[i], self.emb[i], self.fact[i], self.version[i]
        version_now = stream.version
        j = 0
        while j < n:
            run = min(n, _next_event(stream) - t) - j  # distractors up to the next fact or query
            if run > 0:
                kind[j : j + run], fact[j : j + run], version[j : j + run] = 0, -1, -1
                _draw_units(stream.distractors, emb[j : j + run])
                j += run
                continue
            k, e, f, v = stream.item(t + j)
            kind[j], emb[j], fact[j], version[j] = k, e, f, v
            if k == _QUERY:
                a = int(stream.query_answers[stream._next_query - 1])
                self.answer[i, j] = a
                self.answer_version[i, j] = version_now[a]
                self.asked_version[i, j] = version_now[f]
            j += 1
        self.start[i] = t
        self.filled[i] = n


def _next_event(stream: FactStream) -> int:
    """Position of the stream's next fact mention or query (every other item is a distractor)."""
    q = stream._next_query
    query = stream._query_times[q] if q < len(stream._query_times) else NEVER
    return min(query, stream._next_fact_time)


def _draw_units(source, out: np.ndarray) -> None:
    """`out[k] = source.draw()` for each row, a block at a time: the same rows, and the same
    refills at the same moments, as drawing them one by one."""
    done = 0
    while done < len(out):
        if source._next == len(source._buffer):
            source._buffer = source._fill()
            source._next = 0
        k = min(len(out) - done, len(source._buffer) - source._next)
        out[done : done + k] = source._buffer[source._next : source._next + k]
        source._next += k
        done += k
