"""`StreamingVectorEnv`: `N` envs of one streaming task stepped together, step for step identical
to `N` single envs (`gym.make(id)`) with the same seeds.

State is batched over envs: the bank is `[N, K, ...]` arrays, the observation three preallocated
`[N, ...]` buffers updated in place by the events of a step (as the single env updates its own).
The step is compiled (`streaming_step.py`): each env's action is applied by the same rules as in
the single env, one env per loop iteration, the envs split over the cores in one parallel call;
no per-step allocation beyond the returned arrays.

Items come from one `StreamBatch` with a row per env, generated ahead `block` items at a time
into `StreamBlocks` by compiled kernels: inside the step's parallel call, one for the rows of
each part whose block is used up; after it, one for the first item of every row that starts an
episode.

Autoreset is `SAME_STEP`: when an episode ends, the step returns the first observation of the
next episode; the last observation of the ended one is in `info["final_obs"]` and its step info
(with `metrics`) in `info["final_info"]`, as `SyncVectorEnv(..., autoreset_mode=SAME_STEP)` gives.

`copy=False` returns the observation buffers themselves rather than copies: valid until the next
`step` or `reset`, which overwrite them. For a caller that copies what it keeps anyway (a rollout
buffer), that saves writing the whole observation (~12 MB at 4,096 envs and `dim` 64) each step.
"""

from __future__ import annotations

import math
import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from . import streaming_step as kernel
from .bank import _EMPTY_REF, NUM_SLOT_FEATURES
from .config import Level
from .episode_metrics import METRIC_NAMES
from .ops import Op
from .privileged import privileged_size, streaming_privileged
from .stream import StreamBatch, episode_seed
from .stream_block import StreamBlocks
from .streaming import NUM_ITEM_FEATURES, StreamingMemoryEnv

# Envs per part of the step, at least: below that, a second thread costs more than it saves. A
# split step waits for its slowest part, so on a machine whose cores are busy with other work
# `threads=1` is faster.
_ROWS_PER_THREAD = 512


