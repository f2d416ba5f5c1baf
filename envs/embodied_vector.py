"""`EmbodiedVectorEnv`: `N` envs of one embodied task stepped together in numpy, step for step
identical to `N` single envs with the same seeds.

The memory is the single env's own batched `SlotMemory` with `N` rows. The world (moves, the
egocentric view, what the agent attends to) and each task's rules are written here as array
operations over all envs: no Python loop over envs in `step`. Episodes are laid out by the
single env's own code (`EmbodiedMemoryEnv.layouts`, batched): each env's next episode is one
block of uniforms from its own generator. Autoresets come a few envs at a time, so the next
episodes of the envs waiting for one are laid out ahead, many at once (`EpisodesAhead`), and an
autoreset copies its rows in; their memories and first observations are then made for all of
them at once, as a step makes them.

Autoreset is `SAME_STEP`, as in the streaming family's vector envs: when an episode ends, the
step returns the first observation of the next one; the last observation of the ended one is in
`info["final_obs"]` and its step info (with `metrics`) in `info["final_info"]`, as
`SyncVectorEnv(..., autoreset_mode=SAME_STEP)` gives.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from .config import Level
from .embodied import NOISE_BANK, NUM_PHASES, EmbodiedMemoryEnv
from .embodied_layout import EpisodesAhead, Layouts
from .grid import _DX, _DY, _NUM_CELLS, _WALL, NO_ENTITY, Move
from .privileged import embodied_privileged, embodied_privileged_size
from .slot_memory import SlotMemory, unit_rows

_NUM_MOVES = len(Move)
_LAYOUT_FLOATS = 1 << 22  # uniforms laid out at once (16 MB), whatever the task draws
_STAY = int(Move.STAY)
# Episodes laid out ahead at once: enough to spread the fixed cost of a layout call thin.
_AHEAD_BATCH = 64


class EmbodiedVectorEnv(gym.vector.VectorEnv):
    """Base class: each task's vector env sets `env_class` and writes its rules over arrays
    (`_advance`, `_phase`, `_outcome`, and when the default does not fit `_item`, `_version`)."""

    env_class: ClassVar[type[EmbodiedMemoryEnv]]
    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, level: str | Level = Level.MEDIUM, **kw):
        self.num_envs = num_envs
        self.envs = [self.env_class(level, **kw) for _ in range(num_envs)]  # episode generators
        g = self.envs[0]
        self.config, self.codec = g.config, g.codec
        self.single_observation_space = g.observation_space
        self.single_action_space = g.action_space
        self.observation_space = batch_space(g.observation_space, num_envs)
        self.action_space = batch_space(g.action_space, num_envs)
        cfg = self.config
        self.memory = SlotMemory(num_envs, cfg.capacity, cfg.dim, _NUM_MOVES, cfg.max_inner_ops,
                                 g.max_entities(), recall_per_item=True, deferred_mask=True)
        self.rows = np.arange(num_envs)
        self._allocated = False
        self._ahead = EpisodesAhead(num_envs)

    # ---- task hooks ----------------------------------------------------------------------------

    def _advance(self, rows, moves, t_prev) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _phase(self, rows) -> np.ndarray:
        raise NotImplementedError

    def _outcome(self, rows, timed_out) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _item(self, rows):
        entity, pos = self._attend(rows)
        return entity, pos, np.zeros(len(rows), bool)

    def _version(self, rows, entity, pos) -> np.ndarray:
        return np.zeros(len(rows), np.int64)

    def _needed(self, rows) -> np.ndarray:
        """`[len(rows), F]` bool: the entities whose version 0 the episode asks about (the single
        env's `_keep`), for the privileged critic features."""
        return np.zeros((len(rows), self.memory.num_facts), bool)

    def _goal(self, rows) -> np.ndarray:
        """`[len(rows), 2]`: the cell the task wants the agent at now, `-1` where there is none
        yet (privileged: the critic's, never the policy's)."""
        return np.full((len(rows), 2), -1, np.int64)

    def _extra_obs(self, r) -> dict[str, np.ndarray]:
        """Task keys beyond the family's, for rows `r` (a slice or an index array)."""
        return {}

    # ---- reset ---------------------------------------------------------------------------------

    def _allocate(self, g: EmbodiedMemoryEnv) -> None:
        N, F, D = self.num_envs, g.max_entities(), self.config.dim
        w = g.world
        self.radius, self.shape = w.radius, w.shape
        self.cells = w._cells.copy()  # the same in every episode of a config
        self.entity = np.full((N, *w._cells.shape), NO_ENTITY, np.int64)
        # Flat offsets of the view's cells from its corner: a view is one `take` per env.
        V, Wp = 2 * w.radius + 1, w._cells.shape[1]
        self._offsets = (np.arange(V)[:, None] * Wp + np.arange(V)).reshape(-1)
        self._windows = np.full((N, V * V), NO_ENTITY, np.int64)
        self._window_index = np.zeros((N, V * V), np.int64)
        # The map's cells in the view from each corner (the map is the same in every episode).
        corners = np.arange(self.cells.size - (V - 1) * Wp - (V - 1))
        self._cell_views = np.take(self.cells.reshape(-1), corners[:, None] + self._offsets,
                                   mode="clip").astype(np.int8)
        self.where = np.full((N, F, 2), -1, np.int64)
        self.pos = np.zeros((N, 2), np.int64)
        self.t = np.zeros(N, np.int64)
        self.embeddings = np.zeros((N, F, D), np.float32)
        self.noise = np.zeros((N, NOISE_BANK, D), np.float32)
        self.backdrop = np.zeros(N, np.int64)
        self.item_entity = np.zeros(N, np.int64)
        self.item_pos = np.full((N, 2), -1, np.int64)
        self.num_queries = np.ones(N, np.int64)
        self.horizon = g.horizon
        # Ranks as int32: `_attend`'s argmin reads half the bytes of int64, same answer.
        self._view_rank = w._view_rank.reshape(-1).astype(np.int32)
        self._scale = np.array([max(self.shape[0] - 1, 1), max(self.shape[1] - 1, 1)], np.float64)
        self._allocated = True

    def _import_layouts(self, rows: np.ndarray, layouts: Layouts) -> None:
        """Copy the worlds of `layouts` (one per row of `rows`) into those rows, batched."""
        r, cells = self.radius, layouts.entity_cells
        E = cells.shape[1]
        self.entity[rows] = NO_ENTITY
        k, e = np.nonzero(cells[..., 0] >= 0)
        self.entity[rows[k], cells[k, e, 0] + r, cells[k, e, 1] + r] = e
        self.where[rows] = -1
        self.where[rows, :E] = cells
        self.pos[rows] = layouts.pos
        self.embeddings[rows] = 0.0
        self.embeddings[rows, : E + 1] = layouts.embeddings
        self.noise[rows] = layouts.noise
        self.backdrop[rows] = layouts.num_entities - 1
        self.num_queries[rows] = self.env_class.num_queries  # a task with more sets its own
        self._import_task_layouts(rows, layouts.task)

    def _import_task_layouts(self, rows: np.ndarray, task: dict[str, np.ndarray]) -> None:
        """Copy the task's per-episode arrays (`Layouts.task`, one row per row of `rows`)."""
        raise NotImplementedError

    def _new_episodes(self, rows: np.ndarray, seeds=None) -> None:
        """A new episode in each of `rows`: its world laid out ahead (`EpisodesAhead`) or now,
        then their empty memories and first observations, batched. `seeds` (one per row, or
        None): a row given a seed drops what was laid out ahead for it and draws afresh."""
        if seeds is not None:
            seeded = np.array([s is not None for s in seeds], bool)
            self._ahead.drop(rows[seeded])
        ready = self._ahead.ready[rows]
        if not ready.all():
            now = np.flatnonzero(~ready)
            for part, layouts in self._lay_out(rows[now], None if seeds is None
                                               else [seeds[i] for i in now.tolist()]):
                self._import_layouts(part, layouts)
        if ready.any():
            self._import_layouts(rows[ready], self._ahead.take(rows[ready]))
        self.t[rows] = 0
        self.memory.reset(rows, self.num_queries[rows])
        self._refresh_windows(rows)
        self._begin_step(rows)
        self.memory.refresh_mask(None if len(rows) == self.num_envs else rows)
        self._lay_out_ahead()

    def _lay_out(self, rows: np.ndarray, seeds=None):
        """`(part, layouts)` for the next episode of each of `rows`: one block of uniforms from
        each env's own generator (the only loop over envs), all the worlds laid out at once.
        Long corridors draw large blocks, so rows are laid out in chunks of at most
        `_LAYOUT_FLOATS` uniforms."""
        width = self.env_class.episode_uniforms(self.config)
        chunk = max(1, _LAYOUT_FLOATS // width)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            u = np.empty((len(part), width), np.float32)
            for n, i in enumerate(part.tolist()):
                self.envs[i].draw_episode(None if seeds is None else seeds[start + n], out=u[n])
            layouts = self.env_class.layouts(self.config, u)
            if not self._allocated:  # sizes and the map, from the first episode
                self.envs[part[0]].adopt(layouts.row(0))
                self._allocate(self.envs[part[0]])
            yield part, layouts

    def _lay_out_ahead(self) -> None:
        """Lay out the next episode of every env waiting for one, once enough of them wait."""
        waiting = np.flatnonzero(~self._ahead.ready)
        if len(waiting) >= min(_AHEAD_BATCH, self.num_envs):
            for part, layouts in self._lay_out(waiting):
                self._ahead.put(part, layouts)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"got {len(seed)} seeds for {self.num_envs} envs")
            seeds = list(seed)
        self._new_episodes(self.rows, seeds)
        return self._observation(), {}

    # ---- step ----------------------------------------------------------------------------------

    def step(self, actions):
        mem, N = self.memory, self.num_envs
        a = np.asarray(actions, np.int64).reshape(N).copy()
        reward = np.zeros(N, np.float64)
        terminated = np.zeros(N, bool)
        in_range = (a >= 0) & (a < self.codec.n)
        valid = in_range & (mem.mask[self.rows, np.where(in_range, a, 0)] == 1)
        invalid = np.flatnonzero(~valid)
        absorbed = np.zeros(N, bool)
        absorbed[invalid] = mem.absorb_invalid(invalid)
        a[~valid & ~absorbed] = _STAY  # the budget is spent: the world moves on

        ops = np.flatnonzero(valid & (a >= _NUM_MOVES))
        if len(ops):
            op, slot = np.divmod(a[ops] - _NUM_MOVES, self.config.capacity)
            wrote = mem.apply(ops, op + 1, slot)
            reward[ops] -= self.config.write_cost * wrote

        world = np.flatnonzero(~absorbed & (a < _NUM_MOVES))
        info: dict[str, Any] = {}
        done = world[:0]
        if len(world):
            mem.end_world_step(world)
            moves = a[world]
            self._move(world, moves)
            t_prev = self.t[world].copy()
            self.t[world] += 1
            r, term = self._advance(world, moves, t_prev)
            self._refresh_windows()
            reward[world] += r
            timed_out = ~term & (self.t[world] >= self.horizon)
            self._begin_step(world)
            ended = term | timed_out
            terminated[world] = ended
            done = world[ended]
        mem.refresh_mask()  # the ops above left it stale (`deferred_mask`)
        if len(done):
            final = self._observation(done)  # the ended episodes' last observations
            outcome = self._outcome(done, timed_out[ended])  # before the summary: it counts answers
            info.update(self._final_info(final, done, {**mem.summary_batch(done), **outcome}))
            self._new_episodes(done)  # from each env's own generator (see the module doc)
        obs = self._observation()
        running = ~terminated
        info["invalid_action"], info["_invalid_action"] = absorbed & running, running
        return obs, reward, terminated, np.zeros(N, bool), info

    def _final_info(self, final, rows, metrics) -> dict[str, Any]:
        """`final_obs` and `final_info` of the ended `rows` (`final`: their observations, one
        row each, in new arrays), as `SyncVectorEnv(..., autoreset_mode=SAME_STEP)` lays them
        out."""
        N = self.num_envs
        ended = np.zeros(N, bool)
        ended[rows] = True
        final_obs = np.full(N, None, dtype=object)
        for n, i in enumerate(rows.tolist()):
            final_obs[i] = {k: v[n] for k, v in final.items()}
        per_env: dict[str, Any] = {}
        for k, v in metrics.items():
            full = np.zeros(N, v.dtype)
            full[rows] = v
            per_env[k], per_env[f"_{k}"] = full, ended.copy()
        final_info = {"invalid_action": np.zeros(N, bool), "_invalid_action": ended.copy(),
                      "metrics": per_env, "_metrics": ended.copy()}
        return {"final_obs": final_obs, "_final_obs": ended.copy(),
                "final_info": final_info, "_final_info": ended}

    # ---- the world, over arrays ----------------------------------------------------------------

    def _move(self, rows, moves) -> None:
        r = self.radius
        y, x = self.pos[rows, 0] + _DY[moves], self.pos[rows, 1] + _DX[moves]
        ok = self.cells[y + r, x + r] != _WALL
        self.pos[rows[ok]] = np.stack((y[ok], x[ok]), axis=1)

    def _move_mask(self, rows) -> np.ndarray:
        r = self.radius
        y, x = self.pos[rows, 0, None] + r, self.pos[rows, 1, None] + r
        return self.cells[y + _DY, x + _DX] != _WALL

    def _corners(self) -> np.ndarray:
        """Flat index (in one env's padded grid) of each env's view corner: its own position,
        since the padding is the view radius."""
        return self.pos[:, 0] * self.cells.shape[1] + self.pos[:, 1]

    def _refresh_windows(self, rows=None) -> None:
        """The entity ids in the view of every env (or of `rows`), `(N, (2r+1)^2)` row-major:
        after anything moved."""
        if rows is None:
            base = self.rows * self.cells.size + self._corners()
            np.add(base[:, None], self._offsets, out=self._window_index)
            # Every index is in range (the padding is the view radius); "clip" spares `take`
            # the buffered copy it makes under the default "raise".
            np.take(self.entity.reshape(-1), self._window_index, out=self._windows, mode="clip")
        else:
            base = rows * self.cells.size + self._corners()[rows]
            self._windows[rows] = np.take(self.entity.reshape(-1), base[:, None] + self._offsets)

    def _attend(self, rows):
        """The nearest entity in view (row-major on ties), else the backdrop at `(-1, -1)`."""
        ent = self._windows[rows]
        present = ent != NO_ENTITY
        k = np.where(present, self._view_rank, np.iinfo(np.int32).max).argmin(-1)
        found = present.any(-1)
        entity = np.where(found, ent[np.arange(len(rows)), k], self.backdrop[rows])
        r2 = 2 * self.radius + 1
        offset = np.stack(np.divmod(k, r2), axis=1) - self.radius
        pos = np.where(found[:, None], self.pos[rows] + offset, -1)
        return entity, pos

    def _begin_step(self, rows) -> None:
        entity, pos, is_query = self._item(rows)
        self.item_entity[rows], self.item_pos[rows] = entity, pos
        present = pos[:, 0] >= 0
        t = self.t[rows]
        item = unit_rows(self.embeddings[rows, entity] + self.noise[rows, t % NOISE_BANK])
        cell = np.where(present, pos[:, 0] * self.shape[1] + pos[:, 1], -1)
        content = np.stack((entity, self._version(rows, entity, pos), cell), axis=1)
        where = np.where(present[:, None], (pos / self._scale).astype(np.float32), 0.0)
        self.memory.begin_step(rows, t, item, content, where, ~is_query, is_query,
                               self._move_mask(rows))

    # ---- entities ------------------------------------------------------------------------------

    def take(self, rows, cells) -> np.ndarray:
        """Remove the entity at `cells` (one per row); returns them (`NO_ENTITY` where none)."""
        r = self.radius
        y, x = cells[:, 0] + r, cells[:, 1] + r
        e = self.entity[rows, y, x]
        self.entity[rows, y, x] = NO_ENTITY
        some = e != NO_ENTITY
        self.where[rows[some], e[some]] = -1
        return e

    def place(self, rows, entities, cells) -> None:
        r = self.radius
        self.entity[rows, cells[:, 0] + r, cells[:, 1] + r] = entities
        self.where[rows, entities] = cells

    def entity_at(self, rows, cells) -> np.ndarray:
        r = self.radius
        return self.entity[rows, cells[:, 0] + r, cells[:, 1] + r]

    # ---- observation ---------------------------------------------------------------------------

    def _observation(self, rows=None) -> dict[str, np.ndarray]:
        """Every env's observation, or only `rows`' (new arrays)."""
        mem = self.memory
        rows = self.rows if rows is None else rows
        r = slice(None) if len(rows) == self.num_envs else rows
        obs = mem.observation(self.t[r] / self.horizon, None if len(rows) == self.num_envs else rows)
        V, M = 2 * self.radius + 1, len(rows)
        view = self._cell_views[self._corners()[r]]  # a new array
        view += (self._windows[r] != NO_ENTITY) * np.int8(_NUM_CELLS)
        obs["view"] = view.reshape(M, V, V)
        obs["pose"] = (self.pos[r] / self._scale).astype(np.float32)
        item_pos = np.empty((M, 3), np.float32)
        item_pos[:, :2] = mem.where[r]
        item_pos[:, 2] = self.item_pos[r, 0] >= 0
        obs["item_pos"] = item_pos
        obs["slot_pos"] = mem.slot_where[r].copy()
        obs["recall_pos"] = mem.recall_where[r].copy()
        phase = np.zeros((M, NUM_PHASES), np.float32)
        phase[np.arange(M), self._phase(rows)] = 1.0
        obs["phase"] = phase
        obs.update(self._extra_obs(r))
        return obs

    @property
    def privileged_width(self) -> int:
        """Width of `privileged()`, known before the first reset."""
        return embodied_privileged_size(self.config.capacity)

    def privileged(self) -> np.ndarray:
        """Hidden-state features of the current step for an asymmetric critic (`envs/privileged.py`);
        never part of the observation."""
        return embodied_privileged(self)

    def action_masks(self) -> np.ndarray:
        return self.memory.mask.astype(bool)
