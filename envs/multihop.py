"""Multi-hop: an answer needs two stored facts and two reads."""

from __future__ import annotations

import numpy as np

from .config import ConfigError, Level
from .stream import TaskStructure
from .streaming import StreamingMemoryEnv


class MultiHopEnv(StreamingMemoryEnv):
    """
    ## Description
    Facts come in chains of two: a *bridge* ("A's X is B") whose value is the key of a *target*
    ("B's Y is v"). A query names A but wants the target's latest value. The query resembles the
    bridge only; the target resembles the bridge (through B's key). So the agent must RETRIEVE the
    bridge, then RETRIEVE the slot most similar to `recall`, then SKIP to answer. Both facts must
    be kept: `num_facts` is twice the number of chains.

    ## Action Space, Observation Space, Episode End
    As `RetrievalEnv` (see `memgym.envs.retrieval`).

    ## Rewards
    `1/Q` per query answered with its target's latest version; minus `write_cost` per write.

    ## Version History
    * v0: initial version.
    """

    description = "answer through a chain: read a bridge fact, then the fact it points at"
    task_needs_bridge = True
    presets = {
        Level.EASY: dict(length=100, capacity=6, num_facts=4, num_queries=4, distractor_rate=0.6,
                         noise=0.1),
        Level.MEDIUM: dict(length=300, capacity=8, num_facts=8, num_queries=8,
                           distractor_rate=0.75, update_rate=0.3, noise=0.2),
        Level.HARD: dict(length=1000, capacity=10, num_facts=10, num_queries=10,
                         distractor_rate=0.85, update_rate=0.5, noise=0.3, key_similarity=0.3),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.num_facts % 2:
            raise ConfigError(
                f"num_facts must be even for multi-hop chains, got {self.config.num_facts}"
            )

    def task_structure(self, rng: np.random.Generator) -> TaskStructure:
        chains = self.config.num_facts // 2
        targets = np.arange(chains, 2 * chains)
        answer_of = np.concatenate([targets, targets])
        link_of = np.concatenate([targets, np.full(chains, -1)])
        return TaskStructure(
            queryable=np.arange(2 * chains) < chains,
            answer_of=answer_of,
            link_of=link_of,
            topic_of=np.full(2 * chains, -1),
            updatable=np.arange(2 * chains) >= chains,  # a bridge keeps pointing at its target
        )
