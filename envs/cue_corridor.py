"""Cue corridor: a cue seen at the start decides which door to take at the end of a long corridor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Level
from .embedding import fixed_direction, unit
from .embodied import EmbodiedConfig, EmbodiedMemoryEnv, require
from .embodied_layout import pick
from .embodied_vector import EmbodiedVectorEnv
from .grid import Cell, Move
from .stream import W_FACT, W_KEY

MAX_LENGTH = 100_000


@dataclass
class CueCorridorConfig(EmbodiedConfig):
    capacity: int = 2
    length: int = 200
    """Corridor cells from the start to the last door (thousands for long-horizon memory)."""
    num_doors: int = 3
    """Doors at the end of the corridor; exactly one matches the cue."""
    distractor_rate: float = 0.3
    """Fraction of corridor cells holding scenery (items that compete for memory)."""
    cue_steps: int = 1
    """World steps the cue stays visible at the start (1: only the first observation)."""
    slack: int = 10
    """World steps allowed beyond walking the corridor and checking every door."""

    def __post_init__(self):
        super().__post_init__()
        require(2 <= self.num_doors <= 8, "num_doors must be in [2, 8]")
        shortest = self.num_doors + 2 * self.view_radius + 3
        require(
            self.length >= shortest,
            f"length must be >= {shortest} so the doors cannot be seen from the cue",
        )
        require(self.length <= MAX_LENGTH, f"length must be <= {MAX_LENGTH:,}")
        require(0.0 <= self.distractor_rate < 1.0, "distractor_rate must be in [0, 1)")
        require(self.cue_steps >= 1, "cue_steps must be >= 1")
        require(self.slack >= 0, "slack must be >= 0")


class CueCorridorEnv(EmbodiedMemoryEnv):
    """
    ## Description
    After MiniGrid-Memory, at scale. The agent starts on a cue (an object, shown only for the
    first `cue_steps` world steps) at the west end of a one-cell-wide corridor `length` cells long,
    lined with scenery. At the east end `num_doors` doors open north and south of the corridor,
    each showing an object; entering the door whose object matches the cue is success, any other
    door is failure. Standing in front of a door makes that door the item, and it is a *query*:
    the agent reads memory (RETRIEVE), compares (`sim_recall`) and enters or walks on.

    ## Action Space
    `Discrete(5 + 4K)`: `STAY, UP, RIGHT, DOWN, LEFT`, then `STORE(s)`, `EDIT(s)`, `EVICT(s)`,
    `RETRIEVE(s)` per slot; memory ops do not advance the world (at most `max_inner_ops` per
    world step). See `memgym.envs.object_recall` for the shared contract.

    ## Observation Space
    As `ObjectRecallEnv`: `item`, `slots`, `recall`, `action_mask`, `view`, `pose`, `item_pos`,
    `slot_pos`, `recall_pos`, `phase` (cue shown / corridor / at the doors).

    ## Rewards
    1 for entering the matching door; minus `write_cost` per STORE/EDIT.

    ## Episode End
    Terminates when a door is entered, or after `length + 2 * num_doors + slack` world steps.
    `info["metrics"]`: `success`, `distance_to_goal` and the memory metrics (lost items: was the
    cue in memory when the first door came into attention?).

    ## Version History
    * v0: initial version; since revised (same id): `recall` is kept while the attended item is
      unchanged (one read serves as long as the agent looks at the same thing), not cleared at
      every move.
    """

    description = "remember a cue along a corridor of up to thousands of steps, then pick its door"
    summary_keys = ("length", "num_doors")
    config_class = CueCorridorConfig
    presets = {
        Level.EASY: dict(length=16, num_doors=2, distractor_rate=0.2, capacity=2),
        Level.MEDIUM: dict(length=200, num_doors=3, distractor_rate=0.3, capacity=2),
        Level.HARD: dict(length=5000, num_doors=4, distractor_rate=0.5, capacity=2, noise=0.3,
                         slack=20),
    }

    def max_entities(self) -> int:
        cfg = self.config
        scenery = cfg.length - cfg.num_doors - cfg.view_radius - 1  # cells that may hold some
        return cfg.num_doors + 1 + scenery + 1  # doors, the cue, scenery, the backdrop

    @staticmethod
    def _scenery_span(cfg) -> np.ndarray:
        """Columns that may hold scenery: it stops out of view of every door front, so a door
        is the only thing seen there."""
        return np.arange(2, cfg.length - cfg.num_doors - cfg.view_radius + 1)

    @staticmethod
    def _door_cells(cfg) -> np.ndarray:
        """Doors alternate above and below the corridor's last cells, the same every episode."""
        L = cfg.length
        return np.array([(0 if d % 2 == 0 else 2, L - d) for d in range(cfg.num_doors)])

    @classmethod
    def layout_draws(cls, cfg) -> tuple[int, int]:
        span = len(cls._scenery_span(cfg))
        # The correct door and, for each column of the span, whether scenery stands there;
        # a key for each door and a direction for each piece of scenery (at most one a column).
        return 1 + span, cfg.num_doors + span

    @classmethod
    def layout_map(cls, cfg) -> np.ndarray:
        L = cfg.length
        cells = np.full((3, L + 2), Cell.WALL, np.int8)
        cells[1, 1 : L + 1] = Cell.FLOOR
        doors = cls._door_cells(cfg)
        cells[doors[:, 0], doors[:, 1]] = Cell.DOOR
        return cells

    @classmethod
    def _layout(cls, cfg, u, z):
        nd, D, span = cfg.num_doors, cfg.dim, cls._scenery_span(cfg)
        R, P = len(u), len(span)
        correct = pick(u[:, 0], nd)
        keys = unit(W_KEY * unit(z[:, :nd]) + W_FACT * fixed_direction("object", D))
        cells = np.full((R, nd + 1 + P, 2), -1, np.int64)
        embeddings = np.zeros((R, nd + 1 + P, D), np.float32)
        cells[:, :nd] = cls._door_cells(cfg)
        cells[:, nd] = (1, 1)  # the cue, where the agent starts
        embeddings[:, :nd] = keys
        embeddings[:, nd] = keys[np.arange(R), correct]
        # The j-th piece of scenery of an episode is entity nd + 1 + j, with the j-th direction.
        scenery = u[:, 1:] < cfg.distractor_rate
        r, p = np.nonzero(scenery)
        j = (np.cumsum(scenery, axis=1) - 1)[r, p]
        cells[r, nd + 1 + j, 0], cells[r, nd + 1 + j, 1] = 1, span[p]
        embeddings[r, nd + 1 + j] = unit(z[r, nd + j])
        pos = np.ones((R, 2), np.int64)
        return pos, cells, embeddings, nd + 1 + scenery.sum(1), {"correct": correct}

    def _adopt_task(self, task) -> None:
        cfg = self.config
        self.door_cells = self._door_cells(cfg)
        self.correct = int(task["correct"])
        self.cue_entity = cfg.num_doors
        self.horizon = cfg.length + 2 * cfg.num_doors + cfg.slack
        self.chosen = -1
        self.first_door_seen = False

    def _phase(self) -> int:
        if self.t < self.config.cue_steps:
            return 0
        return 2 if self.world.pos[1] > self.config.length - self.config.num_doors else 1

    def _advance(self, move: Move) -> tuple[float, bool]:
        y, x = self.world.pos
        if self.world.cells[y, x] == Cell.DOOR:
            self.chosen = self.world.entity_at((y, x))
            return float(self.chosen == self.correct), True
        if self.t == self.config.cue_steps:
            self.world.take((1, 1))
        return 0.0, False

    def _item(self):
        entity, pos = self._attend()
        is_door = 0 <= entity < self.config.num_doors
        if is_door and not self.first_door_seen:
            self.first_door_seen = True
            self.needed(self.cue_entity)
        return entity, pos, is_door

    def _keep(self) -> np.ndarray:
        keep = np.zeros(self.num_entities, bool)
        keep[self.cue_entity] = True
        return keep

    def _answer_entity(self) -> int:
        return self.cue_entity

    def _outcome_metrics(self, timed_out: bool) -> dict[str, float]:
        success = self.chosen == self.correct
        chose = self.chosen >= 0
        self.score(correct=int(success), wrong=int(chose and not success), abstentions=int(not chose))
        goal = self.door_cells[self.correct]
        y, x = self.world.pos
        return {"success": float(success), "distance_to_goal": float(abs(y - goal[0]) + abs(x - goal[1]))}

    def _task_state(self) -> dict:
        return {
            "correct_door": self.correct,
            "door_cells": self.door_cells.copy(),
            "cue_entity": self.cue_entity,
            "num_doors": self.config.num_doors,
            "length": self.config.length,
        }


