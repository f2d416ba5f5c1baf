"""Typed configuration for the streaming tasks, and the keyword-override check shared by all envs."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

MAX_LENGTH = 10_000_000


class QuerySchedule(str, Enum):
    """When queries arrive: all at the end of the stream, or spread through it."""

    END = "end"
    INTERLEAVED = "interleaved"


class Level(str, Enum):
    EASY = "Easy"
    MEDIUM = "Medium"
    HARD = "Hard"

    @classmethod
    def _missing_(cls, value):
        # A bad `level=` keyword is a user error like any other: name the nearest level.
        choices = [e.value for e in cls]
        raise ConfigError(f"level={value!r} is not one of {choices}{nearest(str(value), choices)}")


class ConfigError(ValueError):
    """A bad keyword or value; the message names the key and what to do."""


def nearest(name: str, choices) -> str:
    """`" (did you mean 'x'?)"` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


@dataclass
class StreamConfig:
    """Knobs of a streaming memory task. Every task preset is one of these written out."""

    length: int = 200
    """Items in the stream, queries included (100 to 1,000,000 and beyond at constant memory)."""
    capacity: int = 8
    """Slots in the memory bank (K)."""
    num_facts: int = 8
    """Distinct facts (entities) the stream talks about; each may be restated and updated."""
    num_queries: int = 8
    """Questions per episode (Q); each correct answer is worth 1/Q."""
    distractor_rate: float = 0.6
    """Fraction of non-query items that are distractors (the rest mention a fact)."""
    update_rate: float = 0.0
    """Fraction of fact mentions after the first that change its value (the rest restate it)."""
    query_schedule: QuerySchedule = QuerySchedule.END
    """`end`: every query after the last fact; `interleaved`: spread through the stream."""
    noise: float = 0.2
    """Std of the isotropic noise added to every embedding before normalisation."""
    key_similarity: float = 0.0
    """0..1: how much the facts' keys share a common direction (look-alike facts at 1)."""
    dim: int = 64
    """Embedding dimension D (64: facts separable from distractors; see `stream.W_FACT`)."""
    max_inner_ops: int = 3
    """EVICT/RETRIEVE (and invalid actions) allowed per item before only advancing ops remain."""
    write_cost: float = 0.0
    """Reward charged per STORE or EDIT (trades accuracy for memory use)."""

    def __post_init__(self):
        self.query_schedule = _as_enum(QuerySchedule, self.query_schedule, "query_schedule")
        for name in ("length", "capacity", "num_facts", "num_queries", "dim", "max_inner_ops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        for name in ("distractor_rate", "update_rate", "noise", "key_similarity", "write_cost"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            setattr(self, name, float(value))
        _check(self.capacity >= 1, "capacity must be >= 1")
        _check(self.num_facts >= 1, "num_facts must be >= 1")
        _check(self.num_queries >= 1, "num_queries must be >= 1")
        _check(self.dim >= 4, "dim must be >= 4")
        _check(self.max_inner_ops >= 2, "max_inner_ops must be >= 2 (multi-hop answers read twice)")
        _check(0.0 <= self.distractor_rate < 1.0, "distractor_rate must be in [0, 1)")
        _check(0.0 <= self.update_rate <= 1.0, "update_rate must be in [0, 1]")
        _check(0.0 <= self.key_similarity <= 1.0, "key_similarity must be in [0, 1]")
        _check(self.noise >= 0.0, "noise must be >= 0")
        _check(self.write_cost >= 0.0, "write_cost must be >= 0")
        _check(
            self.length <= MAX_LENGTH, f"length must be <= {MAX_LENGTH:,}, got {self.length:,}"
        )
        # Every fact must be able to appear before the queries about it.
        _check(
            self.length >= 2 * (self.num_facts + self.num_queries),
            f"length {self.length} is too short for {self.num_facts} facts and "
            f"{self.num_queries} queries: use length >= {2 * (self.num_facts + self.num_queries)}",
        )


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _as_enum(enum_cls, value, name):
    try:
        return enum_cls(value)
    except ValueError:
        choices = [e.value for e in enum_cls]
        raise ConfigError(
            f"{name}={value!r} is not one of {choices}{nearest(str(value), choices)}"
        ) from None


def build_config(cls, preset: Mapping[str, Any], overrides: Mapping[str, Any]):
    """`cls(**preset | overrides)`, rejecting unknown keys with the nearest valid name."""
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in overrides:
        if key not in fields:
            raise ConfigError(
                f"unknown keyword '{key}'{nearest(key, fields)}; valid: {', '.join(sorted(fields))}"
            )
    return cls(**{**preset, **overrides})
