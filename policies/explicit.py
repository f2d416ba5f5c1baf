"""Scripted memory policies for envs wrapped in `memgym.envs.ExplicitMemory`."""

from __future__ import annotations

import numpy as np

from memgym.envs.ops import Op

from .base import ObsView


class RepeatPreviousPolicy:
    """Solves POPGym's `RepeatPrevious(k)` through `ExplicitMemory(env, slots=k)` with memory
    alone: keep the last `k` observations as a ring (STORE into a free slot, else EDIT the oldest
    write), then RETRIEVE the oldest (the card `k - 1` steps back) and answer with its suit.

    Reads only the observation: slot ages say which write is oldest, `recall` holds the card.
    """

    name = "repeat_previous"
    needs_state = False

    def __init__(self, num_suits: int = 4):
        self.num_suits = num_suits

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        pass

    def act(self, obs, states=None) -> np.ndarray:
        v = ObsView(obs)
        K = v.capacity
        W = v.mask.shape[-1] - 4 * K  # the wrapped env's actions

        def slot_action(op: Op, slot):
            return W + (int(op) - 1) * K + slot

        occupied = v.occupied
        age = np.where(occupied, v.slot("age"), -np.inf)
        oldest = age.argmax(axis=-1)
        fresh = v.item("inner_ops_left") > 1.0 - 1e-6  # no memory op yet on this observation
        has_free = (~occupied).any(axis=-1)
        write = np.where(
            has_free, slot_action(Op.STORE, (~occupied).argmax(axis=-1)), slot_action(Op.EDIT, oldest)
        )
        recall_valid = v.item("recall_valid") > 0.5
        read = ~fresh & ~recall_valid & occupied.all(axis=-1)
        answer = np.where(recall_valid, obs["recall"][:, : self.num_suits].argmax(axis=-1), 0)
        actions = np.where(fresh, write, np.where(read, slot_action(Op.RETRIEVE, oldest), answer))
        return actions.astype(np.int64)
