"""Rearrange: some objects get moved; put them back where they were."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from gymnasium import spaces

from .config import Level
from .embedding import fixed_direction, unit
from .embodied import EmbodiedConfig, EmbodiedMemoryEnv, require
from .embodied_layout import first_of_permutation, pick, room_interior
from .embodied_vector import EmbodiedVectorEnv
from .grid import NO_ENTITY, Move, walled_room
from .stream import W_FACT, W_KEY


class RearrangePhase(IntEnum):
    OBSERVE = 0
    REARRANGE = 1


@dataclass
class RearrangeConfig(EmbodiedConfig):
    room_size: int = 7
    """Side of the square room (walls excluded)."""
    num_objects: int = 4
    """Objects that can be picked up."""
    num_moved: int = 2
    """Objects moved to new cells when the observation phase ends."""
    num_clutter: int = 2
    """Scenery: never moves, cannot be picked up, competes for memory."""
    observe_steps: int = 40
    """World steps to look around before the objects are moved."""
    rearrange_steps: int = 80
    """World steps to put the moved objects back."""

    def __post_init__(self):
        super().__post_init__()
        require(self.room_size >= 3, "room_size must be >= 3")
        require(self.num_objects >= 1, "num_objects must be >= 1")
        require(1 <= self.num_moved <= self.num_objects, "num_moved must be in [1, num_objects]")
        require(self.num_clutter >= 0, "num_clutter must be >= 0")
        require(
            self.num_objects + self.num_clutter + self.num_moved < self.room_size**2,
            f"a {self.room_size}x{self.room_size} room is too small for {self.num_objects} "
            f"objects, {self.num_clutter} clutter and {self.num_moved} new places: raise room_size",
        )
        require(self.observe_steps >= 1, "observe_steps must be >= 1")
        require(self.rearrange_steps >= 1, "rearrange_steps must be >= 1")


class RearrangeEnv(EmbodiedMemoryEnv):
    """
    ## Description
    After SAM2Act's MemoryBench. A room holds `num_objects` objects and some clutter. After
    `observe_steps` world steps, `num_moved` objects are moved to new cells, all at once; the
    agent has `rearrange_steps` to put each back. `STAY` on an object picks it up (hands empty);
    `STAY` with an object in hand on a cell without one puts it down. Which objects moved, and
    where they belong, only memory can tell. In the rearrange phase an object (seen or carried) is
    a *query* item: RETRIEVE the memory of it and walk to where it was seen (`recall_pos`).

    ## Action Space
    `Discrete(5 + 4K)`: `STAY` (pick up / put down), `UP`, `RIGHT`, `DOWN`, `LEFT`, then
    `STORE(s)`, `EDIT(s)`, `EVICT(s)`, `RETRIEVE(s)` per slot; memory ops do not advance the
    world (at most `max_inner_ops` per world step).

    ## Observation Space
    As `ObjectRecallEnv` (`item`, `slots`, `recall`, `action_mask`, `view`, `pose`, `item_pos`,
    `slot_pos`, `recall_pos`, `phase`: observe / rearrange), plus `carrying` (1 when holding).

    ## Rewards
    1 when every object is back in its place with empty hands; minus `write_cost` per write.

    ## Episode End
    Terminates on success or when the rearrange phase runs out. `info["metrics"]`: `success`,
    `restored` (fraction of moved objects back in place), `displaced` (unmoved objects the agent
    moved away), `distance_to_goal` (total distance of objects to their places) and the memory
    metrics (lost items: moved objects not in memory when they were moved).

    ## Version History
    * v0: initial version; since revised (same id): `recall` is kept while the attended item is
      unchanged (one read serves as long as the agent looks at the same thing), not cleared at
      every move.
    """

    description = "put moved objects back where they were"
    summary_keys = ("room_size", "num_objects", "num_moved")
    config_class = RearrangeConfig
    presets = {
        Level.EASY: dict(room_size=5, num_objects=2, num_moved=1, num_clutter=1, capacity=2,
                         observe_steps=30, rearrange_steps=40),
        Level.MEDIUM: dict(room_size=7, num_objects=4, num_moved=2, num_clutter=2, capacity=4,
                           observe_steps=40, rearrange_steps=80),
        Level.HARD: dict(room_size=9, num_objects=6, num_moved=4, num_clutter=3, capacity=6,
                         observe_steps=80, rearrange_steps=200, noise=0.3),
    }

    def _extra_spaces(self):
        return {"carrying": spaces.Box(0.0, 1.0, (1,), np.float32)}

    def _extra_obs(self):
        return {"carrying": np.array([self.carrying >= 0], np.float32)}

    def max_entities(self) -> int:
        return self.config.num_objects + self.config.num_clutter + 1  # + the backdrop

    @classmethod
    def layout_draws(cls, cfg) -> tuple[int, int]:
        # An ordering of the room (objects, clutter, destinations), of the objects (which move),
        # the start; a key for each object, a direction for each piece of clutter.
        return cfg.room_size**2 + cfg.num_objects + 1, cfg.num_objects + cfg.num_clutter

    @classmethod
    def layout_map(cls, cfg) -> np.ndarray:
        return walled_room(cfg.room_size, cfg.room_size)

    @classmethod
    def _layout(cls, cfg, u, z):
        S, N, M, C, D = cfg.room_size, cfg.num_objects, cfg.num_moved, cfg.num_clutter, cfg.dim
        R, SS = len(u), S * S
        interior = room_interior(S)
        placed = interior[first_of_permutation(u[:, :SS], N + C + M)]
        moved = np.sort(first_of_permutation(u[:, SS : SS + N], M), axis=1)
        pos = interior[pick(u[:, SS + N], SS)]
        embeddings = np.concatenate(
            [unit(W_KEY * unit(z[:, :N]) + W_FACT * fixed_direction("object", D)), unit(z[:, N:])],
            axis=1,
        )
        task = {"origin": placed[:, :N], "dest_cells": placed[:, N + C :], "moved": moved}
        return pos, placed[:, : N + C], embeddings, np.full(R, N + C, np.int64), task

    def _adopt_task(self, task) -> None:
        cfg = self.config
        self.origin, self.dest_cells, self.moved = task["origin"], task["dest_cells"], task["moved"]
        self.num_queries = cfg.num_moved
        self.horizon = cfg.observe_steps + cfg.rearrange_steps
        self.carrying = -1
        self.solved = False

    def _phase(self) -> int:
        return RearrangePhase.OBSERVE if self.t < self.config.observe_steps else RearrangePhase.REARRANGE

    def _advance(self, move: Move) -> tuple[float, bool]:
        world, pos = self.world, self.world.pos
        if self.t == self.config.observe_steps:
            for e, cell in zip(self.moved, self.dest_cells):
                world.take(self.origin[e])
                world.place(int(e), cell)
                self.needed(int(e))
        elif move is Move.STAY and self.t > self.config.observe_steps:
            here = world.entity_at(pos)
            if self.carrying < 0 and 0 <= here < self.config.num_objects:
                self.carrying = world.take(pos)
            elif self.carrying >= 0 and here == NO_ENTITY:
                world.place(self.carrying, pos)
                self.carrying = -1
                if self._in_place().all():
                    self.solved = True
                    return 1.0, True
        return 0.0, False

    def _in_place(self) -> np.ndarray:
        return (self.world.where[: self.config.num_objects] == self.origin).all(axis=1)

    def _item(self):
        rearranging = self._phase() == RearrangePhase.REARRANGE
        if self.carrying >= 0:
            return self.carrying, self.world.pos, True
        entity, pos = self._attend()
        return entity, pos, rearranging and 0 <= entity < self.config.num_objects

    def _version(self, entity: int, pos) -> int:
        """0 where the object belongs, 1 anywhere else (a moved object is a new version)."""
        if entity >= self.config.num_objects:
            return 0
        return int(tuple(self.origin[entity]) != tuple(pos))

    def _keep(self) -> np.ndarray:
        keep = np.zeros(self.num_entities, bool)
        keep[self.moved] = True
        return keep

    def _answer_entity(self) -> int:
        return self._item_entity

    def _outcome_metrics(self, timed_out: bool) -> dict[str, float]:
        in_place = self._in_place()
        moved = np.zeros(self.config.num_objects, bool)
        moved[self.moved] = True
        restored = int(in_place[moved].sum())
        self.score(correct=restored, wrong=len(self.moved) - restored)
        where = self.world.where[: self.config.num_objects].copy()
        if self.carrying >= 0:
            where[self.carrying] = self.world.pos
        return {
            "success": float(self.solved),
            "restored": restored / len(self.moved),
            "displaced": float((~in_place[~moved]).sum()),
            "distance_to_goal": float(np.abs(where - self.origin).sum()),
        }

    def _task_state(self) -> dict:
        return {
            "object_cells": self.origin.copy(),
            "moved": self.moved.copy(),
            "dest_cells": self.dest_cells.copy(),
            "carrying": self.carrying,
            "in_place": self._in_place(),
            "num_objects": self.config.num_objects,
        }


class RearrangeVectorEnv(EmbodiedVectorEnv):
    """`N` `RearrangeEnv`s stepped together in numpy (see `memgym.envs.embodied_vector`)."""

    env_class = RearrangeEnv

    def _import_task_layouts(self, rows, task) -> None:
        if not hasattr(self, "origin"):
            cfg, N = self.config, self.num_envs
            self.origin = np.zeros((N, cfg.num_objects, 2), np.int64)
            self.dest_cells = np.zeros((N, cfg.num_moved, 2), np.int64)
            self.moved = np.zeros((N, cfg.num_moved), np.int64)
            self.carrying = np.full(N, -1, np.int64)
            self.solved = np.zeros(N, bool)
        self.origin[rows], self.dest_cells[rows] = task["origin"], task["dest_cells"]
        self.moved[rows] = task["moved"]
        self.carrying[rows], self.solved[rows] = -1, False
        self.num_queries[rows] = self.config.num_moved

    def _extra_obs(self, r):
        return {"carrying": (self.carrying[r] >= 0).astype(np.float32)[:, None]}

    def _phase(self, rows) -> np.ndarray:
        return (self.t[rows] >= self.config.observe_steps).astype(np.int64)

    def _needed(self, rows) -> np.ndarray:
        needed = np.zeros((len(rows), self.memory.num_facts), bool)
        needed[np.arange(len(rows))[:, None], self.moved[rows]] = True
        return needed

    def _goal(self, rows) -> np.ndarray:
        """Where the object being carried belongs, while one is."""
        held = self.carrying[rows]
        goal = self.origin[rows, np.maximum(held, 0)]
        return np.where((held >= 0)[:, None], goal, -1)

    def _in_place(self, rows) -> np.ndarray:
        return (self.where[rows, : self.config.num_objects] == self.origin[rows]).all(-1)

    def _advance(self, rows, moves, t_prev):
        cfg = self.config
        t = self.t[rows]
        reward = np.zeros(len(rows), np.float64)
        shuffle = rows[t == cfg.observe_steps]
        for j in range(cfg.num_moved):
            e = self.moved[shuffle, j]
            self.take(shuffle, self.origin[shuffle, e])
            self.place(shuffle, e, self.dest_cells[shuffle, j])
            self.memory.needed(shuffle, e)
        acting = (moves == Move.STAY) & (t > cfg.observe_steps)
        act = rows[acting]
        here = self.entity_at(act, self.pos[act])
        holding = self.carrying[act]
        pick = act[(holding < 0) & (here >= 0) & (here < cfg.num_objects)]
        self.carrying[pick] = self.take(pick, self.pos[pick])
        drop = act[(holding >= 0) & (here == NO_ENTITY)]
        self.place(drop, self.carrying[drop], self.pos[drop])
        self.carrying[drop] = -1
        solved = drop[self._in_place(drop).all(-1)]
        self.solved[solved] = True
        done = np.isin(rows, solved)
        reward[done] = 1.0
        return reward, done

    def _item(self, rows):
        entity, pos = self._attend(rows)
        rearranging = self._phase(rows) == RearrangePhase.REARRANGE
        is_query = rearranging & (entity >= 0) & (entity < self.config.num_objects)
        held = self.carrying[rows] >= 0
        entity[held], pos[held] = self.carrying[rows[held]], self.pos[rows[held]]
        return entity, pos, is_query | held

    def _version(self, rows, entity, pos) -> np.ndarray:
        N = self.config.num_objects
        obj = entity < N
        origin = self.origin[rows, np.where(obj, entity, 0)]
        return (obj & (origin != pos).any(-1)).astype(np.int64)

    def _outcome(self, rows, timed_out):
        cfg = self.config
        in_place = self._in_place(rows)
        moved = np.zeros((len(rows), cfg.num_objects), bool)
        moved[np.arange(len(rows))[:, None], self.moved[rows]] = True
        restored = (in_place & moved).sum(-1)
        self.memory.correct[rows] += restored
        self.memory.wrong[rows] += cfg.num_moved - restored
        where = self.where[rows, : cfg.num_objects].copy()
        held = np.flatnonzero(self.carrying[rows] >= 0)
        where[held, self.carrying[rows[held]]] = self.pos[rows[held]]
        return {
            "success": self.solved[rows].astype(np.float64),
            "restored": restored / cfg.num_moved,
            "displaced": (~in_place & ~moved).sum(-1).astype(np.float64),
            "distance_to_goal": np.abs(where - self.origin[rows]).sum((-2, -1)).astype(np.float64),
        }
