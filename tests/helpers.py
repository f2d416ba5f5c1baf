"""Helpers shared by the tests. Registry-driven tests enumerate `memgym.envs.registered_ids()`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import memgym.envs
from memgym.envs import ItemKind, Op

ALL_IDS = memgym.envs.registered_ids()  # every family: the generic checks run on all of them
STREAMING_IDS = memgym.envs.registered_ids("streaming")
EASY_MEDIUM_IDS = [i for i in STREAMING_IDS if "-Hard-" not in i]
HARD_IDS = [i for i in STREAMING_IDS if "-Hard-" in i]


def task_of(env_id: str) -> str:
    """`memgym/Conflict-Medium-v0` -> `Conflict`."""
    return env_id.split("/")[1].split("-")[0]


def make(env_id: str, **kwargs):
    """The raw env (no gymnasium wrappers): tests read its hidden state directly."""
    return gym.make(env_id, **kwargs).unwrapped


def masked_choice(rng: np.random.Generator, mask: np.ndarray) -> int:
    return int(rng.choice(np.flatnonzero(mask)))


def expected_mask(env) -> np.ndarray:
    """The validity table of DESIGN.md, written out independently of the env's implementation."""
    K = env.config.capacity
    state = env.get_state()
    occupied = state["slot_occupied"]
    query = state["item_kind"] == ItemKind.QUERY
    inner_ok = state["inner_ops"] < env.config.max_inner_ops
    mask = np.zeros(env.action_space.n, bool)
    for a in range(env.action_space.n):
        op, s = env.decode(a)
        if op is Op.SKIP:
            mask[a] = True
        elif op is Op.STORE:
            mask[a] = not occupied[s] and not query
        elif op is Op.EDIT:
            mask[a] = occupied[s] and not query
        else:  # EVICT, RETRIEVE
            mask[a] = occupied[s] and inner_ok
    return mask
