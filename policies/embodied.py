"""Scripted baselines of the embodied family: the same navigator, three ways of using memory.

Navigation is scripted from the map (`get_state()`: walls, where entities are) with shortest
paths, the same for every baseline, so the gap between them is the memory and nothing else:

- `oracle`: stores exactly what the rest of the episode needs (the hidden future says which
  entity), reads the slot that holds the answer. The ceiling.
- `random_store`: on each world step, with probability `store_prob`, writes what it sees into a
  random slot (STORE if one is free, else EDIT); reads the slot most similar to a query.
- `memoryless`: never writes; guesses.

Decisions are made from what memory returns (`recall`, `recall_pos`, `sim_recall` in the
observation), never from the hidden answer: even the oracle walks to where *its recall* says.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from memgym.envs.grid import NO_ENTITY, Cell, Move, distance_field, step_towards
from memgym.envs.ops import ActionCodec, Op

from .base import ObsView


class MemoryUse(str, Enum):
    ORACLE = "oracle"
    RANDOM = "random_store"
    NONE = "memoryless"


class EmbodiedScriptedPolicy:
    needs_state = True

    def __init__(self, memory: MemoryUse | str = MemoryUse.ORACLE, store_prob: float = 0.5,
                 match_threshold: float = 0.8):
        self.memory = MemoryUse(memory)
        self.name = self.memory.value
        self.store_prob = store_prob
        self.match_threshold = match_threshold  # cosine above which recall "is" the item
        self.rng = np.random.default_rng()
        self._fields: dict = {}

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs, states=None) -> np.ndarray:
        if states is None:
            raise ValueError(f"{self.name} navigates from env.get_state() (needs_state=True)")
        view = ObsView(obs)
        codec = ActionCodec(view.capacity, len(Move))
        actions = np.empty(len(states), np.int64)
        for i, s in enumerate(states):
            if s is None:  # a finished env kept in the batch: its action is dropped
                actions[i] = Move.STAY
                continue
            o = _Row(view, i)
            a = self._memory_action(o, s, codec)
            if a is None:
                a = int(_SCRIPTS[s["task"]](self, o, s))
            actions[i] = a if o.mask[a] else Move.STAY
        return actions

    # ---- memory ----------------------------------------------------------------------------

    def _memory_action(self, o: _Row, s, codec: ActionCodec) -> int | None:
        occupied = s["slot_occupied"]
        if s["item_is_query"]:
            if o.recall_valid or not occupied.any():
                return None
            if self.memory is MemoryUse.ORACLE:
                holds = np.flatnonzero(occupied & (s["slot_entity"] == s["answer_entity"]))
                slot = int(holds[0]) if len(holds) else -1
            else:
                slot = int(np.where(occupied, o.slot("sim_item"), -np.inf).argmax())
            action = codec.encode(Op.RETRIEVE, slot) if slot >= 0 else None
        elif self.memory is MemoryUse.ORACLE:
            action = self._oracle_write(s, codec)
        elif self.memory is MemoryUse.RANDOM and s["inner_ops"] == 0:
            action = None
            if s["item_entity"] != NO_ENTITY and self.rng.random() < self.store_prob:
                free = np.flatnonzero(~occupied)
                if len(free):
                    action = codec.encode(Op.STORE, int(self.rng.choice(free)))
                else:
                    action = codec.encode(Op.EDIT, int(self.rng.integers(len(occupied))))
        else:
            action = None
        return action if action is not None and o.mask[action] else None

    @staticmethod
    def _oracle_write(s, codec: ActionCodec) -> int | None:
        e, keep, occupied = s["item_entity"], s["keep"], s["slot_occupied"]
        if e == NO_ENTITY or not keep[e] or (occupied & (s["slot_entity"] == e)).any():
            return None
        free = np.flatnonzero(~occupied)
        if len(free):
            return codec.encode(Op.STORE, int(free[0]))
        useless = np.flatnonzero(occupied & ~keep[np.maximum(s["slot_entity"], 0)])
        return codec.encode(Op.EVICT, int(useless[0])) if len(useless) else None

    # ---- navigation ------------------------------------------------------------------------

    def _toward(self, s, goal) -> Move:
        """First move of a shortest path to `goal` (doors count as walls unless they are it)."""
        cells = s["cells"]
        passable = cells == Cell.FLOOR
        goal = (int(goal[0]), int(goal[1]))
        passable[goal] = True
        key = (hash(passable.tobytes()), passable.shape, goal)
        field = self._fields.get(key)
        if field is None:
            if len(self._fields) > 512:
                self._fields.clear()
            field = self._fields[key] = distance_field(passable, goal)
        return step_towards(field, s["pos"])

    def _explore(self, s) -> Move:
        """Walk onto the nearest entity not yet visited in this phase (the oracle: first onto
        what it must remember and has not stored); stay when there is none."""
        where = s["entity_pos"]
        on_grid = where[:, 0] >= 0
        todo = on_grid & ~s["visited"]
        if self.memory is MemoryUse.ORACLE:
            stored = np.zeros(len(where), bool)
            stored[s["slot_entity"][s["slot_occupied"]]] = True
            wanted = on_grid & s["keep"] & ~stored
            todo = wanted if wanted.any() else todo
        if not todo.any():
            return Move.STAY
        candidates = np.flatnonzero(todo)
        dist = np.abs(where[candidates] - np.asarray(s["pos"])).sum(axis=1)
        return self._toward(s, where[candidates[dist.argmin()]])


class _Row:
    """One env's view of a batched observation."""

    def __init__(self, view: ObsView, i: int):
        self.view, self.i = view, i
        self.mask = view.mask[i]
        self.recall_valid = bool(view.item("recall_valid")[i] > 0.5)
        self.sim_recall = float(view.item("sim_recall")[i])
        self.recall_pos = view.obs["recall_pos"][i]

    def slot(self, name: str) -> np.ndarray:
        return self.view.slot(name)[self.i]


