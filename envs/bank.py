"""The bounded memory bank: `K` slots of embeddings with metadata, and the validity rules of ops.

What the policy may see (embeddings, ages, read and edit counts, similarities) is kept apart from
what only the task knows (which fact and which version a slot holds), so the observation can never
leak task-internal ids.
"""

from __future__ import annotations

import numpy as np

# Hidden content columns: which fact (-1 for a distractor), which version, stream position.
FACT, VERSION, POSITION = 0, 1, 2
EMPTY_CONTENT = (-1, -1, -1)

SLOT_FEATURES = (
    "occupied",
    "age",  # since the last STORE/EDIT, log-scaled
    "since_used",  # since the last read or write, log-scaled
    "reads",  # log-scaled count
    "edits",  # log-scaled count
    "sim_item",  # cosine similarity to the current item
    "sim_recall",  # cosine similarity to what `recall` holds (0 when empty)
    "sim_queries",  # cosine similarity to the mean of the queries seen so far
)
NUM_SLOT_FEATURES = len(SLOT_FEATURES)

# Ages and counts are log-scaled so the features stay in a small range at any stream length.
_LOG_SCALE = 1.0 / 8.0


class MemoryBank:
    """`capacity` slots of `dim`-d embeddings plus metadata, all preallocated."""

    def __init__(self, capacity: int, dim: int):
        self.capacity = capacity
        self.dim = dim
        self.embedding = np.zeros((capacity, dim), np.float32)
        self.occupied = np.zeros(capacity, bool)
        self.written_at = np.zeros(capacity, np.int64)
        self.used_at = np.zeros(capacity, np.int64)
        self.reads = np.zeros(capacity, np.int64)
        self.edits = np.zeros(capacity, np.int64)
        self.content = np.full((capacity, 3), -1, np.int64)

    def clear(self) -> None:
        self.embedding.fill(0.0)
        self.occupied.fill(False)
        self.written_at.fill(0)
        self.used_at.fill(0)
        self.reads.fill(0)
        self.edits.fill(0)
        self.content.fill(-1)

    @property
    def size(self) -> int:
        return int(self.occupied.sum())

    def first_free(self) -> int:
        """Index of the first empty slot, or -1 when full."""
        free = np.flatnonzero(~self.occupied)
        return int(free[0]) if len(free) else -1

    def store(self, slot: int, embedding: np.ndarray, content, t: int) -> None:
        assert not self.occupied[slot], "STORE into an occupied slot"
        self.embedding[slot] = embedding
        self.occupied[slot] = True
        self.written_at[slot] = t
        self.used_at[slot] = t
        self.reads[slot] = 0
        self.edits[slot] = 0
        self.content[slot] = content

    def edit(self, slot: int, embedding: np.ndarray, content, t: int) -> None:
        """Overwrite an occupied slot; its read count survives, its edit count grows."""
        assert self.occupied[slot], "EDIT of an empty slot"
        self.embedding[slot] = embedding
        self.written_at[slot] = t
        self.used_at[slot] = t
        self.edits[slot] += 1
        self.content[slot] = content

    def evict(self, slot: int) -> None:
        assert self.occupied[slot], "EVICT of an empty slot"
        self.embedding[slot] = 0.0
        self.occupied[slot] = False
        self.written_at[slot] = 0
        self.used_at[slot] = 0
        self.reads[slot] = 0
        self.edits[slot] = 0
        self.content[slot] = EMPTY_CONTENT

    def read(self, slot: int, t: int) -> np.ndarray:
        assert self.occupied[slot], "RETRIEVE of an empty slot"
        self.reads[slot] += 1
        self.used_at[slot] = t
        return self.embedding[slot]

    def holds(self, fact: int, version: int) -> int:
        """Slot holding this version of this fact, or -1."""
        hit = np.flatnonzero((self.content[:, FACT] == fact) & (self.content[:, VERSION] == version))
        return int(hit[0]) if len(hit) else -1

    def features(
        self,
        t: int,
        item: np.ndarray,
        recall: np.ndarray,
        queries: np.ndarray,
        out: np.ndarray,
    ) -> np.ndarray:
        """Write the `K x (D + NUM_SLOT_FEATURES)` slot observation into `out` and return it.

        `recall` and `queries` are unit vectors or zeros; the embeddings are unit or zero rows, so
        dot products are cosine similarities and empty slots score 0 everywhere.
        """
        d = self.dim
        occ = self.occupied
        out[:, :d] = self.embedding
        f = out[:, d:]
        f[:, 0] = occ
        f[:, 1] = np.log1p(t - self.written_at) * _LOG_SCALE * occ
        f[:, 2] = np.log1p(t - self.used_at) * _LOG_SCALE * occ
        f[:, 3] = np.log1p(self.reads) * _LOG_SCALE
        f[:, 4] = np.log1p(self.edits) * _LOG_SCALE
        # One matmul for the three similarities.
        f[:, 5:8] = self.embedding @ np.stack((item, recall, queries), axis=1)
        return out
