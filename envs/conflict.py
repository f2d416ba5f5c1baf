"""Conflict resolution: facts change over time; only the latest value is right."""

from __future__ import annotations

from .config import Level, QuerySchedule
from .streaming import StreamingMemoryEnv


class ConflictEnv(StreamingMemoryEnv):
    """
    ## Description
    Facts are introduced, then updated (a new value, similar to the old one because it shares the
    fact's key) and restated, among distractors. A query wants the **latest** value: answering
    with an outdated version counts as a *stale* answer. The agent should EDIT the slot holding
    a fact when an update arrives, and keep facts rather than distractors.

    ## Action Space, Observation Space, Episode End
    As `RetrievalEnv` (see `memgym.envs.retrieval`).

    ## Rewards
    `1/Q` per query answered with the latest version; minus `write_cost` per STORE/EDIT.

    ## Version History
    * v0: initial version.
    """

    description = "keep the latest value of facts that are updated over time"
    presets = {
        # Questions come along the way (interleaved): the reward arrives while the facts are
        # still changing, which is the situation conflict resolution is about.
        Level.EASY: dict(length=100, capacity=6, num_facts=4, num_queries=8, distractor_rate=0.5,
                         update_rate=0.7, noise=0.1, query_schedule=QuerySchedule.INTERLEAVED),
        Level.MEDIUM: dict(length=200, capacity=8, num_facts=8, num_queries=16,
                           distractor_rate=0.8, update_rate=0.8, noise=0.2,
                           query_schedule=QuerySchedule.INTERLEAVED),
        Level.HARD: dict(length=1000, capacity=8, num_facts=8, num_queries=16,
                         distractor_rate=0.8, update_rate=0.8, noise=0.3, key_similarity=0.3,
                         query_schedule=QuerySchedule.INTERLEAVED),
    }
