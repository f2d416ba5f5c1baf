"""`StreamingMemoryEnv`: the base of the streaming family. Tasks subclass it and say only what
differs (presets and the structure of their facts)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .bank import FACT, NUM_SLOT_FEATURES, SLOT_FEATURES, VERSION, MemoryBank
from .config import Level, StreamConfig, build_config
from .episode_metrics import EpisodeMetrics
from .ops import ActionCodec, MaskGather, Op
from .similarity import dot, matvec, unit32
from .stream import NEVER, FactStream, ItemKind, TaskStructure, episode_seed

ITEM_FEATURES = (
    "is_query",
    "progress",  # position in the stream, 0..1
    "recall_valid",
    "sim_recall",  # cosine similarity of the item to `recall`
    "sim_queries",  # cosine similarity of the item to the mean of past queries
    "queries_seen",  # log-scaled
    "inner_ops_left",  # fraction of the non-advancing ops still allowed on this item
    "occupancy",  # fraction of slots in use
)
NUM_ITEM_FEATURES = len(ITEM_FEATURES)

# Columns after the D embedding columns, as module constants for the hot path: `_I_*` in `item`,
# `_S_*` in each row of `slots`.
_I_IS_QUERY, _I_PROGRESS, _I_RECALL_VALID, _I_SIM_RECALL = map(
    ITEM_FEATURES.index, ("is_query", "progress", "recall_valid", "sim_recall")
)
_I_SIM_QUERIES, _I_QUERIES_SEEN, _I_INNER_LEFT, _I_OCCUPANCY = map(
    ITEM_FEATURES.index, ("sim_queries", "queries_seen", "inner_ops_left", "occupancy")
)
_S_OCCUPIED, _S_AGE, _S_SINCE_USED, _S_READS, _S_EDITS = map(
    SLOT_FEATURES.index, ("occupied", "age", "since_used", "reads", "edits")
)
_S_SIM_ITEM, _S_SIM_RECALL, _S_SIM_QUERIES = map(
    SLOT_FEATURES.index, ("sim_item", "sim_recall", "sim_queries")
)
_SKIP, _STORE, _EDIT, _EVICT, _RETRIEVE = Op  # module constants: cheaper on the hot path
_QUERY, _FACT = ItemKind.QUERY, ItemKind.FACT
# Attributes that are views into the observation buffers (rebuilt after unpickling).
_BUFFER_VIEWS = (
    "_ob_item_emb", "_ob_recall_emb", "_ob_slot_rows", "_ob_slot_emb_rows", "_ob_ages",
    "_ob_sim_item", "_ob_sim_recall", "_ob_sim_queries",
)


def _unit32(v: np.ndarray) -> np.ndarray:
    out = np.empty(len(v), np.float32)
    unit32(v, out)  # as the vector env computes it (similarity.py)
    return out


class StreamingMemoryEnv(gym.Env):
    """Base class; see each task's docstring for its Action Space, Observation Space and Rewards."""

    metadata: ClassVar[dict] = {"render_modes": ["ansi"]}
    config_class: ClassVar[type] = StreamConfig
    presets: ClassVar[dict[Level, dict[str, Any]]] = {}
    description: ClassVar[str] = ""

    def __init__(self, level: str | Level = Level.MEDIUM, render_mode: str | None = None, **kw):
        level = Level(level)
        self.level = level
        self.config = build_config(self.config_class, self.presets.get(level, {}), kw)
        self.render_mode = render_mode
        cfg = self.config
        K, D = cfg.capacity, cfg.dim
        self.codec = ActionCodec(K)
        self.action_space = spaces.Discrete(self.codec.n)
        self.observation_space = spaces.Dict(
            {
                "item": spaces.Box(-np.inf, np.inf, (D + NUM_ITEM_FEATURES,), np.float32),
                "slots": spaces.Box(-np.inf, np.inf, (K, D + NUM_SLOT_FEATURES), np.float32),
                "recall": spaces.Box(-1.0, 1.0, (D + 1,), np.float32),
                "action_mask": spaces.MultiBinary(self.codec.n),
            }
        )
        self.bank = MemoryBank(K, D)
        self.stream: FactStream | None = None
        self._zero = np.zeros(D, np.float32)
        self._decoded = [self.codec.decode(a) for a in range(self.codec.n)]  # (op, slot)
        # Hot-path copies of config values and of the bank's embedding matrix (updated in place).
        self._dim, self._capacity, self._length = D, K, cfg.length
        self._num_actions, self._max_inner = self.codec.n, cfg.max_inner_ops
        self._slot_emb = self.bank.embedding
        # The mask: one gather from the occupancy (`MaskGather`), by the table of the moment.
        self._masks = MaskGather(self.codec)
        self._mask_src, self._mask_tables = self._masks.source, self._masks.tables
        self._mask_table = self._mask_tables[False, False]
        self._mask = self._mask_src[self._mask_table]
        self._init_obs_buffer()

    def _init_obs_buffer(self) -> None:
        """The observation is kept in three preallocated arrays, updated in place as events happen
        (see "internals" below); a step emits fresh copies of them, so returned observations never
        alias state that later steps change. `slots` is kept column-major, since what changes at
        every step is a column (ages, similarity to the item), and emitted row-major."""
        K, D = self.config.capacity, self.config.dim
        self._ob_item = np.zeros(D + NUM_ITEM_FEATURES, np.float32)
        self._ob_slots = np.zeros((K, D + NUM_SLOT_FEATURES), np.float32, order="F")
        self._ob_recall = np.zeros(D + 1, np.float32)
        self._init_views()

    def _init_views(self) -> None:
        # Persistent views: `view[...] = x` is about half the cost of `array[:D] = x`.
        D = self._dim
        slots = self._ob_slots
        self._ob_item_emb = self._ob_item[:D]
        self._ob_recall_emb = self._ob_recall[:D]
        self._ob_slot_rows = [slots[k] for k in range(self._capacity)]
        self._ob_slot_emb_rows = [slots[k, :D] for k in range(self._capacity)]
        self._ob_ages = slots[:, D + _S_AGE : D + _S_SINCE_USED + 1].T  # (2, K)
        self._ob_sim_item = slots[:, D + _S_SIM_ITEM]
        self._ob_sim_recall = slots[:, D + _S_SIM_RECALL]
        self._ob_sim_queries = slots[:, D + _S_SIM_QUERIES]

    # ---- task hooks ----------------------------------------------------------------------------

    def task_structure(self, rng: np.random.Generator) -> TaskStructure:
        """Per-episode structure of the facts. Default: every fact is askable, answers itself."""
        F = self.config.num_facts
        return TaskStructure(
            queryable=np.ones(F, bool),
            answer_of=np.arange(F),
            link_of=np.full(F, -1),
            topic_of=np.full(F, -1),
        )

    # ---- gym API -------------------------------------------------------------------------------

    def encode(self, op: Op, slot: int = 0) -> int:
        return self.codec.encode(op, slot)

    def decode(self, action: int) -> tuple[Op, int]:
        return self.codec.decode(action)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        cfg = self.config
        task = self.task_structure(self.np_random)
        if self.stream is None:
            self.stream = FactStream(cfg)
        self.stream.start(task, episode_seed(self.np_random))
        self.bank.clear()
        self.metrics = EpisodeMetrics(cfg.num_queries, cfg.num_facts)
        self.t = 0
        self._query_sum = np.zeros(cfg.dim, np.float64)
        self._queries = self._zero
        self._num_queries_seen = 0
        self._inner_ops = 0
        self._recall = self._zero
        self._recall_valid = False
        self._recall_content = None
        self._is_query = False
        self._occupancy = 0.0
        self._ob_item.fill(0.0)
        self._ob_slots.fill(0.0)
        self._ob_recall.fill(0.0)
        self._masks.clear()
        self._begin_item()
        self._select_mask_table()
        self._rebuild_observation()
        return self._observation(), {}

    def step(self, action):
        if self.stream is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        m = self.metrics
        a = int(action)
        if not (0 <= a < self._num_actions and self._mask[a]):
            m.invalid_actions += 1
            if self._inner_ops < self._max_inner:
                self._count_inner_op()  # a no-op that still counts, so an episode always ends
                return self._observation(), 0.0, False, False, {"invalid_action": True}
            a = 0  # the bound is spent: fall back to SKIP so the stream moves on
        op, slot = self._decoded[a]
        bank = self.bank
        if op is _EVICT or op is _RETRIEVE:
            if op is _EVICT:
                m.on_evict(bank.content[slot], self.stream.version)
                bank.evict(slot)
                self._ob_slot_rows[slot].fill(0.0)
                self._set_occupied(slot, False)
            else:
                self._retrieve(slot)
                m.retrieves += 1
            self._count_inner_op()
            return self._observation(), 0.0, False, False, {"invalid_action": False}

        cfg = self.config
        reward = 0.0
        if op is not _SKIP:  # STORE or EDIT
            content = (self._fact, self._version, self.t)
            if op is _STORE:
                bank.store(slot, self._item, content, self.t)
                self._set_occupied(slot, True)
            else:
                m.on_overwrite(bank.content[slot], self.stream.version)
                bank.edit(slot, self._item, content, self.t)
            self._write_slot_row(slot, op is _EDIT)
            m.on_write(op, self._fact, self._version, self.stream.version)
            reward -= cfg.write_cost
        elif self._kind is _QUERY:
            reward += m.on_answer(
                self._recall_content if self._recall_valid else None,
                self._answer_fact,
                int(self.stream.version[self._answer_fact]),
            )
        m.utilisation_sum += self._occupancy
        self.t += 1
        if self.t >= cfg.length:
            # The last observation keeps the last item (stream progress 1) and the last mask,
            # since no action follows.
            self._rebuild_observation()
            info = {"invalid_action": False, "metrics": m.summary(cfg.length)}
            return self._observation(new_mask=False), reward, True, False, info
        self._begin_item()
        return self._observation(), reward, False, False, {"invalid_action": False}

    # ---- internals -----------------------------------------------------------------------------
    # The hot path: each event updates only the parts of the observation buffer it changes.
    # `_rebuild_observation` computes all of it from scratch (at reset and at episode end) and is
    # the reference the incremental updates must agree with.

    def _begin_item(self) -> None:
        kind, emb, fact, version = self.stream.item(self.t)
        self._kind, self._item, self._fact, self._version = kind, emb, fact, version
        D = self._dim
        item = self._ob_item
        if self._recall_valid:  # `recall` holds for one item only
            self._recall = self._zero
            self._recall_valid = False
            self._recall_content = None
            self._ob_recall.fill(0.0)
            self._ob_sim_recall.fill(0.0)
            item[D + _I_RECALL_VALID] = 0.0
            item[D + _I_SIM_RECALL] = 0.0
        if self._inner_ops:
            self._inner_ops = 0
            item[D + _I_INNER_LEFT] = 1.0
            self._select_mask_table()
        is_query = kind is _QUERY
        if is_query:
            self._answer_fact = int(self.stream.query_answers[self.stream._next_query - 1])
            self._record_needed(fact)
            self._query_sum += emb
            self._num_queries_seen += 1
            self._queries = _unit32(self._query_sum)
            matvec(self._slot_emb, self._queries, self._ob_sim_queries)
            item[D + _I_QUERIES_SEEN] = math.log1p(self._num_queries_seen) / 8.0
        elif kind is _FACT:
            self.metrics.on_mention(fact, version)
        if is_query is not self._is_query:
            self._is_query = is_query
            item[D + _I_IS_QUERY] = is_query
            self._select_mask_table()
        self._ob_item_emb[...] = emb
        item[D + _I_PROGRESS] = self.t / self._length
        matvec(self._slot_emb, emb, self._ob_sim_item)
        if self._num_queries_seen:
            item[D + _I_SIM_QUERIES] = dot(emb, self._queries)
        self.bank.ages(self.t, self._ob_ages)

    def _write_slot_row(self, slot: int, edited: bool) -> None:
        """A STORE or EDIT changed `slot`. Its age, time since use and similarity to the item are
        refreshed by the next item (or the final rebuild), its similarity to recall too (recall
        is cleared then); the rest is set here. An empty slot's row is all zeros (reads and edits
        included), so a STORE only sets what is not."""
        D, slots = self._dim, self._ob_slots
        self._ob_slot_emb_rows[slot][...] = self._item
        if edited:
            slots[slot, D + _S_EDITS] = self.bank.edits_feature(slot)
        else:
            slots[slot, D + _S_OCCUPIED] = 1.0
        if self._num_queries_seen:
            slots[slot, D + _S_SIM_QUERIES] = dot(self._item, self._queries)

    def _retrieve(self, slot: int) -> None:
        D, bank = self._dim, self.bank
        self._recall = recall = bank.read(slot, self.t).copy()
        self._recall_content = bank.content[slot].copy()
        self._recall_valid = True
        slots = self._ob_slots
        slots[slot, D + _S_READS] = bank.reads_feature(slot)
        slots[slot, D + _S_SINCE_USED] = 0.0  # used now
        self._ob_recall_emb[...] = recall
        self._ob_recall[D] = 1.0
        item = self._ob_item
        item[D + _I_RECALL_VALID] = 1.0
        item[D + _I_SIM_RECALL] = dot(self._item, recall)
        matvec(bank.embedding, recall, self._ob_sim_recall)

    def _set_occupied(self, slot: int, occupied: bool) -> None:
        self._occupancy = self.bank.size / self._capacity
        self._ob_item[self._dim + _I_OCCUPANCY] = self._occupancy
        self._masks.set_occupied(slot, occupied)

    def _count_inner_op(self) -> None:
        self._inner_ops += 1
        self._ob_item[self._dim + _I_INNER_LEFT] = 1.0 - self._inner_ops / self._max_inner
        if self._inner_ops == self._max_inner:
            self._select_mask_table()

    def _record_needed(self, asked: int) -> None:
        """Check, as a query arrives, whether what it needs is still in memory (lost items)."""
        needed = {asked, self._answer_fact} if self.task_needs_bridge else {self._answer_fact}
        for f in needed:
            v = int(self.stream.version[f])
            self.metrics.on_needed(f, v, self.bank.holds(f, v) >= 0)

    task_needs_bridge: ClassVar[bool] = False

    def _select_mask_table(self) -> None:
        spent = self._inner_ops >= self._max_inner
        self._mask_table = self._mask_tables[self._is_query, spent]

    def _rebuild_observation(self) -> None:
        cfg = self.config
        D = cfg.dim
        item = self._ob_item
        item[:D] = self._item
        item[D:] = (
            self._kind is ItemKind.QUERY,
            self.t / cfg.length,
            self._recall_valid,
            dot(self._item, self._recall),
            dot(self._item, self._queries),
            math.log1p(self._num_queries_seen) / 8.0,
            1.0 - self._inner_ops / cfg.max_inner_ops,
            self.bank.size / cfg.capacity,
        )
        self._ob_recall[:D] = self._recall
        self._ob_recall[D] = self._recall_valid
        self.bank.features(self.t, self._item, self._recall, self._queries, self._ob_slots)

    def _observation(self, new_mask: bool = True) -> dict[str, np.ndarray]:
        if new_mask:
            # A fresh array each step, never written to: `step` checks actions against it.
            self._mask = self._mask_src[self._mask_table]
        return {
            "item": self._ob_item.copy(),
            "slots": self._ob_slots.copy(order="C"),
            "recall": self._ob_recall.copy(),
            "action_mask": self._mask.copy(),
        }

    def __getstate__(self):
        # Views would unpickle as separate arrays: drop them and rebuild them on the buffers.
        state = self.__dict__.copy()
        for name in _BUFFER_VIEWS:
            del state[name]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_views()

    def action_masks(self) -> np.ndarray:
        """Valid actions as booleans (sb3-contrib's MaskablePPO convention)."""
        return self._mask.astype(bool)

    def get_state(self) -> dict[str, Any]:
        """The hidden state and future, for oracles, asymmetric critics and debugging."""
        s = self.stream
        content = self.bank.content
        next_use = np.array(
            [s.next_use(int(c[FACT]), int(c[VERSION]), self.t) for c in content], np.int64
        )
        answer_slots: list[int] = []
        if self._kind is ItemKind.QUERY:
            chain = [self._fact, self._answer_fact] if self.task_needs_bridge else [self._answer_fact]
            answer_slots = [self.bank.holds(f, int(s.version[f])) for f in chain]
        return {
            "t": self.t,
            "length": self.config.length,
            "item_kind": ItemKind(self._kind),
            "item_fact": self._fact,
            "item_version": self._version,
            "item_next_use": s.next_use(self._fact, self._version, self.t + 1),
            "slot_occupied": self.bank.occupied.copy(),
            "slot_fact": content[:, FACT].copy(),
            "slot_version": content[:, VERSION].copy(),
            "slot_next_use": next_use,
            "never": NEVER,
            "answer_slots": answer_slots,
            "recall_fact": -1 if self._recall_content is None else int(self._recall_content[FACT]),
            "recall_version": -1
            if self._recall_content is None
            else int(self._recall_content[VERSION]),
            "inner_ops": self._inner_ops,
            "fact_version": s.version.copy(),
            "fact_next_update": s.next_update.copy(),
            "query_positions": s.query_positions.copy(),
            "query_facts": s.query_facts.copy(),
            "query_answers": s.query_answers.copy(),
        }

    def render(self):
        if self.render_mode != "ansi":
            return None
        kinds = {ItemKind.DISTRACTOR: "distractor", ItemKind.FACT: "fact", ItemKind.QUERY: "QUERY"}
        lines = [f"t={self.t}/{self.config.length} item={kinds[self._kind]} fact={self._fact}"]
        for k in range(self.config.capacity):
            c = self.bank.content[k]
            lines.append(f"  slot {k}: " + (f"fact {c[0]} v{c[1]}" if self.bank.occupied[k] else "-"))
        return "\n".join(lines)
