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
EMBODIED_TASKS = {
    "ObjectRecall": "memgym.envs.object_recall:ObjectRecallEnv",
    "CueCorridor": "memgym.envs.cue_corridor:CueCorridorEnv",
    "Rearrange": "memgym.envs.rearrange:RearrangeEnv",
}
FAMILIES = {"streaming": STREAMING_TASKS, "embodied": EMBODIED_TASKS}
# Task name -> native numpy vector env, for `gym.make_vec(id, num_envs=N,
# vectorization_mode="vector_entry_point")`.
VECTOR_ENTRY_POINTS = {
    "Retrieval": "memgym.envs.streaming_vector:RetrievalVectorEnv",
    "Conflict": "memgym.envs.streaming_vector:ConflictVectorEnv",
    "MultiHop": "memgym.envs.streaming_vector:MultiHopVectorEnv",
    "TestTimeLearning": "memgym.envs.streaming_vector:TestTimeLearningVectorEnv",
    "ObjectRecall": "memgym.envs.object_recall:ObjectRecallVectorEnv",
    "CueCorridor": "memgym.envs.cue_corridor:CueCorridorVectorEnv",
    "Rearrange": "memgym.envs.rearrange:RearrangeVectorEnv",
}


def env_id(task: str, level: Level) -> str:
    return f"memgym/{task}-{level.value}-v0"


def register_all() -> None:
    for tasks in FAMILIES.values():
        for task, entry_point in tasks.items():
            for level in Level:
                eid = env_id(task, level)
                if eid not in gym.registry:
                    gym.register(eid, entry_point=entry_point, kwargs={"level": level.value},
                                 vector_entry_point=VECTOR_ENTRY_POINTS.get(task))


def registered_ids(family: str | None = None) -> list[str]:
    families = [family] if family else list(FAMILIES)
    return [env_id(t, lvl) for f in families for t in FAMILIES[f] for lvl in Level]


def family_of(eid: str) -> str | None:
    """`memgym/CueCorridor-Hard-v0` -> `embodied`; None for an id outside memgym's families."""
    task = eid.split("/")[-1].split("-")[0]
    return next((f for f, tasks in FAMILIES.items() if task in tasks), None)


def can_return_views(eid: str) -> bool:
    """Whether `eid`'s native vector env can hand out its observation buffers instead of fresh
    copies (`copy=False`): for callers that copy what they keep anyway, such as rollouts."""
    from gymnasium.envs.registration import load_env_creator

    creator = gym.spec(eid).vector_entry_point
    if creator is None:
        return False
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return bool(getattr(creator, "can_return_views", False))
