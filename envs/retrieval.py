"""Accurate retrieval among distractors."""

from __future__ import annotations

from .config import Level, QuerySchedule
from .streaming import StreamingMemoryEnv


class RetrievalEnv(StreamingMemoryEnv):
    """
    ## Description
    A long stream mentions `num_facts` facts, each introduced once and restated now and then, among
    many distractors. Questions about the facts come at the end (or interleaved). The agent must
    keep the facts, not the distractors nor duplicate restatements, and read back the right one.

    ## Action Space
    `Discrete(1 + 4K)`: `SKIP`, then `STORE(s)`, `EDIT(s)`, `EVICT(s)`, `RETRIEVE(s)` for each slot
    `s` (see `memgym.envs.ops`). Invalid actions are masked (`action_mask`, `action_masks()`); one
    that arrives anyway is a counted no-op.

    ## Observation Space
    `Dict(item, slots, recall, action_mask)`: the item's embedding and features (is it a query,
    stream progress, similarity to recall and to past queries, ...), per slot its embedding,
    age, time since use, reads and edits (counts that saturate at `COUNT_CAP`, so they mean the
    same at any stream length) and similarities to the item, recall and past queries.
    Only features computable from real text embeddings: never a task-internal id.

    ## Rewards
    `1/Q` for each query answered correctly (`SKIP` while `recall` holds the right fact), so a
    perfect episode returns 1; minus `write_cost` per STORE/EDIT.

    ## Episode End
    Terminates after the last item. `info["metrics"]` then holds accuracy, stale answers,
    abstentions, writes, edits, evictions, mean utilisation and lost items.

    ## Version History
    * v0: initial version.
    """

    description = "find facts again after a flood of distractors and restatements"
    presets = {
        Level.EASY: dict(length=100, capacity=6, num_facts=4, num_queries=4, distractor_rate=0.7,
                         noise=0.1),
        Level.MEDIUM: dict(length=300, capacity=8, num_facts=8, num_queries=8, distractor_rate=0.8,
                           noise=0.2),
        Level.HARD: dict(length=2000, capacity=8, num_facts=8, num_queries=16,
                         distractor_rate=0.95, noise=0.3, key_similarity=0.5,
                         query_schedule=QuerySchedule.INTERLEAVED),
    }
