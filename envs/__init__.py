"""memgym.envs: the memory bank, op contract and tasks. Needs numpy and gymnasium only."""

from .bank import SLOT_FEATURES, MemoryBank
from .config import ConfigError, Level, QuerySchedule, StreamConfig
from .conflict import ConflictEnv
from .multihop import MultiHopEnv
from .ops import ActionCodec, Op
from .registration import STREAMING_TASKS, register_all, registered_ids
from .retrieval import RetrievalEnv
from .stream import ItemKind
from .streaming import ITEM_FEATURES, StreamingMemoryEnv
from .test_time_learning import TestTimeLearningEnv

register_all()

__all__ = [
    "ActionCodec", "ConfigError", "ConflictEnv", "ITEM_FEATURES", "ItemKind", "Level",
    "MemoryBank", "MultiHopEnv", "Op", "QuerySchedule", "RetrievalEnv", "SLOT_FEATURES",
    "STREAMING_TASKS", "StreamConfig", "StreamingMemoryEnv", "TestTimeLearningEnv",
    "register_all", "registered_ids",
]