class StreamingVectorEnv(gym.vector.VectorEnv):
    """Base class; each task's vector env names its single env in `env_class`."""

    env_class: ClassVar[type[StreamingMemoryEnv]]
    metadata: ClassVar[dict] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    can_return_views: ClassVar[bool] = True  # `copy=False` (see the module docstring)

    def __init__(self, num_envs: int, level: str | Level = Level.MEDIUM, block: int = 64,
                 copy: bool = True, threads: int | None = None, **kw):
        self.num_envs = N = num_envs
        self.copy = copy
        # Parts the step splits the rows into, run in parallel on numba's threads: by default one
        # per core, and one per `_ROWS_PER_THREAD` envs at most.
        if threads is None:
            threads = min(os.cpu_count() or 1, max(1, N // _ROWS_PER_THREAD))
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        # One single env builds every episode's task structure, from each env's own generator
        # (`np_random` of the single env it mirrors; created as `gym.Env.reset` creates it).
        self.task = g = self.env_class(level, **kw)
        self.np_randoms: list[np.random.Generator | None] = [None] * N
        self.config, self.codec = cfg, codec = g.config, g.codec
        self.single_observation_space = g.observation_space
        self.single_action_space = g.action_space
        self.observation_space = batch_space(g.observation_space, N)
        self.action_space = batch_space(g.action_space, N)
        self.needs_bridge = self.env_class.task_needs_bridge
        K, D, F, A = cfg.capacity, cfg.dim, cfg.num_facts, codec.n
        self.K, self.D, self.L, self.A = K, D, cfg.length, A
        self.rows = np.arange(N)
        self.stream_batch = StreamBatch(cfg, N)
        self.blocks = StreamBlocks(N, block, D)
        op_of = np.array([codec.decode(a)[0] for a in range(A)], np.int64)
        op_of[0] = Op.SKIP
        self._op_of = op_of
        self._slot_of = np.array([max(codec.decode(a)[1], 0) for a in range(A)], np.int64)
        # `log1p(n) / 8` of every count of queries seen, as the single env computes it.
        self._log_queries = np.array(
            [math.log1p(n) / 8.0 for n in range(cfg.num_queries + 1)], np.float32)
        # The bank, batched.
        self.emb = np.zeros((N, K, D), np.float32)
        self.occupied = np.zeros((N, K), bool)
        self.age_ref = np.full((N, K, 2), _EMPTY_REF, np.int64)  # (written, used) references
        self.reads = np.zeros((N, K), np.int64)
        self.edits = np.zeros((N, K), np.int64)
        self.slot_fact = np.full((N, K), -1, np.int64)
        self.slot_version = np.full((N, K), -1, np.int64)
        self.size = np.zeros(N, np.int64)
        # Per-env episode state.
        self.t = np.zeros(N, np.int64)
        self.inner = np.zeros(N, np.int64)
        self.kind = np.zeros(N, np.int8)
        self.item = np.zeros((N, D), np.float32)
        self.fact = np.full(N, -1, np.int64)
        self.version = np.full(N, -1, np.int64)
        self.answer = np.full(N, -1, np.int64)
        self.answer_version = np.full(N, -1, np.int64)
        self.query_sum = np.zeros((N, D), np.float64)
        self.queries = np.zeros((N, D), np.float32)
        self.num_queries_seen = np.zeros(N, np.int64)
        self.recall = np.zeros((N, D), np.float32)
        self.recall_valid = np.zeros(N, bool)
        self.recall_fact = np.full(N, -1, np.int64)
        self.recall_version = np.full(N, -1, np.int64)
        # Episode metrics, batched (see episode_metrics.py): one table of counters, named by
        # column views.
        self.count_table = np.zeros((N, len(kernel.COUNTS)), np.int64)
        self.counts = {name: self.count_table[:, j] for j, name in enumerate(kernel.COUNTS)}
        self.utilisation_sum = np.zeros(N, np.float64)
        self.fact_version = np.full((N, F), -1, np.int64)  # latest version mentioned
        self.fate = np.zeros((N, F), np.int64)
        self.copies = np.zeros((N, F), np.int64)
        self.lost_version = np.full((N, F), -1, np.int64)  # latest version counted as lost
        # The observation buffers and the mask (current and previous: an ended episode's last
        # observation keeps the mask its last action was chosen from).
        self.ob_item = np.zeros((N, D + NUM_ITEM_FEATURES), np.float32)
        self.ob_slots = np.zeros((N, K, D + NUM_SLOT_FEATURES), np.float32)
        self.ob_recall = np.zeros((N, D + 1), np.float32)
        self.mask = np.zeros((N, A), np.int8)
        self.mask[:, 0] = 1
        self._prev_mask = self.mask.copy()
        # Per-step outputs of the kernels, reused.
        self._op = np.zeros(N, np.int64)
        self._slot = np.zeros(N, np.int64)
        self._reward = np.zeros(N, np.float64)
        self._advanced = np.zeros(N, bool)
        self._absorbed = np.zeros(N, bool)
        # Scratch of the step: the rows that go on to a next item, and those whose block is used up.
        self._going = np.zeros(N, np.int64)
        self._spent = np.zeros(N, np.int64)
        self._spent_at = np.zeros(N, np.int64)
        # The parts of the step: contiguous ranges, so each touches its own part of memory.
        self._bounds = np.linspace(0, N, threads + 1).round().astype(np.int64)
        self._state = kernel.Rows(*(getattr(self, name) for name in kernel.Rows._fields))
        self._blocks = kernel.Blocks(*(getattr(self.blocks, f) for f in kernel.Blocks._fields))
        self._streams = kernel.Streams(*(getattr(self.stream_batch, f)
                                         for f in kernel.Streams._fields))

    # ---- reset ---------------------------------------------------------------------------------

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            if len(seed) != self.num_envs:
                raise ValueError(f"got {len(seed)} seeds for {self.num_envs} envs")
            seeds = list(seed)
        self._new_episodes(self.rows, seeds)
        return self._observation(), {}

    def _new_episodes(self, rows: np.ndarray, seeds=None, first_items: int | None = None) -> None:
        """Start a new episode in each of `rows`, as the single env's `reset` does: same draws
        from its `np_random`, same first observation and mask. `first_items` caps the items
        generated now (default: a block)."""
        self._start_streams(rows, seeds, first_items)
        cfg = self.config
        kernel.new_episode_rows(self._state, rows, self._blocks, self.mask, self.L,
                                cfg.max_inner_ops, self.needs_bridge, self._log_queries)

    # ---- the streams: episode generation ---------------------------------------------------------

    def _start_streams(self, rows: np.ndarray, seeds=None, first_items: int | None = None) -> None:
        """A new episode's stream in each of `rows`, drawn from the row's `np_random` as the
        single env's `reset` draws it (`seeds[n]`, when given and not None, reseeds row
        `rows[n]`), and its first items (a block, or `first_items`)."""
        tasks, episode_seeds = [], np.empty(len(rows), np.int64)
        for n, i in enumerate(rows.tolist()):
            seed = None if seeds is None else seeds[n]
            if seed is not None or self.np_randoms[i] is None:
                self.np_randoms[i] = seeding.np_random(seed)[0]
            rng = self.np_randoms[i]
            tasks.append(self.task.task_structure(rng))
            episode_seeds[n] = episode_seed(rng)
        self.stream_batch.start(rows, episode_seeds, tasks)
        self.stream_batch.fill(rows, np.zeros(len(rows), np.int64), self.blocks,
                               limit=first_items)

    # ---- step ----------------------------------------------------------------------------------

    def step(self, actions):
        N, cfg = self.num_envs, self.config
        a = np.asarray(actions)
        if a.size != N:
            raise ValueError(f"expected {N} actions (one per env), got an array of shape {a.shape}")
        a = a.astype(np.int64).reshape(N)
        # The actions are checked against the mask they were chosen from; the new mask goes to
        # the other buffer, so an ended episode's last observation can keep the old one.
        chosen_from, new_mask = self.mask, self._prev_mask
        sb = self.stream_batch
        step_rows = kernel.step_rows if self.threads > 1 else kernel.step_rows_serial
        step_rows(self._state, self._blocks, self._streams, self._bounds, a, chosen_from, new_mask,
                  self._op_of, self._slot_of, cfg.max_inner_ops, cfg.write_cost, cfg.num_queries,
                  self.L, sb.fact_end, sb.noise_scale, self.needs_bridge, self._log_queries,
                  self._op, self._slot, self._reward, self._advanced, self._absorbed,
                  self._going, self._spent, self._spent_at)
        self._prev_mask, self.mask = chosen_from, new_mask
        advanced = np.flatnonzero(self._advanced)
        going = self.t[advanced] < self.L
        done = advanced[~going]
        reward = self._reward.copy()
        terminated = np.zeros(N, bool)
        info: dict[str, Any] = {}
        if len(done):
            terminated[done] = True
            kernel.rebuild_rows(self._state, done, self.L, cfg.max_inner_ops, self._log_queries)
            info.update(self._final_info(done))
            # Only the first item of each new stream now: this runs on one thread while the
            # others wait, and the rest of the block is generated by the row's own thread next
            # step, as any used-up block is (the items do not depend on how they are cut).
            self._new_episodes(done, first_items=1)
        running = ~terminated
        info["invalid_action"] = self._absorbed & running
        info["_invalid_action"] = running
        return self._observation(), reward, terminated, np.zeros(N, bool), info

    def _final_info(self, rows) -> dict[str, Any]:
        """`final_obs` and `final_info` (with the episode's metrics) of the ended `rows`."""
        N, Q, c = self.num_envs, self.config.num_queries, self.counts
        item, slots, recall = self.ob_item[rows], self.ob_slots[rows], self.ob_recall[rows]
        mask = self._prev_mask[rows]
        final_obs = np.full(N, None, dtype=object)
        for n, i in enumerate(rows.tolist()):
            final_obs[i] = {"item": item[n], "slots": slots[n], "recall": recall[n],
                            "action_mask": mask[n]}
        ended = np.zeros(N, bool)
        ended[rows] = True
        # Computed for the ended rows only (a few per step out of thousands).
        c = {name: column[rows] for name, column in c.items()}
        values = {
            "accuracy": c["correct"] / Q,
            "mean_utilisation": self.utilisation_sum[rows] / self.L,
            "lost_items": c["lost_skipped"] + c["lost_evicted"] + c["lost_overwritten"],
            **c,
        }
        metrics: dict[str, Any] = {}
        for name in METRIC_NAMES:
            v = values[name]
            full = np.zeros(N, v.dtype)
            full[rows] = v
            metrics[name], metrics[f"_{name}"] = full, ended.copy()
        final_info = {"invalid_action": np.zeros(N, bool), "_invalid_action": ended.copy(),
                      "metrics": metrics, "_metrics": ended.copy()}
        return {"final_obs": final_obs, "_final_obs": ended.copy(),
                "final_info": final_info, "_final_info": ended}

    def _observation(self) -> dict[str, np.ndarray]:
        if not self.copy:
            return {"item": self.ob_item, "slots": self.ob_slots, "recall": self.ob_recall,
                    "action_mask": self.mask}
        return {
            "item": self.ob_item.copy(),
            "slots": self.ob_slots.copy(),
            "recall": self.ob_recall.copy(),
            "action_mask": self.mask.copy(),
        }

    def action_masks(self) -> np.ndarray:
        """Valid actions `[N, n_actions]` as booleans (sb3-contrib's MaskablePPO convention)."""
        return self.mask.astype(bool)

    @property
    def privileged_width(self) -> int:
        """Width of `privileged()`, known before the first reset."""
        return privileged_size(self.K)

    def privileged(self) -> np.ndarray:
        """Hidden-state features of the current step for an asymmetric critic (`envs/privileged.py`);
        never part of the observation."""
        return streaming_privileged(self)


def _vector_env(single: type[StreamingMemoryEnv]) -> type[StreamingVectorEnv]:
    name = single.__name__.replace("Env", "VectorEnv")
    doc = f"`{single.__name__}` x N, batched in numpy (see `StreamingVectorEnv`)."
    return type(name, (StreamingVectorEnv,), {"env_class": single, "__doc__": doc,
                                              "__module__": __name__})


def _tasks():
    from .conflict import ConflictEnv
    from .multihop import MultiHopEnv
    from .retrieval import RetrievalEnv
    from .test_time_learning import TestTimeLearningEnv

    return RetrievalEnv, ConflictEnv, MultiHopEnv, TestTimeLearningEnv


RetrievalVectorEnv, ConflictVectorEnv, MultiHopVectorEnv, TestTimeLearningVectorEnv = map(
    _vector_env, _tasks())
