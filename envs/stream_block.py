"""Items of a `FactStream` generated ahead in blocks, for the streaming vector env.

Each env of a vector env keeps its own `FactStream` (its own generators) and asks it for the next
`B` items at once (`FactStream.block`); the hot path then reads items out of `[N, B, ...]` arrays
with one gather. A single env generates its items with the same `block`, so both make the same
items whatever their block sizes: a stream's draws depend only on the items made, in order, and a
block never reaches past the episode's last item (the next episode's stream is built from the same
`np_random` afterwards, as in the single env). What a single env reads from the stream *at* an
item (the current version of the facts a query needs) is snapshotted with the item, since the
stream has moved on by the time it is used.
"""

from __future__ import annotations

import numpy as np

from .stream import FactStream


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
        stream.block(t, self.kind[i, :n], self.emb[i, :n], self.fact[i, :n], self.version[i, :n],
                     self.answer[i, :n], self.answer_version[i, :n], self.asked_version[i, :n])
        self.start[i] = t
        self.filled[i] = n
