"""The policy protocol every baseline, neural and LLM policy follows, and helpers to read the
batched observation of the streaming family.

A policy maps a *batch* of observations (each array with a leading env axis `N`) to `N` actions.
Policies that need the hidden state (the oracle) say so with `needs_state`, and receive the list
of `env.get_state()` dicts alongside.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from memgym.envs.bank import SLOT_FEATURES
from memgym.envs.streaming import ITEM_FEATURES


@runtime_checkable
class Policy(Protocol):
    name: str
    needs_state: bool

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        """Called before a batch of episodes starts (recurrent state, random generators)."""

    def act(self, obs: dict[str, np.ndarray], states: list[dict[str, Any]] | None = None) -> np.ndarray:
        """Return an int64 array of `N` actions for the batched observation `obs`."""


class ObsView:
    """Named access to the feature columns of a batched streaming observation."""

    def __init__(self, obs: dict[str, np.ndarray]):
        self.obs = obs
        item = obs["item"]
        self.dim = item.shape[-1] - len(ITEM_FEATURES)
        self.capacity = obs["slots"].shape[-2]
        self.mask = obs["action_mask"].astype(bool)

    def item(self, name: str) -> np.ndarray:
        return self.obs["item"][..., self.dim + ITEM_FEATURES.index(name)]

    def slot(self, name: str) -> np.ndarray:
        return self.obs["slots"][..., self.dim + SLOT_FEATURES.index(name)]

    @property
    def occupied(self) -> np.ndarray:
        return self.slot("occupied") > 0.5


def batch_observations(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack single-env observations into one batched observation."""
    return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
