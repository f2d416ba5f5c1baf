"""Object recall: where was the object the cue names, after a phase of look-alike decoys?"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from gymnasium import spaces
from numba import njit

from .config import Level
from .embedding import fixed_direction, unit
from .embodied import EmbodiedConfig, EmbodiedMemoryEnv, require
from .embodied_layout import first_of_permutation, pick, room_interior
from .embodied_vector import EmbodiedVectorEnv
from .grid import Move, walled_room
from .stream import W_FACT, W_KEY, W_QUERY


def offsets(where: np.ndarray, valid: np.ndarray, pos: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Egocentric offsets, in cells, from the agent at `pos` (cells, `(..., 2)`) to the normalised
    positions `where` (`(..., 2)`), zero where not `valid`: what odometry tells an agent about a
    place it saw. Navigation is then a function of one input (its sign, and whether it is zero)
    instead of a difference of two. Rounded to whole cells, so a single env and a vector env agree
    bit for bit."""
    cells = np.rint(where * scale)
    return ((cells - pos) * valid[..., None]).astype(np.float32)


@njit(cache=True)
def _offset_features(pos, scale, recall_where, recall_valid, item_where, item_present,
                     slot_where, occupied, recall_offset, item_offset, slot_offset) -> None:
    """The vector env's `recall_offset`, `item_offset` (offset and flag) and `slot_offset` of `M`
    rows in one pass: `offsets` element by element, with the same float64 arithmetic (a product
    by the flag, as numpy's, so an invalid negative offset is -0.0 there too), bit for bit; the
    numpy version took ~15 whole-batch operations a step."""
    for m in range(pos.shape[0]):
        valid, present = 1.0 if recall_valid[m] else 0.0, 1.0 if item_present[m] else 0.0
        for j in range(2):
            p, sc = np.float64(pos[m, j]), scale[j]
            recall_offset[m, j] = (np.rint(np.float64(recall_where[m, j]) * sc) - p) * valid
            item_offset[m, j] = (np.rint(np.float64(item_where[m, j]) * sc) - p) * present
            for k in range(slot_where.shape[1]):
                occ = 1.0 if occupied[m, k] else 0.0
                slot_offset[m, k, j] = (np.rint(np.float64(slot_where[m, k, j]) * sc) - p) * occ
        recall_offset[m, 2] = valid
        item_offset[m, 2] = present


class RecallPhase(IntEnum):
    EXPLORE = 0
    DISTRACT = 1
    CUE = 2


@dataclass
class ObjectRecallConfig(EmbodiedConfig):
    room_size: int = 7
    """Side of the square room (walls excluded)."""
    num_objects: int = 4
    """Objects in the room while exploring; the cue names one of them."""
    num_clutter: int = 2
    """Scenery that stays all episode and is never asked about (unlike objects in embedding)."""
    num_decoys: int = 3
    """Object-like things shown only in the distractor phase, never asked about."""
    explore_steps: int = 50
    """World steps of the exploration phase."""
    distractor_steps: int = 30
    """World steps of the distractor phase (objects hidden, decoys shown)."""
    answer_steps: int = 30
    """World steps the agent has, once cued, to walk to the place and declare it (STAY)."""

    def __post_init__(self):
        super().__post_init__()
        cells = self.room_size**2
        require(self.room_size >= 3, "room_size must be >= 3")
        require(self.num_objects >= 1, "num_objects must be >= 1")
        require(min(self.num_clutter, self.num_decoys) >= 0, "num_clutter/num_decoys must be >= 0")
        require(
            self.num_objects + self.num_clutter < cells and self.num_decoys + self.num_clutter < cells,
            f"a {self.room_size}x{self.room_size} room is too small for {self.num_objects} objects, "
            f"{self.num_clutter} clutter and {self.num_decoys} decoys: raise room_size",
        )
        require(self.explore_steps >= 1, "explore_steps must be >= 1")
        require(self.distractor_steps >= 0, "distractor_steps must be >= 0")
        require(
            self.answer_steps > 2 * (self.room_size - 1),
            f"answer_steps must be > {2 * (self.room_size - 1)} so that every place is reachable "
            "once cued: raise answer_steps",
        )


