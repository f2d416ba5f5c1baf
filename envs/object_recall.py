"""Object recall: where was the object the cue names, after a phase of look-alike decoys?"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from .config import Level
from .embedding import fixed_direction, random_units, unit
from .embodied import EmbodiedConfig, EmbodiedMemoryEnv, require
from .grid import Move, walled_room
from .stream import W_FACT, W_KEY, W_QUERY


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
    object-like decoys appear for `distractor_steps`; then the decoys vanish too and a **cue**
    names one of the objects: the agent must walk to where that object was and declare it
    (`STAY`). Only memory can answer: the room is empty of objects when the cue comes. Capacity
    binds against indiscriminate writes: clutter, decoys and repeated sightings all compete for
    the `K` slots.

    ## Action Space
    `Discrete(5 + 4K)`: the world actions `STAY, UP, RIGHT, DOWN, LEFT` (`memgym.envs.grid.Move`;
    `STAY` is the contract's `SKIP` and declares the answer once cued; a move into a wall is
    masked), then `STORE(s)`, `EDIT(s)`, `EVICT(s)`, `RETRIEVE(s)` for each slot. Moves advance
    the world; memory ops act on the current item and do not, at most `max_inner_ops` per world
    step (then masked). A masked action that arrives anyway is a counted no-op.

    ## Observation Space
    `Dict`: `item` (the embedding of what the agent attends to, the nearest entity in view or the
    cue, plus the streaming family's item features), `slots`, `recall`, `action_mask` (as the
    streaming family), and `view` (the egocentric one-hot `(2r+1, 2r+1, 3)` grid: wall, door,
    entity), `pose` (the agent's normalised position, as odometry gives it), `item_pos` (where the
    item is, and whether it is somewhere), `slot_pos` (where each slot's item was seen),
    `recall_pos` (where the recalled item was seen), `phase` (one-hot). Identities are only ever
    embeddings from a per-episode random codebook: objects and decoys share a direction, clutter
    does not, the cue resembles the object it names.

    ## Rewards
    1 for declaring the right place; minus `write_cost` per STORE/EDIT.

    ## Episode End
    Terminates on the declaration, or when the answer window closes. `info["metrics"]` then holds
    `success`, `distance_to_goal`, and the streaming family's metrics that apply (accuracy,
    abstentions, writes, edits, evictions, mean utilisation, lost items: was the object in memory
    when the cue came?).

    ## Version History
    * v0: initial version.
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

    def _generate(self) -> None:
        cfg, rng = self.config, self.np_random
        S, N, C, Dc = cfg.room_size, cfg.num_objects, cfg.num_clutter, cfg.num_decoys
        self.world = self.make_world(walled_room(S, S), N + C + Dc + 1)
        interior = np.stack(np.divmod(np.arange(S * S), S), axis=1) + 1
        placed = interior[rng.choice(S * S, N + C, replace=False)]
        self.origin, self.clutter_cells = placed[:N], placed[N:]
        free = [c for c in interior if not any((c == self.clutter_cells).all(axis=1))]
        self.decoy_cells = np.array(free)[rng.choice(len(free), Dc, replace=False)].reshape(Dc, 2)
        self.world.pos = tuple(int(v) for v in interior[rng.integers(S * S)])
        self.target = int(rng.integers(N))

        D = cfg.dim
        obj_dir, query_dir = fixed_direction("object", D), fixed_direction("query", D)
        keys = random_units(rng, N + Dc, D)
        self.embeddings = np.concatenate(
            [
                unit(W_KEY * keys[:N] + W_FACT * obj_dir),
                random_units(rng, C, D),
                unit(W_KEY * keys[N:] + W_FACT * obj_dir),
                unit(W_KEY * keys[self.target] + W_QUERY * query_dir)[None],
            ]
        )
        self.cue_entity = N + C + Dc
        self._place(range(N), self.origin)
        self._place(range(N, N + C), self.clutter_cells)
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
            self.memory.needed(self.target)
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
        m = self.memory.metrics
        success = self._success()
        if self.declared is None:
            m.abstentions += 1
        elif success:
            m.correct += 1
        else:
            m.wrong += 1
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
            "num_objects": self.config.num_objects,
        }
