"""`StreamingMemoryEnv`: the base of the streaming family. Tasks subclass it and say only what
differs (presets and the structure of their facts)."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .bank import FACT, NUM_SLOT_FEATURES, VERSION, MemoryBank
from .config import Level, StreamConfig, build_config
from .episode_metrics import EpisodeMetrics
from .ops import ADVANCING_OPS, ActionCodec, Op
from .stream import NEVER, FactStream, ItemKind, TaskStructure

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
        self._slot_obs = np.zeros((K, D + NUM_SLOT_FEATURES), np.float32)
        self._zero = np.zeros(D, np.float32)

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
        self.stream = FactStream(cfg, self.np_random, self.task_structure(self.np_random))
        self.bank.clear()
        self.metrics = EpisodeMetrics(cfg.num_queries, cfg.num_facts)
        self.t = 0
        self._query_sum = np.zeros(cfg.dim, np.float64)
        self._queries = self._zero
        self._num_queries_seen = 0
        self._begin_item()
        return self._observation(), {}

    def step(self, action):
        if self.stream is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        cfg, bank, m = self.config, self.bank, self.metrics
        a = int(action)
        reward = 0.0
        if not (0 <= a < self.codec.n and self._mask[a]):
            m.invalid_actions += 1
            if self._inner_ops < cfg.max_inner_ops:
                self._inner_ops += 1  # a no-op that still counts, so an episode always ends
                self._refresh_mask()
                return self._observation(), 0.0, False, False, {"invalid_action": True}
            a = 0  # the bound is spent: fall back to SKIP so the stream moves on
        op, slot = self.codec.decode(a)
        if op not in ADVANCING_OPS:
            self._inner_ops += 1
            if op is Op.EVICT:
                m.on_evict(bank.content[slot], self.stream.version)
                bank.evict(slot)
            else:
                self._recall = bank.read(slot, self.t).copy()
                self._recall_content = bank.content[slot].copy()
                self._recall_valid = True
                m.retrieves += 1
            self._refresh_mask()
            return self._observation(), 0.0, False, False, {"invalid_action": False}

        if op is Op.STORE or op is Op.EDIT:
            content = (self._fact, self._version, self.t)
            if op is Op.STORE:
                bank.store(slot, self._item, content, self.t)
            else:
                m.on_overwrite(bank.content[slot], self.stream.version)
                bank.edit(slot, self._item, content, self.t)
            m.on_write(op, self._fact, self._version, self.stream.version)
            reward -= cfg.write_cost
        elif self._kind is ItemKind.QUERY:
            reward += m.on_answer(
                self._recall_content if self._recall_valid else None,
                self._answer_fact,
                int(self.stream.version[self._answer_fact]),
            )
        m.utilisation_sum += bank.size / cfg.capacity
        self.t += 1
        terminated = self.t >= cfg.length
        info = {"invalid_action": False}
        if terminated:
            info["metrics"] = m.summary(cfg.length)
            return self._observation(), reward, True, False, info
        self._begin_item()
        return self._observation(), reward, False, False, info

    # ---- internals -----------------------------------------------------------------------------

    def _begin_item(self) -> None:
        kind, emb, fact, version = self.stream.item(self.t)
        self._kind, self._item, self._fact, self._version = kind, emb, fact, version
        self._inner_ops = 0
        self._recall = self._zero
        self._recall_valid = False
        self._recall_content = None
        if kind is ItemKind.QUERY:
            self._answer_fact = int(self.stream.query_answers[self.stream._next_query - 1])
            self._record_needed(fact)
            self._query_sum += emb
            self._num_queries_seen += 1
        elif kind is ItemKind.FACT:
            self.metrics.on_mention(fact, version)
        self._refresh_mask()

    def _record_needed(self, asked: int) -> None:
        """Check, as a query arrives, whether what it needs is still in memory (lost items)."""
        needed = {asked, self._answer_fact} if self.task_needs_bridge else {self._answer_fact}
        for f in needed:
            v = int(self.stream.version[f])
            self.metrics.on_needed(f, v, self.bank.holds(f, v) >= 0)

    task_needs_bridge: ClassVar[bool] = False

    def _refresh_mask(self) -> None:
        K = self.config.capacity
        occ = self.bank.occupied
        writable = self._kind is not ItemKind.QUERY
        inner_ok = self._inner_ops < self.config.max_inner_ops
        mask = np.empty(self.codec.n, np.int8)
        mask[0] = 1
        mask[1 : 1 + K] = ~occ & writable
        mask[1 + K : 1 + 2 * K] = occ & writable
        mask[1 + 2 * K :] = np.tile(occ & inner_ok, 2)
        self._mask = mask

    def _observation(self) -> dict[str, np.ndarray]:
        cfg = self.config
        D = cfg.dim
        if self._num_queries_seen:
            n = np.linalg.norm(self._query_sum)
            self._queries = (self._query_sum / n).astype(np.float32) if n > 0 else self._zero
        item = np.empty(D + NUM_ITEM_FEATURES, np.float32)
        item[:D] = self._item
        item[D:] = (
            self._kind is ItemKind.QUERY,
            self.t / cfg.length,
            self._recall_valid,
            float(self._item @ self._recall),
            float(self._item @ self._queries),
            np.log1p(self._num_queries_seen) / 8.0,
            1.0 - self._inner_ops / cfg.max_inner_ops,
            self.bank.size / cfg.capacity,
        )
        recall = np.empty(D + 1, np.float32)
        recall[:D] = self._recall
        recall[D] = self._recall_valid
        slots = self.bank.features(self.t, self._item, self._recall, self._queries, self._slot_obs)
        return {"item": item, "slots": slots.copy(), "recall": recall, "action_mask": self._mask.copy()}

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
