"""Test-time learning: what will be asked is learnable within the episode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ConfigError, Level, QuerySchedule, StreamConfig
from .stream import TaskStructure
from .streaming import StreamingMemoryEnv


@dataclass
class TestTimeLearningConfig(StreamConfig):
    num_topics: int = 4
    """Topics the facts are spread over; queries only ever ask about one of them."""

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.num_topics <= self.num_facts:
            raise ConfigError(f"num_topics must be in [1, num_facts], got {self.num_topics}")


class TestTimeLearningEnv(StreamingMemoryEnv):
    """
    ## Description
    Facts belong to `num_topics` topics (a per-episode direction in embedding space). Every query
    asks about facts of a single *hot* topic, chosen per episode, and queries are interleaved, so
    the questions asked early reveal what is worth keeping later. The observation carries each
    item's and slot's similarity to the mean of the queries seen so far: an agent can compute it
    from real text, and a policy that learns to use it keeps only the hot topic.

    ## Action Space, Observation Space, Episode End
    As `RetrievalEnv` (see `memgym.envs.retrieval`).

    ## Rewards
    `1/Q` per query answered with the latest version; minus `write_cost` per write.

    ## Version History
    * v0: initial version.
    """

    __test__ = False  # not a pytest class, despite the name
    description = "learn from early questions which topic is worth remembering"
    config_class = TestTimeLearningConfig
    presets = {
        Level.EASY: dict(length=150, capacity=6, num_facts=8, num_topics=2, num_queries=8,
                         distractor_rate=0.5, update_rate=0.3, noise=0.1,
                         query_schedule=QuerySchedule.INTERLEAVED),
        Level.MEDIUM: dict(length=300, capacity=6, num_facts=16, num_topics=4, num_queries=12,
                           distractor_rate=0.5, update_rate=0.5, noise=0.2,
                           query_schedule=QuerySchedule.INTERLEAVED),
        Level.HARD: dict(length=1000, capacity=6, num_facts=24, num_topics=6, num_queries=24,
                         distractor_rate=0.7, update_rate=0.5, noise=0.3,
                         query_schedule=QuerySchedule.INTERLEAVED),
    }

    def task_structure(self, rng: np.random.Generator) -> TaskStructure:
        F, T = self.config.num_facts, self.config.num_topics
        topic_of = rng.permutation(np.arange(F) % T)
        hot = int(rng.integers(T))
        return TaskStructure(
            queryable=topic_of == hot,
            answer_of=np.arange(F),
            link_of=np.full(F, -1),
            topic_of=topic_of,
            num_topics=T,
        )
