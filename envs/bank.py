"""The bounded memory bank: `K` slots of embeddings with metadata, and the validity rules of ops.

What the policy may see (embeddings, ages, read and edit counts, similarities) is kept apart from
what only the task knows (which fact and which version a slot holds), so the observation can never
leak task-internal ids.
"""

from __future__ import annotations


import numpy as np

from .similarity import matvec

# Hidden content columns: which fact (-1 for a distractor), which version, stream position.
FACT, VERSION, POSITION = 0, 1, 2
EMPTY_CONTENT = (-1, -1, -1)

SLOT_FEATURES = (
    "occupied",
    "age",  # since the last STORE/EDIT, log-scaled
    "since_used",  # since the last read or write, log-scaled
    "reads",  # log-scaled count, saturating at COUNT_CAP
    "edits",  # log-scaled count, saturating at COUNT_CAP
    "sim_item",  # cosine similarity to the current item
    "sim_recall",  # cosine similarity to what `recall` holds (0 when empty)
    "sim_queries",  # cosine similarity to the mean of the queries seen so far
)
NUM_SLOT_FEATURES = len(SLOT_FEATURES)

# Ages and counts are log-scaled so the features stay in a small range at any stream length.
_LOG_SCALE = 1.0 / 8.0
# The scaled log of every age up to this, looked up rather than computed (shared, 256 KB).
# Stored reversed, `_LOG_AGE[j] = log1p(_MAX_AGE - j) / 8`, so the features at time `t` are
# `_LOG_AGE[_MAX_AGE - t:]` indexed by each slot's reference time: no per-step subtraction.
_MAX_AGE = (1 << 16) - 1
_LOG_AGE = (np.log1p(np.arange(_MAX_AGE, -1, -1)) * _LOG_SCALE).astype(np.float32)
# Read and edit counts saturate: a policy that reads about once per item would otherwise see counts
# at 100x the training length that it never met in training (clipping them to the training range
# recovered most of PPO's accuracy drop at 100x, BENCHMARKS.md). At the cap the feature says "read
# often" the same way at any length, and training at the shortest lengths already reaches it.
COUNT_CAP = 7
_LOG_COUNT = (np.log1p(np.arange(COUNT_CAP + 1)) * _LOG_SCALE).astype(np.float32)
_EMPTY_REF = 1 << 62  # reference time of an empty slot: clipped to the last entry, log1p(0) = 0
_VIEWS = (
    "written_at", "used_at", "_age_ref", "reads", "edits",
    "_emb_rows", "_content_rows", "_time_cols", "_time_cols_real", "_time_cols_ref",
)


