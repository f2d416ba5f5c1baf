"""`ExplicitMemory`: give any Gymnasium env with a `Discrete` action space an explicit memory bank
under memgym's contract, so POPGym or MiniGrid tasks become memory-policy tasks too."""

from __future__ import annotations

import zlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .bank import NUM_SLOT_FEATURES
from .config import ConfigError
from .slot_memory import SlotMemory, unit_rows
from .streaming import NUM_ITEM_FEATURES

ROW = np.zeros(1, np.int64)  # the wrapped env is row 0 of a batch of one (see slot_memory.py)
METRIC_NAMES = (
    "writes", "edits", "evictions", "retrieves", "invalid_actions", "mean_utilisation",
    "env_steps", "return",
)


class ObservationEmbedder:
    """A fixed map from an observation to a unit `dim`-vector: a `Discrete(n)` observation is
    one-hot, a `Box` is flattened; a vector no longer than `dim` is zero-padded (so it reads back
    as itself), a longer one goes through a fixed random projection (the same for every episode
    and process: seeded by the space's size)."""

    def __init__(self, space: spaces.Space, dim: int):
        if isinstance(space, spaces.Discrete):
            self.size = int(space.n)
        elif isinstance(space, spaces.Box):
            self.size = int(np.prod(space.shape))
        else:
            raise ConfigError(
                f"ExplicitMemory needs a Box or Discrete observation space, got {space}; pick "
                "one entry of a Dict with obs_key (MiniGrid: obs_key='image') or flatten it"
            )
        self.space, self.dim = space, dim
        self.projection = None
        if self.size > dim:
            rng = np.random.default_rng(zlib.crc32(f"explicit-memory/{self.size}/{dim}".encode()))
            self.projection = (rng.standard_normal((self.size, dim)) / np.sqrt(dim)).astype(
                np.float32
            )

    def __call__(self, obs) -> np.ndarray:
        if isinstance(self.space, spaces.Discrete):
            flat = np.zeros(self.size, np.float32)
            flat[int(obs) - int(self.space.start)] = 1.0
        else:
            flat = np.asarray(obs, np.float32).reshape(-1)
        if self.projection is not None:
            v = flat @ self.projection
        else:
            v = np.zeros(self.dim, np.float32)
            v[: self.size] = flat
        return unit_rows(v[None])[0]