def _cell(pos01, shape) -> tuple[int, int]:
    """Denormalise an observed position."""
    return int(round(float(pos01[0]) * (shape[0] - 1))), int(round(float(pos01[1]) * (shape[1] - 1)))


def _object_recall(p: EmbodiedScriptedPolicy, o: _Row, s) -> Move:
    if not s["item_is_query"]:
        return p._explore(s)
    if not o.recall_valid:
        return Move.STAY  # nothing remembered: declare here, a guess
    goal = _cell(o.recall_pos, s["shape"])
    return Move.STAY if goal == tuple(s["pos"]) else p._toward(s, goal)


def _cue_corridor(p: EmbodiedScriptedPolicy, o: _Row, s) -> Move:
    door = s["item_entity"]
    front = (1, s["length"] - door) if s["item_is_query"] else None
    if front is None or tuple(s["pos"]) != front:
        return Move.RIGHT
    enter = Move.UP if s["door_cells"][door][0] == 0 else Move.DOWN
    if not o.recall_valid:  # memoryless: a uniform guess among this door and those still ahead
        return enter if p.rng.random() < 1.0 / (door + 1) else Move.RIGHT
    if o.sim_recall >= p.match_threshold or door == 0:
        return enter
    return Move.RIGHT


def _rearrange(p: EmbodiedScriptedPolicy, o: _Row, s) -> Move:
    pos = tuple(s["pos"])
    if s["phase"] == 0:
        return p._explore(s)
    if s["carrying"] >= 0:
        if not o.recall_valid:
            return Move.STAY  # nowhere remembered: put it down here (if the cell is free)
        goal = _cell(o.recall_pos, s["shape"])
        return Move.STAY if goal == pos else p._toward(s, goal)
    here = s["item_entity"] if s["item_cell"] == pos else NO_ENTITY
    if here != NO_ENTITY and s["item_is_query"] and o.recall_valid:
        misplaced = _cell(o.recall_pos, s["shape"]) != pos
        if misplaced and o.sim_recall >= p.match_threshold:
            return Move.STAY  # pick it up
    if p.memory is MemoryUse.ORACLE:
        todo = [e for e in s["moved"] if not s["in_place"][e]]
        where = s["entity_pos"]
        if todo:
            dist = [abs(where[e][0] - pos[0]) + abs(where[e][1] - pos[1]) for e in todo]
            return p._toward(s, where[todo[int(np.argmin(dist))]])
    move = p._explore(s)
    if move is Move.STAY and here != NO_ENTITY:  # idle on an object: step off, do not pick it up
        return next(m for m in Move if m is not Move.STAY and o.mask[m])
    return move


_SCRIPTS = {
    "ObjectRecallEnv": _object_recall,
    "CueCorridorEnv": _cue_corridor,
    "RearrangeEnv": _rearrange,
}


def oracle() -> EmbodiedScriptedPolicy:
    return EmbodiedScriptedPolicy(MemoryUse.ORACLE)


def memoryless() -> EmbodiedScriptedPolicy:
    return EmbodiedScriptedPolicy(MemoryUse.NONE)


def random_store() -> EmbodiedScriptedPolicy:
    return EmbodiedScriptedPolicy(MemoryUse.RANDOM)