class ObjectRecallEnv(EmbodiedMemoryEnv):
    """
    ## Description
    After HCAM's object-permanence tasks. A room holds `num_objects` objects and some clutter.
    For `explore_steps` the agent walks around; then the objects vanish and `num_decoys`
    object-like decoys appear for `distractor_steps`; then the decoys vanish too, the agent
    finds itself at a random cell of the room and a **cue** names one of the objects: the agent
    must walk to where that object was and declare it (`STAY`). Only memory can answer: the room
    is empty of objects when the cue comes, and where the agent stood before carries no answer
    (without the move, a policy that camps on an object it saw is right as often as that object
    is the one cued: 1 in 2 at Easy, and PPO learns exactly that). Capacity binds against
    indiscriminate writes: clutter, decoys and repeated sightings all compete for the `K` slots.

    ## Action Space
    `Discrete(5 + 4K)`: the world actions `STAY, UP, RIGHT, DOWN, LEFT` (`memgym.envs.grid.Move`;
    `STAY` is the contract's `SKIP` and declares the answer once cued; a move into a wall is
    masked), then `STORE(s)`, `EDIT(s)`, `EVICT(s)`, `RETRIEVE(s)` for each slot. Moves advance
    the world; memory ops act on the current item and do not, at most `max_inner_ops` per world
    step (then masked). A masked action that arrives anyway is a counted no-op.

    ## Observation Space
    `Dict`: `item` (the embedding of what the agent attends to, the nearest entity in view or
    the cue, plus the streaming family's item features), `slots`, `recall`, `action_mask` (as
    the streaming family), and `view` (the egocentric `(2r+1, 2r+1)` grid, one code per cell:
    its `Cell` type, plus `len(Cell)` where an entity stands), `pose` (the agent's normalised
    position, as odometry gives it), `item_pos` (where the item is, and whether it is
    somewhere), `slot_pos` (where each slot's item was seen), `recall_pos` (where the recalled
    item was seen), `phase` (one-hot); and, egocentric, in cells from the agent (what odometry
    gives): `recall_offset` (to where the recalled item was seen, and whether `recall` is
    valid), `item_offset` (to the item, and whether it is somewhere) and `slot_offset`
    (`(K, 2)`, to where each slot's item was seen; zero for an empty slot). A read lasts while
    the item stays the same: once cued, one RETRIEVE serves the whole walk back (`recall_offset`
    follows the agent). Identities are only ever embeddings from a per-episode random codebook:
    objects and decoys share a direction, clutter does not, the cue resembles the object it
    names.

    ## Rewards
    1 for declaring the right place; minus `write_cost` per STORE/EDIT.

    ## Episode End
    Terminates on the declaration, or when the answer window closes. `info["metrics"]` then holds
    `success`, `distance_to_goal`, and the streaming family's metrics that apply (accuracy,
    abstentions, writes, edits, evictions, mean utilisation, lost items: was the object in memory
    when the cue came?).

    ## Version History
    * v0: initial version; since revised (same id): `recall_offset`, `item_offset` and
      `slot_offset` added, `recall` kept while the item is unchanged, the agent moved to a random
      cell when cued.
    """

    description = "walk back to where the cued object was, after a phase of look-alike decoys"
    summary_keys = ("room_size", "num_objects", "distractor_steps")
    config_class = ObjectRecallConfig
    presets = {
        Level.EASY: dict(room_size=5, num_objects=2, num_clutter=1, num_decoys=1, capacity=3,
                         explore_steps=30, distractor_steps=10, answer_steps=20),
        Level.MEDIUM: dict(room_size=7, num_objects=4, num_clutter=2, num_decoys=3, capacity=4,
                           explore_steps=50, distractor_steps=30, answer_steps=30),
        Level.HARD: dict(room_size=11, num_objects=6, num_clutter=4, num_decoys=6, capacity=6,
                         explore_steps=120, distractor_steps=200, answer_steps=50, noise=0.3),
    }

    def max_entities(self) -> int:
        cfg = self.config
        return cfg.num_objects + cfg.num_clutter + cfg.num_decoys + 2  # + the cue, the backdrop

    def _extra_spaces(self):
        K, S = self.config.capacity, float(self.config.room_size)
        return {
            "recall_offset": spaces.Box(np.array([-S, -S, 0.0], np.float32),
                                        np.array([S, S, 1.0], np.float32), dtype=np.float32),
            "item_offset": spaces.Box(np.array([-S, -S, 0.0], np.float32),
                                      np.array([S, S, 1.0], np.float32), dtype=np.float32),
            "slot_offset": spaces.Box(-S, S, (K, 2), np.float32),
        }

    def _extra_obs(self):
        mem, pos = self.memory, np.array(self.world.pos, np.int64)
        scale = np.array([max(n - 1, 1) for n in self.world.shape], np.float64)
        valid = mem.recall_valid[0]
        recall = offsets(mem.recall_where[0], np.array(valid), pos, scale)
        present = np.array(self._item_pos is not None)
        item = offsets(mem.where[0], present, pos, scale)
        return {
            "recall_offset": np.array([*recall, valid], np.float32),
            "item_offset": np.array([*item, present], np.float32),
            "slot_offset": offsets(mem.slot_where[0], mem.occupied[0], pos, scale),
        }

    @classmethod
    def layout_draws(cls, cfg) -> tuple[int, int]:
        cells = cfg.room_size**2
        # Two orderings of the room (objects and clutter; decoys), start, target, cued start;
        # a key for each object and decoy, a direction for each piece of clutter.
        return 2 * cells + 3, cfg.num_objects + cfg.num_decoys + cfg.num_clutter

    @classmethod
    def layout_map(cls, cfg) -> np.ndarray:
        return walled_room(cfg.room_size, cfg.room_size)

    @classmethod
    def _layout(cls, cfg, u, z):
        S, N, C, Dc, D = cfg.room_size, cfg.num_objects, cfg.num_clutter, cfg.num_decoys, cfg.dim
        R, SS = len(u), S * S
        interior = room_interior(S)
        chosen = first_of_permutation(u[:, :SS], N + C)
        origin, clutter = interior[chosen[:, :N]], interior[chosen[:, N:]]
        decoy_order = u[:, SS : 2 * SS].copy()
        np.put_along_axis(decoy_order, chosen[:, N:], 2.0, axis=1)  # decoys never cover clutter
        decoys = interior[first_of_permutation(decoy_order, Dc)]
        pos = interior[pick(u[:, 2 * SS], SS)]
        target = pick(u[:, 2 * SS + 1], N)
        # Where the agent finds itself when cued: drawn with the rest of the layout.
        cue_start = interior[pick(u[:, 2 * SS + 2], SS)]

        obj_dir, query_dir = fixed_direction("object", D), fixed_direction("query", D)
        keys = unit(z[:, : N + Dc])
        cue_key = keys[np.arange(R), target]
        embeddings = np.concatenate(
            [
                unit(W_KEY * keys[:, :N] + W_FACT * obj_dir),
                unit(z[:, N + Dc :]),
                unit(W_KEY * keys[:, N:] + W_FACT * obj_dir),
                unit(W_KEY * cue_key + W_QUERY * query_dir)[:, None],
            ],
            axis=1,
        )
        # Objects and clutter stand from the start; decoys come later, the cue never stands.
        cells = np.full((R, N + C + Dc + 1, 2), -1, np.int64)
        cells[:, :N], cells[:, N : N + C] = origin, clutter
        count = np.full(R, N + C + Dc + 1, np.int64)
        task = {"origin": origin, "decoy_cells": decoys, "target": target, "cue_start": cue_start}
        return pos, cells, embeddings, count, task

    def _adopt_task(self, task) -> None:
        cfg = self.config
        self.origin, self.decoy_cells = task["origin"], task["decoy_cells"]
        self.target = int(task["target"])
        self.cue_start = tuple(int(v) for v in task["cue_start"])
        self.cue_entity = cfg.num_objects + cfg.num_clutter + cfg.num_decoys
        self.horizon = cfg.explore_steps + cfg.distractor_steps + cfg.answer_steps
        self.declared: tuple[int, int] | None = None

    def _place(self, entities, cells) -> None:
        for e, cell in zip(entities, cells):
            self.world.place(e, cell)

    def _clear(self, cells) -> None:
        for cell in cells:
            self.world.take(cell)

    def _phase(self) -> int:
        cfg = self.config
        if self.t < cfg.explore_steps:
            return RecallPhase.EXPLORE
        if self.t < cfg.explore_steps + cfg.distractor_steps:
            return RecallPhase.DISTRACT
        return RecallPhase.CUE

    def _advance(self, move: Move) -> tuple[float, bool]:
        cfg = self.config
        if move is Move.STAY and self.t - 1 >= cfg.explore_steps + cfg.distractor_steps:
            self.declared = self.world.pos
            return float(self._success()), True
        N, C = cfg.num_objects, cfg.num_clutter
        if self.t == cfg.explore_steps:
            self._clear(self.origin)
            self._place(range(N + C, N + C + cfg.num_decoys), self.decoy_cells)
        if self.t == cfg.explore_steps + cfg.distractor_steps:
            self._clear(self.decoy_cells)
            self.world.pos = self.cue_start
            self.needed(self.target)
        return 0.0, False

    def _success(self) -> bool:
        return self.declared is not None and self.declared == tuple(self.origin[self.target])

    def _item(self):
        if self._phase() == RecallPhase.CUE:
            return self.cue_entity, None, True
        return super()._item()

    def _keep(self) -> np.ndarray:
        keep = np.zeros(self.num_entities, bool)
        keep[self.target] = True
        return keep

    def _answer_entity(self) -> int:
        return self.target

    def _outcome_metrics(self, timed_out: bool) -> dict[str, float]:
        success = self._success()
        declared = self.declared is not None
        self.score(correct=int(success), wrong=int(declared and not success),
                   abstentions=int(not declared))
        goal = self.origin[self.target]
        here = self.world.pos
        return {
            "success": float(success),
            "distance_to_goal": float(abs(here[0] - goal[0]) + abs(here[1] - goal[1])),
        }

    def _task_state(self) -> dict:
        return {
            "target": self.target,
            "target_cell": tuple(int(v) for v in self.origin[self.target]),
            "object_cells": self.origin.copy(),
            "decoy_cells": self.decoy_cells.copy(),
            "cue_entity": self.cue_entity,
            "cue_start": self.cue_start,
            "num_objects": self.config.num_objects,
        }