class CueCorridorVectorEnv(EmbodiedVectorEnv):
    """`N` `CueCorridorEnv`s stepped together in numpy (see `memgym.envs.embodied_vector`)."""

    env_class = CueCorridorEnv

    def _import_task_layouts(self, rows, task) -> None:
        if not hasattr(self, "correct"):
            N = self.num_envs
            self.correct = np.zeros(N, np.int64)
            self.chosen = np.full(N, -1, np.int64)
            self.first_door_seen = np.zeros(N, bool)
            self.door_cells = CueCorridorEnv._door_cells(self.config)
            self.cue_entity = self.config.num_doors
        self.correct[rows], self.chosen[rows], self.first_door_seen[rows] = task["correct"], -1, False

    def _needed(self, rows) -> np.ndarray:
        needed = np.zeros((len(rows), self.memory.num_facts), bool)
        needed[:, self.cue_entity] = True
        return needed

    def _goal(self, rows) -> np.ndarray:
        return self.door_cells[self.correct[rows]]

    def _phase(self, rows) -> np.ndarray:
        cfg = self.config
        at_doors = self.pos[rows, 1] > cfg.length - cfg.num_doors
        return np.where(self.t[rows] < cfg.cue_steps, 0, np.where(at_doors, 2, 1))

    def _advance(self, rows, moves, t_prev):
        pos = self.pos[rows]
        r = self.radius
        at_door = self.cells[pos[:, 0] + r, pos[:, 1] + r] == Cell.DOOR
        d = rows[at_door]
        self.chosen[d] = self.entity_at(d, self.pos[d])
        rest = rows[~at_door]
        hide = rest[self.t[rest] == self.config.cue_steps]
        self.take(hide, np.ones((len(hide), 2), np.int64))  # the cue, at (1, 1)
        return (at_door & (self.chosen[rows] == self.correct[rows])).astype(np.float64), at_door

    def _item(self, rows):
        entity, pos = self._attend(rows)
        is_door = (entity >= 0) & (entity < self.config.num_doors)
        first = is_door & ~self.first_door_seen[rows]
        self.first_door_seen[rows[first]] = True
        self.memory.needed(rows[first], self.cue_entity)
        return entity, pos, is_door

    def _outcome(self, rows, timed_out):
        chosen, correct = self.chosen[rows], self.correct[rows]
        success, chose = chosen == correct, chosen >= 0
        mem = self.memory
        mem.correct[rows] += success
        mem.wrong[rows] += chose & ~success
        mem.abstentions[rows] += ~chose
        goal = self.door_cells[correct]
        return {
            "success": success.astype(np.float64),
            "distance_to_goal": np.abs(self.pos[rows] - goal).sum(-1).astype(np.float64),
        }
