"""`EmbodiedMemoryEnv`: the base of the embodied family. An agent moves in a partially observed grid
(`envs/grid.py`) and manages a bounded memory of what it sees (`envs/slot_memory.py`). Tasks
subclass it and say only what differs: the layout, what happens when the world moves, and what
ends an episode."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .bank import FACT, NUM_SLOT_FEATURES, POSITION, VERSION
from .config import ConfigError, Level, build_config
from .embedding import gaussian_uniforms, gaussians_from, unit
from .embodied_layout import Layouts
from .grid import NO_ENTITY, NUM_VIEW_CODES, GridWorld, Move
from .slot_memory import SlotMemory, unit_rows
from .streaming import NUM_ITEM_FEATURES

NUM_PHASES = 3
NOISE_BANK = 64  # per-episode noise draws, cycled through by world step (see `_present`)
ROW = np.zeros(1, np.int64)  # a single env is row 0 of a batch of one (see slot_memory.py)


@dataclass
class EmbodiedConfig:
    """Knobs shared by every embodied task (each task's config adds its own)."""

    capacity: int = 4
    """Slots in the memory bank (K)."""
    dim: int = 32
    """Embedding dimension D."""
    view_radius: int = 2
    """The egocentric view is `(2r+1) x (2r+1)` cells around the agent."""
    noise: float = 0.1
    """Std of the noise added to an embedding each time it is seen (before normalisation)."""
    max_inner_ops: int = 3
    """Memory ops (and invalid actions) allowed per world step before only moves remain."""
    write_cost: float = 0.0
    """Reward charged per STORE or EDIT."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, bool):
                ok = isinstance(value, bool)
            elif isinstance(f.default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(f.default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                if ok:
                    setattr(self, f.name, float(value))
            else:
                ok = True
            if not ok:
                kind = type(f.default).__name__
                raise ConfigError(f"{f.name} must be of type {kind}, got {value!r}")
        require(self.capacity >= 1, "capacity must be >= 1")
        require(self.dim >= 4, "dim must be >= 4")
        require(self.view_radius >= 1, "view_radius must be >= 1")
        require(self.noise >= 0.0, "noise must be >= 0")
        require(self.max_inner_ops >= 2, "max_inner_ops must be >= 2 (store and read per step)")
        require(self.write_cost >= 0.0, "write_cost must be >= 0")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


class EmbodiedMemoryEnv(gym.Env):
    """Base class; see each task's docstring for its Action Space, Observation Space and Rewards.

    Subclasses implement the episode's layout for many episodes at once (`layout_draws`,
    `layout_map`, `_layout`; `_adopt_task` sets a single env's task attributes from it, including
    `horizon`), `_advance` (the world after a move), `_outcome_metrics`, `_task_state` and, when
    the default does not fit, `_item`, `_version`, `_keep`, `_answer_entity`, `_phase`.
    """

    metadata: ClassVar[dict] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}
    config_class: ClassVar[type] = EmbodiedConfig
    presets: ClassVar[dict[Level, dict[str, Any]]] = {}
    description: ClassVar[str] = ""
    num_queries: ClassVar[int] = 1
    summary_keys: ClassVar[tuple[str, ...]] = ()  # the knobs `memgym envs` shows

    @classmethod
    def describe_preset(cls, preset: dict[str, Any]) -> str:
        cfg = cls.config_class(**preset)
        return ", ".join([*(f"{k} {getattr(cfg, k)}" for k in cls.summary_keys), f"K={cfg.capacity}"])

    def __init__(self, level: str | Level = Level.MEDIUM, render_mode: str | None = None, **kw):
        self.level = Level(level)
        self.config = build_config(self.config_class, self.presets.get(self.level, {}), kw)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(
                f"render_mode={render_mode!r} is not one of {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        cfg = self.config
        K, D, V = cfg.capacity, cfg.dim, 2 * cfg.view_radius + 1
        self.memory = SlotMemory(1, K, D, len(Move), cfg.max_inner_ops, self.max_entities(),
                                 recall_per_item=True)
        self.codec = self.memory.codec
        self.action_space = spaces.Discrete(self.codec.n)
        unit = dict(low=0.0, high=1.0, dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "item": spaces.Box(-np.inf, np.inf, (D + NUM_ITEM_FEATURES,), np.float32),
                "slots": spaces.Box(-np.inf, np.inf, (K, D + NUM_SLOT_FEATURES), np.float32),
                "recall": spaces.Box(-1.0, 1.0, (D + 1,), np.float32),
                "action_mask": spaces.MultiBinary(self.codec.n),
                "view": spaces.Box(0, NUM_VIEW_CODES - 1, (V, V), np.int8),
                "pose": spaces.Box(shape=(2,), **unit),
                "item_pos": spaces.Box(shape=(3,), **unit),
                "slot_pos": spaces.Box(shape=(K, 2), **unit),
                "recall_pos": spaces.Box(shape=(2,), **unit),
                "phase": spaces.Box(shape=(NUM_PHASES,), **unit),
                **self._extra_spaces(),
            }
        )
        self.world: GridWorld | None = None
        self._view = np.zeros((V, V), np.int8)
        self._zero = np.zeros(D, np.float32)

    # ---- task hooks ----------------------------------------------------------------------------

    def max_entities(self) -> int:
        """An upper bound on `num_entities` (backdrop included) under this config."""
        raise NotImplementedError

    def _advance(self, move: Move) -> tuple[float, bool]:
        """The world after the agent moved (or stayed): returns `(reward, terminated)`."""
        raise NotImplementedError

    def _outcome_metrics(self, timed_out: bool) -> dict[str, float]:
        """`success` and the task's extra metrics; may set `metrics.correct/wrong/abstentions`."""
        raise NotImplementedError

    def _task_state(self) -> dict[str, Any]:
        return {}

    def _phase(self) -> int:
        return 0

    def _item(self) -> tuple[int, tuple[int, int] | None, bool]:
        """What the agent attends to now: `(entity, position, is_query)`. Default: `_attend()`,
        never a query."""
        entity, pos = self._attend()
        return entity, pos, False

    def _attend(self) -> tuple[int, tuple[int, int] | None]:
        """The nearest entity in view, or the backdrop (the look of the place itself, nowhere in
        particular) when there is none: an agent always sees something."""
        entity, pos = self.world.nearest_entity()
        return (self.backdrop, None) if entity == NO_ENTITY else (entity, pos)

    @property
    def step_bound(self) -> int:
        """Most steps an episode can take: each world step plus its inner ops (at most
        `max_inner_ops`, invalid actions included). The horizon is fixed by the config, so every
        episode shares it; GRPO sizes its whole-episode rollouts by it. Known once reset."""
        if not hasattr(self, "horizon"):
            raise RuntimeError(f"{type(self).__name__}.step_bound is known once the env is reset")
        return self.horizon * (self.config.max_inner_ops + 1)

    def make_world(self, cells: np.ndarray, num_entities: int) -> GridWorld:
        """The episode's grid, with room for `num_entities` task entities and the backdrop."""
        self.backdrop = num_entities
        return GridWorld(cells, self.config.view_radius, num_entities + 1)

    def _version(self, entity: int, pos) -> int:
        return 0

    def _keep(self) -> np.ndarray:
        """Entities whose memory the rest of the episode needs (the oracle's store rule)."""
        return np.zeros(self.num_entities, bool)

    def _answer_entity(self) -> int:
        """For a query item, the entity whose memory answers it (else -1)."""
        return -1

    def _extra_spaces(self) -> dict[str, spaces.Space]:
        return {}

    def _extra_obs(self) -> dict[str, np.ndarray]:
        return {}

    # ---- the episode's layout, batched (`embodied_layout.py`) --------------------------------

    @classmethod
    def layout_draws(cls, cfg) -> tuple[int, int]:
        """`(uniforms, normal vectors)` the task's `_layout` takes per episode."""
        raise NotImplementedError

    @classmethod
    def layout_map(cls, cfg) -> np.ndarray:
        """The grid's cells (`Cell` codes), the same in every episode of a config."""
        raise NotImplementedError

    @classmethod
    def _layout(cls, cfg, u: np.ndarray, z: np.ndarray):
        """`R` episodes from `u` (`[R, uniforms]`) and `z` (`[R, normal vectors, D]`): returns
        `(pos [R, 2], entity_cells [R, E, 2], embeddings [R, E, D], num_task_entities [R],
        task arrays)` as `Layouts` describes them (the backdrop is added by `layouts`)."""
        raise NotImplementedError

    def _adopt_task(self, task: dict[str, np.ndarray]) -> None:
        """Set the task's per-episode attributes from one episode's `Layouts.task` rows."""
        raise NotImplementedError

    @classmethod
    def episode_uniforms(cls, cfg) -> int:
        """Uniforms one episode draws from the env's generator: the task's, then those the
        normal vectors (the task's, the backdrop, the noise bank) are made from."""
        uniforms, normals = cls.layout_draws(cfg)
        return uniforms + gaussian_uniforms((normals + 1 + NOISE_BANK) * cfg.dim)

    def draw_episode(self, seed: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Seed (if given) and draw the next episode's block of uniforms: all its randomness."""
        gym.Env.reset(self, seed=seed)
        n = self.episode_uniforms(self.config)
        return self.np_random.random(n, dtype=np.float32, out=out)

    @classmethod
    def layouts(cls, cfg, u: np.ndarray) -> Layouts:
        """`R` episodes' worlds from `R` blocks of `draw_episode` (`[R, episode_uniforms]`)."""
        uniforms, normals = cls.layout_draws(cfg)
        D = cfg.dim
        z = gaussians_from(u[:, uniforms:], normals + 1 + NOISE_BANK, D)
        pos, cells, emb, count, task = cls._layout(cfg, u[:, :uniforms], z[:, :normals])
        R, E = cells.shape[:2]
        embeddings = np.zeros((R, E + 1, D), np.float32)
        embeddings[:, :E] = emb
        embeddings[np.arange(R), count] = unit(z[:, normals])
        noise = z[:, normals + 1 :] * np.float32(cfg.noise / np.sqrt(D))
        return Layouts(pos, cells, embeddings, count + 1, noise, task)

    def adopt(self, layout: Layouts) -> None:
        """Make episode 0 of `layout` this env's world."""
        E = int(layout.num_entities[0])
        self.world = self.make_world(self.layout_map(self.config), E - 1)
        for e, cell in enumerate(layout.entity_cells[0, : E - 1]):
            if cell[0] >= 0:
                self.world.place(e, cell)
        self.world.pos = tuple(int(v) for v in layout.pos[0])
        self.embeddings = layout.embeddings[0, :E]
        self.noise = layout.noise[0]
        self.num_entities = E
        self._adopt_task({k: v[0] for k, v in layout.task.items()})

    # ---- gym API -------------------------------------------------------------------------------

    def encode(self, op, slot: int = 0) -> int:
        return self.codec.encode(op, slot)

    def decode(self, action: int):
        return self.codec.decode(action)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.new_episode(seed)
        return self._observation(), {}

    def new_episode(self, seed: int | None = None) -> None:
        """`reset` without building the observation: the episode's world (a layout of one), an
        empty memory and the first step's item."""
        self.adopt(self.layouts(self.config, self.draw_episode(seed)[None]))
        assert self.num_entities == len(self.world.where) == self.backdrop + 1
        assert self.num_entities <= self.max_entities()
        self.memory.reset(ROW, self.num_queries)
        self.t = 0
        self.visited = np.zeros(self.num_entities, bool)
        self._visited_phase = self._phase()
        self._begin_step()

    def step(self, action):
        if self.world is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        mem = self.memory
        a = int(action)
        if not (0 <= a < self.codec.n and mem.mask[0, a]):
            if mem.absorb_invalid(ROW)[0]:
                return self._observation(), 0.0, False, False, {"invalid_action": True}
            a = Move.STAY  # the budget is spent: the world moves on
        if a >= len(Move):
            op, slot = self.codec.decode(a)
            wrote = mem.apply(ROW, np.array([op]), np.array([slot]))[0]
            reward = -self.config.write_cost if wrote else 0.0
            return self._observation(), reward, False, False, {"invalid_action": False}

        mem.end_world_step(ROW)
        move = Move(a)
        self.world.move(move)
        self.t += 1
        reward, terminated = self._advance(move)
        timed_out = not terminated and self.t >= self.horizon
        info: dict[str, Any] = {"invalid_action": False}
        self._begin_step()
        if terminated or timed_out:
            outcome = self._outcome_metrics(timed_out)  # first: it fills in the answer counts
            info["metrics"] = {**mem.summary(0), **outcome}
        return self._observation(), float(reward), terminated or timed_out, False, info

    def action_masks(self) -> np.ndarray:
        """Valid actions as booleans (sb3-contrib's MaskablePPO convention)."""
        return self.memory.mask[0].astype(bool)

    # ---- internals -----------------------------------------------------------------------------

    def _present(self, entity: int) -> np.ndarray:
        """The embedding of `entity` as seen now, unit norm, with noise that changes every world
        step. The noise comes from a bank drawn at reset, so a vector env can look it up for all
        its envs at once instead of drawing from each env's generator at every step."""
        return unit_rows((self.embeddings[entity] + self.noise[self.t % NOISE_BANK])[None])[0]

    def needed(self, fact: int) -> bool:
        """Record that the task needs `fact` now (for lost items); whether memory holds it."""
        return bool(self.memory.needed(ROW, fact)[0])

    def score(self, correct: int = 0, wrong: int = 0, abstentions: int = 0) -> None:
        mem = self.memory
        mem.correct[0] += correct
        mem.wrong[0] += wrong
        mem.abstentions[0] += abstentions

    def normalised(self, pos) -> np.ndarray:
        h, w = self.world.shape
        return np.array((pos[0] / max(h - 1, 1), pos[1] / max(w - 1, 1)), np.float32)

    def _begin_step(self) -> None:
        if self._phase() != self._visited_phase:  # a new phase: everything is worth a new look
            self._visited_phase = self._phase()
            self.visited.fill(False)
        entity, pos, is_query = self._item()
        self._item_entity, self._item_pos, self._is_query = entity, pos, is_query
        if entity == NO_ENTITY:
            item, content, where = self._zero, (-1, -1, -1), np.zeros(2, np.float32)
        else:
            if pos == self.world.pos:
                self.visited[entity] = True
            item = self._present(entity)
            cell = -1 if pos is None else pos[0] * self.world.width + pos[1]
            content = (entity, self._version(entity, pos), cell)
            where = np.zeros(2, np.float32) if pos is None else self.normalised(pos)
        writable = entity != NO_ENTITY and not is_query
        self.memory.begin_step(
            ROW, self.t, item, np.array(content), where, np.array([writable]),
            np.array([is_query]), self.world.move_mask(),
        )

    def _observation(self) -> dict[str, np.ndarray]:
        mem = self.memory
        obs = {k: v[0] for k, v in mem.observation(np.array([self.t / self.horizon])).items()}
        obs["view"] = self.world.view(self._view).copy()
        obs["pose"] = self.normalised(self.world.pos)
        present = self._item_pos is not None
        obs["item_pos"] = np.array((*mem.where[0], present), np.float32)
        obs["slot_pos"] = mem.slot_where[0].copy()
        obs["recall_pos"] = mem.recall_where[0].copy()
        phase = np.zeros(NUM_PHASES, np.float32)
        phase[self._phase()] = 1.0
        obs["phase"] = phase
        obs.update(self._extra_obs())
        return obs

    def cell_of(self, index: int) -> tuple[int, int]:
        return (-1, -1) if index < 0 else divmod(int(index), self.world.width)

    def get_state(self) -> dict[str, Any]:
        """The hidden state and the future, for oracles, scripted navigators and debugging."""
        mem = self.memory
        content = mem.content[0]
        return {
            "task": type(self).__name__,
            "t": self.t,
            "horizon": self.horizon,
            "phase": self._phase(),
            "pos": self.world.pos,
            "shape": self.world.shape,
            "cells": self.world.cells.copy(),
            "entity_pos": self.world.where.copy(),  # (-1, -1): not on the grid
            "visited": self.visited.copy(),  # stood on as the item, in the current phase
            "item_entity": self._item_entity,
            "item_cell": self._item_pos,
            "item_is_query": self._is_query,
            "slot_occupied": mem.occupied[0].copy(),
            "slot_entity": content[:, FACT].copy(),
            "slot_version": content[:, VERSION].copy(),  # 0: as first seen (where it belongs)
            "slot_cell": [self.cell_of(c) for c in content[:, POSITION]],
            "recall_valid": bool(mem.recall_valid[0]),
            "recall_entity": int(mem.recall_content[0, FACT]),
            "recall_version": int(mem.recall_content[0, VERSION]),
            "item_version": int(mem.item_content[0, VERSION]),
            "inner_ops": int(mem.inner_ops[0]),
            "keep": self._keep(),
            "answer_entity": self._answer_entity() if self._is_query else -1,
            **self._task_state(),
        }

    def render(self):
        if self.render_mode == "rgb_array":
            return self.world.render_rgb()
        if self.render_mode != "ansi":
            return None
        mem = self.memory
        lines = [self.world.render_ansi(), f"t={self.t}/{self.horizon} phase={self._phase()}"]
        for k in range(self.config.capacity):
            c = mem.content[0, k]
            lines.append(
                f"  slot {k}: " + (f"entity {c[FACT]} at {self.cell_of(c[POSITION])}"
                                   if mem.occupied[0, k] else "-")
            )
        return "\n".join(lines)