class ObjectRecallVectorEnv(EmbodiedVectorEnv):
    """`N` `ObjectRecallEnv`s stepped together in numpy (see `memgym.envs.embodied_vector`)."""

    env_class = ObjectRecallEnv

    def _import_task_layouts(self, rows, task) -> None:
        if not hasattr(self, "origin"):
            cfg, N = self.config, self.num_envs
            self.origin = np.zeros((N, cfg.num_objects, 2), np.int64)
            self.decoy_cells = np.zeros((N, cfg.num_decoys, 2), np.int64)
            self.target = np.zeros(N, np.int64)
            self.declared = np.zeros(N, bool)
            self.declared_pos = np.zeros((N, 2), np.int64)
            self.cue_start = np.zeros((N, 2), np.int64)
            self.cue_entity = cfg.num_objects + cfg.num_clutter + cfg.num_decoys
        self.origin[rows], self.decoy_cells[rows] = task["origin"], task["decoy_cells"]
        self.target[rows], self.cue_start[rows] = task["target"], task["cue_start"]
        self.declared[rows] = False

    def _extra_obs(self, r):
        mem, pos = self.memory, self.pos[r]
        M, K = len(pos), mem.capacity
        recall_offset = np.empty((M, 3), np.float32)
        item_offset = np.empty((M, 3), np.float32)
        slot_offset = np.empty((M, K, 2), np.float32)
        _offset_features(pos, self._scale, mem.recall_where[r], mem.recall_valid[r], mem.where[r],
                         self.item_pos[r, 0] >= 0, mem.slot_where[r], mem.occupied[r],
                         recall_offset, item_offset, slot_offset)
        return {"recall_offset": recall_offset, "item_offset": item_offset,
                "slot_offset": slot_offset}

    def _phase(self, rows) -> np.ndarray:
        cfg, t = self.config, self.t[rows]
        cue_at = cfg.explore_steps + cfg.distractor_steps
        return np.where(t < cfg.explore_steps, 0, np.where(t < cue_at, 1, 2))

    def _advance(self, rows, moves, t_prev):
        cfg = self.config
        N, C = cfg.num_objects, cfg.num_clutter
        cue_at = cfg.explore_steps + cfg.distractor_steps
        declare = (moves == Move.STAY) & (t_prev >= cue_at)
        d = rows[declare]
        self.declared[d] = True
        self.declared_pos[d] = self.pos[d]
        rest, t = rows[~declare], self.t[rows[~declare]]
        hide = rest[t == cfg.explore_steps]
        for j in range(N):
            self.take(hide, self.origin[hide, j])
        for j in range(cfg.num_decoys):
            self.place(hide, np.full(len(hide), N + C + j), self.decoy_cells[hide, j])
        cue = rest[t == cue_at]
        for j in range(cfg.num_decoys):
            self.take(cue, self.decoy_cells[cue, j])
        self.pos[cue] = self.cue_start[cue]
        self.memory.needed(cue, self.target[cue])
        return self._success(rows).astype(np.float64) * declare, declare

    def _needed(self, rows) -> np.ndarray:
        needed = np.zeros((len(rows), self.memory.num_facts), bool)
        needed[np.arange(len(rows)), self.target[rows]] = True
        return needed

    def _goal(self, rows) -> np.ndarray:
        cued = self._phase(rows) == RecallPhase.CUE
        return np.where(cued[:, None], self.origin[rows, self.target[rows]], -1)

    def _success(self, rows) -> np.ndarray:
        goal = self.origin[rows, self.target[rows]]
        return self.declared[rows] & (self.declared_pos[rows] == goal).all(-1)

    def _item(self, rows):
        entity, pos = self._attend(rows)
        cue = self._phase(rows) == 2
        entity[cue], pos[cue] = self.cue_entity, -1
        return entity, pos, cue

    def _outcome(self, rows, timed_out):
        success, declared = self._success(rows), self.declared[rows]
        mem = self.memory
        mem.correct[rows] += success
        mem.wrong[rows] += declared & ~success
        mem.abstentions[rows] += ~declared
        goal = self.origin[rows, self.target[rows]]
        return {
            "success": success.astype(np.float64),
            "distance_to_goal": np.abs(self.pos[rows] - goal).sum(-1).astype(np.float64),
        }