class ExplicitMemory(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """
    ## Description
    Wraps an env with a `Discrete(n)` action space and a `Box` or `Discrete` observation space and
    gives it a bank of `slots` memory slots under memgym's contract. The item is the current
    observation, embedded by `ObservationEmbedder`; the wrapped env's own observation passes
    through unchanged under `obs`. For a `Dict` observation, `obs_key` picks the entry to use
    (MiniGrid: `ExplicitMemory(gym.make("MiniGrid-MemoryS7-v0"), slots=4, obs_key="image")`).

    ## Action Space
    `Discrete(n + 4K)`: the env's `n` actions first (they advance the env; action 0 plays the
    contract's `SKIP`), then `STORE(s)`, `EDIT(s)`, `EVICT(s)`, `RETRIEVE(s)` for each slot. Memory
    ops act on the current observation and do not advance the env; at most `max_inner_ops` per
    env step, then they are masked. An invalid action is a counted no-op while that budget lasts,
    then it plays env action 0. `encode(op, slot)` / `decode(a)` convert.

    ## Observation Space
    `Dict(obs, item, slots, recall, action_mask)`: `obs` as the env gives it; `item`, `slots`,
    `recall`, `action_mask` laid out as in the streaming family (`is_query` is always 0; `progress`
    is `t / horizon` when the horizon is known, else 0). The env's actions are all valid unless it
    has `action_masks()`, which is then honoured.

    ## Rewards
    The env's rewards, minus `write_cost` per STORE/EDIT.

    ## Episode End
    The env's. `info["metrics"]` then holds writes, edits, evictions, retrieves, invalid actions,
    mean utilisation, env steps and the env's return.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, env: gym.Env, slots: int = 4, dim: int = 32, max_inner_ops: int = 3,
                 write_cost: float = 0.0, horizon: int | None = None, obs_key: str | None = None):
        gym.utils.RecordConstructorArgs.__init__(
            self, slots=slots, dim=dim, max_inner_ops=max_inner_ops, write_cost=write_cost,
            horizon=horizon, obs_key=obs_key,
        )
        gym.Wrapper.__init__(self, env)
        if not isinstance(env.action_space, spaces.Discrete):
            raise ConfigError(f"ExplicitMemory needs a Discrete action space, got {env.action_space}")
        if slots < 1 or dim < 1 or max_inner_ops < 2:
            raise ConfigError("ExplicitMemory needs slots >= 1, dim >= 1 and max_inner_ops >= 2")
        space = env.observation_space
        self.obs_key = obs_key
        if obs_key is not None:
            if not isinstance(space, spaces.Dict) or obs_key not in space.spaces:
                keys = list(space.spaces) if isinstance(space, spaces.Dict) else []
                raise ConfigError(f"obs_key={obs_key!r} is not a key of the observation {keys}")
            space = space[obs_key]
        self.embed = ObservationEmbedder(space, dim)
        self.num_world_actions = int(env.action_space.n)
        self._action_start = int(env.action_space.start)
        self.memory = SlotMemory(1, slots, dim, self.num_world_actions, max_inner_ops)
        self.codec = self.memory.codec
        self.write_cost = float(write_cost)
        spec_horizon = env.spec.max_episode_steps if env.spec is not None else None
        self.horizon = horizon or spec_horizon
        self.action_space = spaces.Discrete(self.codec.n)
        self.observation_space = spaces.Dict(
            {
                "obs": space,
                "item": spaces.Box(-np.inf, np.inf, (dim + NUM_ITEM_FEATURES,), np.float32),
                "slots": spaces.Box(-np.inf, np.inf, (slots, dim + NUM_SLOT_FEATURES), np.float32),
                "recall": spaces.Box(-1.0, 1.0, (dim + 1,), np.float32),
                "action_mask": spaces.MultiBinary(self.codec.n),
            }
        )
        self._obs = None

    def encode(self, op, slot: int = 0) -> int:
        return self.codec.encode(op, slot)

    def decode(self, action: int):
        return self.codec.decode(action)

    def action_masks(self) -> np.ndarray:
        return self.memory.mask[0].astype(bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.memory.reset(ROW, 1)
        self.t, self.episode_return = 0, 0.0
        self._begin(obs)
        return self._observation(), info

    def step(self, action):
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        mem = self.memory
        a = int(action)
        if not (0 <= a < self.codec.n and mem.mask[0, a]):
            if mem.absorb_invalid(ROW)[0]:
                return self._observation(), 0.0, False, False, {"invalid_action": True}
            a = 0
        if a >= self.num_world_actions:
            op, slot = self.codec.decode(a)
            wrote = mem.apply(ROW, np.array([op]), np.array([slot]))[0]
            reward = -self.write_cost if wrote else 0.0
            self.episode_return += reward
            return self._observation(), reward, False, False, {"invalid_action": False}
        mem.end_world_step(ROW)
        obs, reward, terminated, truncated, info = self.env.step(a + self._action_start)
        self.t += 1
        self.episode_return += float(reward)
        self._begin(obs)
        info = {**info, "invalid_action": False}
        if terminated or truncated:
            summary = mem.summary(0)
            info["metrics"] = {
                **{k: summary[k] for k in METRIC_NAMES[:6]},
                "env_steps": self.t,
                "return": self.episode_return,
            }
        return self._observation(), float(reward), terminated, truncated, info

    def _begin(self, obs) -> None:
        self._obs = obs if self.obs_key is None else obs[self.obs_key]
        world_mask = np.ones(self.num_world_actions, bool)
        if hasattr(self.env, "action_masks"):
            world_mask = np.asarray(self.env.action_masks(), bool)
        self.memory.begin_step(
            ROW, self.t, self.embed(self._obs), np.array((-1, -1, self.t)), np.zeros(2),
            np.ones(1, bool), np.zeros(1, bool), world_mask,
        )

    def _observation(self) -> dict[str, Any]:
        progress = min(self.t / self.horizon, 1.0) if self.horizon else 0.0
        obs = self._obs.copy() if isinstance(self._obs, np.ndarray) else self._obs  # never shared
        memory = self.memory.observation(np.array([progress]))
        return {"obs": obs, **{k: v[0] for k, v in memory.items()}}

    def get_state(self) -> dict[str, Any]:
        """The memory's hidden state, and the wrapped env's own `get_state()` when it has one."""
        mem = self.memory
        inner = getattr(self.env.unwrapped, "get_state", None)
        return {
            "t": self.t,
            "inner_ops": int(mem.inner_ops[0]),
            "slot_occupied": mem.occupied[0].copy(),
            "slot_written_at": mem.content[0, :, 2].copy(),  # the env step of each write
            "recall_valid": bool(mem.recall_valid[0]),
            "env_state": inner() if callable(inner) else None,
        }
