"""memgym.policies: the batched policy protocol, heuristic baselines and the oracle."""

from __future__ import annotations

from typing import Callable

from .base import ObsView, Policy, batch_observations
from .heuristics import (
    FIFOPolicy,
    KeepAllPolicy,
    LFUPolicy,
    LRUPolicy,
    RandomPolicy,
    SimilarityMergePolicy,
)
from .oracle import OraclePolicy

# Name -> factory. The order is the order of tables and charts.
BASELINES: dict[str, Callable[[], Policy]] = {
    "random": RandomPolicy,
    "keep_all": KeepAllPolicy,
    "fifo": FIFOPolicy,
    "lru": LRUPolicy,
    "lfu": LFUPolicy,
    "similarity_merge": SimilarityMergePolicy,
    "oracle": OraclePolicy,
}

__all__ = [
    "BASELINES", "FIFOPolicy", "KeepAllPolicy", "LFUPolicy", "LRUPolicy", "ObsView",
    "OraclePolicy", "Policy", "RandomPolicy", "SimilarityMergePolicy", "batch_observations",
]