class MemoryBank:
    """`capacity` slots of `dim`-d embeddings plus metadata, all preallocated."""

    def __init__(self, capacity: int, dim: int):
        self.capacity = capacity
        self.dim = dim
        self.embedding = np.zeros((capacity, dim), np.float32)
        self.occupied = np.zeros(capacity, bool)
        # Metadata lives in two blocks, so that each op is one or two numpy writes: rows
        # `written_at`, `used_at` and their references for `ages` (empty slots pushed to the far
        # future), and rows `reads`, `edits`. The public names are views of the rows.
        self._times = np.zeros((4, capacity), np.int64)
        self._times[2:] = _EMPTY_REF
        self._counts = np.zeros((2, capacity), np.int64)
        self.content = np.full((capacity, 3), -1, np.int64)
        self._size = 0
        self._init_views()

    def _init_views(self) -> None:
        self.written_at, self.used_at = self._times[0], self._times[1]
        self._age_ref = self._times[2:]
        self.reads, self.edits = self._counts[0], self._counts[1]
        # Per-slot views, written with `fill` / `[...] =`: much cheaper than indexing each time.
        K = self.capacity
        self._emb_rows = [self.embedding[k] for k in range(K)]
        self._content_rows = [self.content[k] for k in range(K)]
        self._time_cols = [self._times[:, k] for k in range(K)]
        self._time_cols_real = [self._times[:2, k] for k in range(K)]
        self._time_cols_ref = [self._times[2:, k] for k in range(K)]

    def clear(self) -> None:
        self.embedding.fill(0.0)
        self.occupied.fill(False)
        self._times[:2] = 0
        self._times[2:] = _EMPTY_REF
        self._counts.fill(0)
        self.content.fill(-1)
        self._size = 0

    def __getstate__(self):
        state = self.__dict__.copy()
        for view in _VIEWS:  # would unpickle as copies: rebuilt from the blocks instead
            del state[view]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_views()

    @property
    def size(self) -> int:
        return self._size

    def first_free(self) -> int:
        """Index of the first empty slot, or -1 when full."""
        free = np.flatnonzero(~self.occupied)
        return int(free[0]) if len(free) else -1

    def store(self, slot: int, embedding: np.ndarray, content, t: int) -> None:
        assert not self.occupied[slot], "STORE into an occupied slot"
        # An empty slot's reads and edits are already 0 (`evict` and `clear` reset them).
        self._emb_rows[slot][...] = embedding
        self.occupied[slot] = True
        self._time_cols[slot].fill(t)
        self._content_rows[slot][...] = content
        self._size += 1

    def edit(self, slot: int, embedding: np.ndarray, content, t: int) -> None:
        """Overwrite an occupied slot; its read count survives, its edit count grows."""
        assert self.occupied[slot], "EDIT of an empty slot"
        self._emb_rows[slot][...] = embedding
        self._time_cols[slot].fill(t)
        self.edits[slot] += 1
        self._content_rows[slot][...] = content

    def evict(self, slot: int) -> None:
        assert self.occupied[slot], "EVICT of an empty slot"
        self._emb_rows[slot].fill(0.0)
        self.occupied[slot] = False
        self._time_cols_real[slot].fill(0)
        self._time_cols_ref[slot].fill(_EMPTY_REF)
        self.reads[slot] = 0
        self.edits[slot] = 0
        self._content_rows[slot].fill(-1)  # EMPTY_CONTENT
        self._size -= 1

    def read(self, slot: int, t: int) -> np.ndarray:
        assert self.occupied[slot], "RETRIEVE of an empty slot"
        self.reads[slot] += 1
        self.used_at[slot] = t
        self._age_ref[1, slot] = t
        return self._emb_rows[slot]

    def holds(self, fact: int, version: int) -> int:
        """Slot holding this version of this fact, or -1."""
        for slot, row in enumerate(self.content.tolist()):  # K is small: no numpy overhead
            if row[FACT] == fact and row[VERSION] == version:
                return slot
        return -1

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
        out[:, :d] = self.embedding
        f = out[:, d:]
        f[:, 0] = self.occupied
        self.ages(t, f[:, 1:3].T)
        f[:, 3] = count_feature(self.reads)
        f[:, 4] = count_feature(self.edits)
        # The same arithmetic as the vector env's (similarity.py), so the two agree bit for bit.
        matvec(self.embedding, item, f[:, 5])
        matvec(self.embedding, recall, f[:, 6])
        matvec(self.embedding, queries, f[:, 7])
        return out

    def ages(self, t: int, out: np.ndarray) -> np.ndarray:
        """Write the log-scaled `age` and `since_used` of every slot (0 when empty) into `out`,
        shape `(2, K)`: the slot features that change at every step, so they are looked up."""
        if t <= _MAX_AGE:
            return _LOG_AGE[_MAX_AGE - t :].take(self._age_ref, out=out, mode="clip")
        ages = np.log1p(np.maximum(t - self._age_ref, 0)) * _LOG_SCALE  # a very long stream
        out[...] = ages
        return out

    def reads_feature(self, slot: int) -> float:
        return _LOG_COUNT[min(self.reads[slot], COUNT_CAP)]

    def edits_feature(self, slot: int) -> float:
        return _LOG_COUNT[min(self.edits[slot], COUNT_CAP)]


def count_feature(counts: np.ndarray) -> np.ndarray:
    """The `reads` / `edits` slot feature of integer counts (any shape): log-scaled, saturating."""
    return _LOG_COUNT[np.minimum(counts, COUNT_CAP)]
