"""memgym.policies: the batched policy protocol, heuristic baselines and the oracle."""

from __future__ import annotations

from typing import Callable

from .base import ObsView, Policy, batch_observations
from . import embodied
from .heuristics import (
    FIFOPolicy,
    KeepAllPolicy,
    LFUPolicy,
    LRUPolicy,
    RandomPolicy,
    SimilarityMergePolicy,
)
from .embodied import EmbodiedScriptedPolicy, MemoryUse
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

# The embodied family: one scripted navigator, three ways of using memory (see embodied.py).
EMBODIED_BASELINES: dict[str, Callable[[], Policy]] = {
    "memoryless": embodied.memoryless,
    "random_store": embodied.random_store,
    "oracle": embodied.oracle,
}
# Family -> the baselines `memgym eval --suite FAMILY` compares.
FAMILY_BASELINES = {"streaming": BASELINES, "embodied": EMBODIED_BASELINES}

__all__ = [
    "BASELINES", "EMBODIED_BASELINES", "EmbodiedScriptedPolicy", "FAMILY_BASELINES", "FIFOPolicy",
    "KeepAllPolicy", "LFUPolicy", "LRUPolicy", "MemoryUse", "ObsView", "OraclePolicy", "Policy",
    "RandomPolicy", "SimilarityMergePolicy", "batch_observations",
]
