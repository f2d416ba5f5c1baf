"""Registers every task x level as `memgym/<Task>-<Level>-v0`."""

from __future__ import annotations

import gymnasium as gym

from .config import Level

# Task name -> "module:Class"; entry points are strings so gymnasium imports lazily.
STREAMING_TASKS = {
    "Retrieval": "memgym.envs.retrieval:RetrievalEnv",
    "Conflict": "memgym.envs.conflict:ConflictEnv",
    "MultiHop": "memgym.envs.multihop:MultiHopEnv",
    "TestTimeLearning": "memgym.envs.test_time_learning:TestTimeLearningEnv",
}
FAMILIES = {"streaming": STREAMING_TASKS}


def env_id(task: str, level: Level) -> str:
    return f"memgym/{task}-{level.value}-v0"


def register_all() -> None:
    for tasks in FAMILIES.values():
        for task, entry_point in tasks.items():
            for level in Level:
                eid = env_id(task, level)
                if eid not in gym.registry:
                    gym.register(eid, entry_point=entry_point, kwargs={"level": level.value})


def registered_ids(family: str | None = None) -> list[str]:
    families = [family] if family else list(FAMILIES)
    return [env_id(t, lvl) for f in families for t in FAMILIES[f] for lvl in Level]
