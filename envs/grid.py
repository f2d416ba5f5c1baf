"""The numpy grid world under the embodied family: cells, entities, the agent, its egocentric view,
shortest paths and renderings (ANSI text and RGB arrays; no pygame).

Positions are `(row, col)`. The arrays are padded by `radius` wall cells on every side, so the
egocentric view is one slice and never needs a bounds check.
"""

from __future__ import annotations

import functools
from collections import deque
from enum import IntEnum

import numpy as np


class Cell(IntEnum):
    FLOOR = 0
    WALL = 1
    DOOR = 2  # walkable; what stepping onto it means is up to the task


class Move(IntEnum):
    """The world actions: the first block of every embodied action space. `STAY` is index 0, the
    contract's `SKIP`: it advances the world without moving (and is the task's "interact":
    declare an answer, pick up or put down)."""

    STAY = 0
    UP = 1
    RIGHT = 2
    DOWN = 3
    LEFT = 4


DELTAS = np.array([(0, 0), (-1, 0), (0, 1), (1, 0), (0, -1)], np.int64)
_DY, _DX = DELTAS[:, 0].copy(), DELTAS[:, 1].copy()
# The egocentric view is one code per cell: the cell type, plus `len(Cell)` if an entity is there.
_NUM_CELLS = len(Cell)
_WALL = int(Cell.WALL)  # plain ints on the hot path (enum attribute lookups are slow)
NUM_VIEW_CODES = 2 * _NUM_CELLS
NO_ENTITY = -1

_COLOURS = np.array(
    [(30, 30, 30), (110, 110, 110), (160, 100, 40), (60, 170, 230), (240, 200, 40)], np.uint8
)  # floor, wall, door, entity, agent


@functools.lru_cache(maxsize=None)
def view_rank(radius: int) -> np.ndarray:
    """Per view cell: Manhattan distance to the centre, ties broken row-major (read-only)."""
    r = radius
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1]
    rank = (np.abs(ys) + np.abs(xs)) * (2 * r + 1) ** 2 + np.arange(ys.size).reshape(ys.shape)
    rank.flags.writeable = False
    return rank


