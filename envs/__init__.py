"""memgym.envs: the memory bank, op contract and tasks. Needs numpy and gymnasium only."""

from .bank import SLOT_FEATURES, MemoryBank
from .config import ConfigError, Level, QuerySchedule, StreamConfig
from .conflict import ConflictEnv
from .cue_corridor import CueCorridorEnv
from .embodied import EmbodiedConfig, EmbodiedMemoryEnv
from .explicit_memory import ExplicitMemory
from .grid import Move
from .multihop import MultiHopEnv
from .object_recall import ObjectRecallEnv
from .ops import ActionCodec, Op
from .rearrange import RearrangeEnv
from .registration import EMBODIED_TASKS, FAMILIES, STREAMING_TASKS, register_all, registered_ids
from .retrieval import RetrievalEnv
from .stream import ItemKind
from .streaming import ITEM_FEATURES, StreamingMemoryEnv
from .test_time_learning import TestTimeLearningEnv

register_all()

__all__ = [
    "ActionCodec", "ConfigError", "ConflictEnv", "CueCorridorEnv", "EMBODIED_TASKS",
    "EmbodiedConfig", "EmbodiedMemoryEnv", "ExplicitMemory", "FAMILIES", "ITEM_FEATURES",
    "ItemKind", "Level", "MemoryBank", "Move", "MultiHopEnv", "ObjectRecallEnv", "Op",
    "QuerySchedule", "RearrangeEnv", "RetrievalEnv", "SLOT_FEATURES", "STREAMING_TASKS",
    "StreamConfig", "StreamingMemoryEnv", "TestTimeLearningEnv", "register_all", "registered_ids",
]
