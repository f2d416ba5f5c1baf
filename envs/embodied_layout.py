"""Episode layouts of the embodied family, drawn for many episodes at once.

An episode takes one block of float32 uniforms from its env's generator (`EmbodiedMemoryEnv.
draw_episode`), and a task turns a `[R, U]` stack of such blocks into `R` worlds with array
operations (`EmbodiedMemoryEnv.layouts`). A single env lays out a stack of one; a vector env
draws one block per resetting env (one generator call each) and lays them all out in one pass.
The same block gives the same episode either way, which is what keeps a vector env step for step
identical to single envs with the same seeds, while its autoresets cost a few numpy calls for all
envs instead of a Python generator per env.

The helpers turn uniforms into the draws a generator would make: an integer below `n` (`pick`),
the first `k` of a random permutation (`first_of_permutation`); `unit` of normal draws gives
random directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Layouts:
    """`R` episodes' worlds at their first step. Entities are numbered by the task; the backdrop
    (what the agent sees when nothing is in view) is the last one of each episode."""

    pos: np.ndarray
    """`[R, 2]` int64: where the agent starts."""
    entity_cells: np.ndarray
    """`[R, E, 2]` int64: where each entity stands at the start, `-1` if it is not on the grid
    (yet); `E` is the task's most entities, backdrop excluded."""
    embeddings: np.ndarray
    """`[R, E + 1, D]` float32 unit rows, the backdrop at row `num_entities - 1`, zeros after."""
    num_entities: np.ndarray
    """`[R]` int64: entities of each episode, backdrop included."""
    noise: np.ndarray
    """`[R, NOISE_BANK, D]` float32: the episode's bank of per-step observation noise."""
    task: dict[str, np.ndarray] = field(default_factory=dict)
    """`[R, ...]` arrays only the task reads (where objects were, which one is cued, ...)."""

    def row(self, r: int) -> "Layouts":
        """Episode `r` alone, as a stack of one."""
        take = slice(r, r + 1)
        return Layouts(self.pos[take], self.entity_cells[take], self.embeddings[take],
                       self.num_entities[take], self.noise[take],
                       {k: v[take] for k, v in self.task.items()})


class EpisodesAhead:
    """Each env's next episode, laid out before it is needed (a vector env's look-ahead).

    Laying out `R` episodes costs a fixed ~0.1 ms of numpy calls plus a little per episode, and
    autoresets come a few envs at a time, so a vector env lays out episodes ahead in batches (the
    next episode of every env waiting for one) and an autoreset only copies its rows in. An env's
    blocks come from its own generator in order, so the episodes are the same as drawn on demand.
    """

    def __init__(self, num_envs: int):
        self.ready = np.zeros(num_envs, bool)
        self._store: Layouts | None = None

    def put(self, rows: np.ndarray, layouts: Layouts) -> None:
        if self._store is None:
            n = len(self.ready)
            alloc = lambda a: np.empty((n, *a.shape[1:]), a.dtype)  # noqa: E731
            self._store = Layouts(*(alloc(getattr(layouts, f)) for f in _ARRAY_FIELDS),
                                  task={k: alloc(v) for k, v in layouts.task.items()})
        for f in _ARRAY_FIELDS:
            getattr(self._store, f)[rows] = getattr(layouts, f)
        for k, v in layouts.task.items():
            self._store.task[k][rows] = v
        self.ready[rows] = True

    def take(self, rows: np.ndarray) -> Layouts:
        """The next episodes of `rows` (all ready), which are then no longer ahead."""
        assert self._store is not None and self.ready[rows].all()
        self.ready[rows] = False
        return Layouts(*(getattr(self._store, f)[rows] for f in _ARRAY_FIELDS),
                       task={k: v[rows] for k, v in self._store.task.items()})

    def drop(self, rows: np.ndarray) -> None:
        """Forget the episodes ahead of `rows` (they are reseeded)."""
        self.ready[rows] = False


_ARRAY_FIELDS = ("pos", "entity_cells", "embeddings", "num_entities", "noise")


def pick(u: np.ndarray, n: int) -> np.ndarray:
    """Integers uniform in `[0, n)` from uniforms in `[0, 1)` (any shape). The `minimum` guards
    the float32 rounding of `u * n` up to `n` for `u` just below 1."""
    return np.minimum((u * np.float32(n)).astype(np.int64), n - 1)


def first_of_permutation(u: np.ndarray, k: int) -> np.ndarray:
    """`[R, k]`: the first `k` of a random permutation of `range(u.shape[1])` in each row, i.e.
    `k` distinct choices (a stable sort: ties, rare in float32, break by index)."""
    return np.argsort(u, axis=1, kind="stable")[:, :k]


def room_interior(side: int) -> np.ndarray:
    """`[side * side, 2]`: the cells of a walled square room of that inner side, row-major."""
    return np.stack(np.divmod(np.arange(side * side), side), axis=1) + 1
