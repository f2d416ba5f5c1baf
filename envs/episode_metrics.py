"""Episode-end metrics of the streaming family, including *lost items*: versions a query needed
that had been skipped, evicted or overwritten before it came (the per-op regret return hides)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from .ops import Op


class Fate(IntEnum):
    """What happened to the current version of a fact since it was last mentioned."""

    SKIPPED = 0
    STORED = 1
    EVICTED = 2
    OVERWRITTEN = 3


class EpisodeMetrics:
    def __init__(self, num_queries: int, num_facts: int):
        self.num_queries = num_queries
        self.correct = self.stale = self.abstentions = self.wrong = 0
        self.writes = self.edits = self.evictions = self.retrieves = self.invalid_actions = 0
        self.utilisation_sum = 0.0
        # Per fact, as plain lists (updated one entry at a time, on the env's hot path).
        self.fate = [Fate.SKIPPED] * num_facts
        self.copies = [0] * num_facts  # slots holding the fact's current version
        self.lost: dict[tuple[int, int], Fate] = {}
        self._versions = [-1] * num_facts  # latest version mentioned so far

    def on_mention(self, fact: int, version: int) -> None:
        if version != self._versions[fact]:
            self.fate[fact] = Fate.SKIPPED
            self.copies[fact] = 0
            self._versions[fact] = version

    def on_write(self, op: Op, fact: int, version: int, current: np.ndarray) -> None:
        if op is Op.STORE:
            self.writes += 1
        else:
            self.edits += 1
        if fact >= 0 and version == current[fact]:
            self.copies[fact] += 1
            self.fate[fact] = Fate.STORED

    def on_evict(self, content, current: np.ndarray) -> None:
        self.evictions += 1
        self._drop(content, current, Fate.EVICTED)

    def on_overwrite(self, content, current: np.ndarray) -> None:
        self._drop(content, current, Fate.OVERWRITTEN)

    def _drop(self, content, current: np.ndarray, fate: Fate) -> None:
        fact, version = int(content[0]), int(content[1])
        if fact >= 0 and version == current[fact]:
            self.copies[fact] -= 1
            if self.copies[fact] == 0:
                self.fate[fact] = fate

    def on_needed(self, fact: int, version: int, present: bool) -> None:
        if not present and (fact, version) not in self.lost:
            self.lost[(fact, version)] = Fate(self.fate[fact])

    def on_answer(self, recall_content, answer_fact: int, answer_version: int) -> float:
        """Score one submitted answer; returns its reward."""
        if recall_content is None:
            self.abstentions += 1
            return 0.0
        fact, version = int(recall_content[0]), int(recall_content[1])
        if fact == answer_fact and version == answer_version:
            self.correct += 1
            return 1.0 / self.num_queries
        if fact == answer_fact:
            self.stale += 1
        else:
            self.wrong += 1
        return 0.0

    def summary(self, length: int) -> dict[str, float]:
        lost = list(self.lost.values())
        return {
            "accuracy": self.correct / self.num_queries,
            "correct": self.correct,
            "stale": self.stale,
            "abstentions": self.abstentions,
            "wrong": self.wrong,
            "writes": self.writes,
            "edits": self.edits,
            "evictions": self.evictions,
            "retrieves": self.retrieves,
            "invalid_actions": self.invalid_actions,
            "mean_utilisation": self.utilisation_sum / length,
            "lost_items": len(lost),
            "lost_skipped": lost.count(Fate.SKIPPED),
            "lost_evicted": lost.count(Fate.EVICTED),
            "lost_overwritten": lost.count(Fate.OVERWRITTEN),
        }


METRIC_NAMES = (
    "accuracy", "correct", "stale", "abstentions", "wrong", "writes", "edits", "evictions",
    "retrieves", "invalid_actions", "mean_utilisation", "lost_items", "lost_skipped",
    "lost_evicted", "lost_overwritten",
)