class GridWorld:
    """Cells, entities (ids `0..num_entities-1` into a per-episode embedding table; at most one
    per cell) and the agent's position, with the egocentric `(2r+1) x (2r+1)` view. Entities
    are placed and taken with `place`/`take`, which keep `where` (each entity's cell) current."""

    def __init__(self, cells: np.ndarray, radius: int, num_entities: int):
        h, w = cells.shape
        r = radius
        self.height, self.width, self.radius = h, w, r
        self._cells = np.full((h + 2 * r, w + 2 * r), Cell.WALL, np.int8)
        self._cells[r : r + h, r : r + w] = cells
        self._entity = np.full(self._cells.shape, NO_ENTITY, np.int64)
        self.where = np.full((num_entities, 2), -1, np.int64)
        self.pos = (0, 0)
        self._view_rank = view_rank(r)

    # Views into the padded arrays (properties, so a pickled copy stays one array, not two).
    @property
    def cells(self) -> np.ndarray:
        r = self.radius
        return self._cells[r : r + self.height, r : r + self.width]

    @property
    def entity(self) -> np.ndarray:
        r = self.radius
        return self._entity[r : r + self.height, r : r + self.width]

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def place(self, entity: int, cell) -> None:
        y, x = int(cell[0]), int(cell[1])
        r = self.radius
        assert self._entity[y + r, x + r] == NO_ENTITY, f"cell {(y, x)} already holds an entity"
        self._entity[y + r, x + r] = entity
        self.where[entity] = (y, x)

    def take(self, cell) -> int:
        """Remove and return the entity at `cell` (`NO_ENTITY` if there is none)."""
        y, x = int(cell[0]), int(cell[1])
        r = self.radius
        entity = int(self._entity[y + r, x + r])
        if entity != NO_ENTITY:
            self._entity[y + r, x + r] = NO_ENTITY
            self.where[entity] = -1
        return entity

    def entity_at(self, cell) -> int:
        r = self.radius
        return int(self._entity[int(cell[0]) + r, int(cell[1]) + r])

    def move_mask(self) -> np.ndarray:
        """Which world actions are valid here: `STAY` always, a move unless it walks into a wall
        (the padding is wall, so the grid's edge needs no check)."""
        y, x = self.pos
        r = self.radius
        return self._cells[y + r + _DY, x + r + _DX] != _WALL

    def move(self, move: Move) -> None:
        y, x = self.pos[0] + _DY[move], self.pos[1] + _DX[move]
        if self._cells[y + self.radius, x + self.radius] != _WALL:
            self.pos = (int(y), int(x))

    def _window(self, a: np.ndarray) -> np.ndarray:
        y, x = self.pos
        r2 = 2 * self.radius + 1
        return a[y : y + r2, x : x + r2]  # padded coordinates: (y, x) is the window's corner

    def view(self, out: np.ndarray) -> np.ndarray:
        """Write the egocentric view `(2r+1, 2r+1)` of codes (`cell + len(Cell) * has_entity`;
        outside the grid is wall) into `out`."""
        np.add(self._window(self._cells), _NUM_CELLS * (self._window(self._entity) != NO_ENTITY),
               out=out, casting="unsafe")
        return out

    def nearest_entity(self) -> tuple[int, tuple[int, int] | None]:
        """The nearest entity in view (Manhattan distance, row-major on ties) and its position."""
        ent = self._window(self._entity)
        present = ent != NO_ENTITY
        if not present.any():
            return NO_ENTITY, None
        k = int(np.where(present, self._view_rank, np.iinfo(np.int64).max).argmin())
        r2 = 2 * self.radius + 1
        dy, dx = divmod(k, r2)
        y, x = self.pos[0] + dy - self.radius, self.pos[1] + dx - self.radius
        return int(ent.flat[k]), (y, x)

    def render_ansi(self, labels: dict[int, str] | None = None) -> str:
        chars = np.array([".", "#", "D"])[self.cells]
        for (y, x), e in np.ndenumerate(self.entity):
            if e != NO_ENTITY:
                chars[y, x] = (labels or {}).get(int(e), "o")
        chars[self.pos] = "@"
        return "\n".join("".join(row) for row in chars)

    def render_rgb(self, tile: int = 8) -> np.ndarray:
        index = self.cells.astype(np.int64)
        index[self.entity != NO_ENTITY] = 3
        index[self.pos] = 4
        return np.repeat(np.repeat(_COLOURS[index], tile, axis=0), tile, axis=1)


def distance_field(passable: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """Steps from every cell to `goal` over `passable` cells (breadth-first); -1 if unreachable."""
    h, w = passable.shape
    dist = np.full((h, w), -1, np.int64)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        y, x = queue.popleft()
        d = dist[y, x] + 1
        for dy, dx in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < h and 0 <= nx < w and passable[ny, nx] and dist[ny, nx] < 0:
                dist[ny, nx] = d
                queue.append((ny, nx))
    return dist


def step_towards(dist: np.ndarray, pos: tuple[int, int]) -> Move:
    """The move that lowers the distance to the field's goal (`STAY` at the goal or if stuck)."""
    here = dist[pos]
    if here <= 0:
        return Move.STAY
    h, w = dist.shape
    for m in (Move.UP, Move.RIGHT, Move.DOWN, Move.LEFT):
        y, x = pos[0] + int(DELTAS[m][0]), pos[1] + int(DELTAS[m][1])
        if 0 <= y < h and 0 <= x < w and 0 <= dist[y, x] < here:
            return m
    return Move.STAY


def walled_room(height: int, width: int) -> np.ndarray:
    """A `height x width` floor surrounded by walls (so the array is 2 larger each way)."""
    cells = np.full((height + 2, width + 2), Cell.WALL, np.int8)
    cells[1:-1, 1:-1] = Cell.FLOOR
    return cells
