"""Items of many streams generated ahead in blocks, as `[N, B, ...]` arrays (one row per stream).

A `StreamBatch` (stream.py) fills any rows of these in one compiled call, each row with the next
`B` items of its stream (never past the episode's last item); the vector env's hot path then reads
items out with one gather, and a single env reads its one row item by item. A stream's items do
not depend on the block size. What a single env reads from the stream *at* an item (the current
version of the facts a query needs) is snapshotted with the item, since generation has moved on by
the time it is used.
"""

from __future__ import annotations

import numpy as np


class StreamBlocks:
    """`[N, B]` arrays of upcoming items, one row per env."""

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
        # Mentions that start a version: the time of the fact's next update (NEVER if none).
        self.next_update = np.full((N, B), -1, np.int64)
        self.start = np.zeros(N, np.int64)  # stream position of each row's first item
        self.filled = np.zeros(N, np.int64)  # items in each row
