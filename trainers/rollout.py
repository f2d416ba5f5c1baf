"""`RolloutWorker`: one vector env and a CPU copy of the policy, filling rollouts.

The same class runs in-process (`num_workers: 0`) or inside a Ray actor, so the two modes cannot
drift apart. Storage is allocated once and written by index.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field

import numpy as np
import torch

from memgym.envs.streaming import ITEM_FEATURES, NUM_ITEM_FEATURES
from memgym.policies.networks import CORE_KEYS, PRIVILEGED, extra_keys

from .advantages import gae, group_advantages, group_to_go_advantages
from .config import DiscountClock, GrpoCredit, TrainConfig
from .vector import critic_width, make_vector_env

# `progress` counted from the end of `item` (its features follow the D embedding columns).
PROGRESS_COLUMN = ITEM_FEATURES.index("progress") - NUM_ITEM_FEATURES


@dataclass
class Rollout:
    """A `[T, N]` batch of experience plus the episodes it completed."""

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    logprobs: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    valid: np.ndarray  # steps that belong to an episode being trained on
    starts: np.ndarray  # the observation starts an episode (recurrent state resets here)
    initial_state: np.ndarray | None
    episodes: list[dict] = field(default_factory=list)  # return + metrics of finished episodes
    env_steps: int = 0
    stats: dict = field(default_factory=dict)


def _alloc(space, shape_prefix):
    return np.zeros(shape_prefix + space.shape, space.dtype)


def step_bound(env) -> int:
    """Most steps one episode of this env can take (streaming: every item + its inner ops)."""
    unwrapped = env.unwrapped if hasattr(env, "unwrapped") else env
    if hasattr(unwrapped, "step_bound"):
        return int(unwrapped.step_bound)
    cfg = getattr(unwrapped, "config", None)
    if cfg is not None and hasattr(cfg, "length") and hasattr(cfg, "max_inner_ops"):
        return cfg.length * (cfg.max_inner_ops + 1)
    raise ValueError(f"{type(unwrapped).__name__} does not declare step_bound; GRPO needs it")


class RolloutWorker:
    def __init__(self, cfg: TrainConfig | dict, seed: int):
        self.cfg = cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.for_inference(cfg)
        torch.set_num_threads(cfg.torch_threads)
        self.env = make_vector_env(cfg.env, cfg.env_kwargs, cfg.num_envs)
        # An asymmetric critic's hidden-state features ride along in the batch's observations
        # under their own key; only the value head reads them.
        self.privileged_dim = critic_width(cfg, self.env)
        self.net = cfg.network(self.env.single_observation_space, self.privileged_dim)
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        N = cfg.num_envs
        self.obs, _ = self.env.reset(seed=[int(s) for s in self.rng.integers(2**31, size=N)])
        self.state = self.net.initial_state(N)
        self.starts = np.ones(N, bool)
        self.episode_return = np.zeros(N, np.float64)
        T = cfg.rollout_steps if cfg.algo.value == "ppo" else self._grpo_bound()
        space = self.env.single_observation_space
        self.obs_keys = (*CORE_KEYS, *extra_keys(space))
        self.buf_obs = {k: _alloc(space[k], (T, N)) for k in self.obs_keys}
        if self.privileged_dim:
            self.buf_obs[PRIVILEGED] = np.zeros((T, N, self.privileged_dim), np.float32)
        self.buf_actions = np.zeros((T, N), np.int64)
        self.buf_logprobs = np.zeros((T, N), np.float32)
        self.buf_values = np.zeros((T, N), np.float32)
        self.buf_rewards = np.zeros((T, N), np.float32)
        self.buf_dones = np.zeros((T, N), np.float32)
        self.buf_starts = np.zeros((T, N), bool)
        self.buf_advanced = np.zeros((T, N), bool)

    def _grpo_bound(self) -> int:
        envs = getattr(self.env, "envs", None)
        return step_bound(envs[0] if envs else self.env)

    # ---- weights and checkpoints ---------------------------------------------------------------

    def set_weights(self, state_dict) -> None:
        self.net.load_state_dict(state_dict)

    def get_state(self) -> bytes:
        """Everything needed to continue exactly where this worker is (envs mid-episode too)."""
        return pickle.dumps({
            "env": self.env, "obs": self.obs, "state": self.state, "starts": self.starts,
            "episode_return": self.episode_return, "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
        })

    def set_state(self, blob: bytes) -> None:
        s = pickle.loads(blob)
        self.env.close()
        self.env, self.obs, self.state = s["env"], s["obs"], s["state"]
        self.starts, self.episode_return = s["starts"], s["episode_return"]
        self.rng.bit_generator.state = s["rng"]
        self.generator.set_state(s["generator"])

    def close(self) -> None:
        self.env.close()

    def pid(self) -> int:
        return os.getpid()

    # ---- acting --------------------------------------------------------------------------------

    def _current(self, obs) -> dict[str, torch.Tensor]:
        """What the net gets for the current step: the observation, plus the hidden-state
        features when the critic is privileged."""
        out = {k: torch.from_numpy(np.asarray(obs[k])) for k in self.obs_keys}
        if self.privileged_dim:
            self._privileged = self.env.privileged()  # kept for `_record`
            out[PRIVILEGED] = torch.from_numpy(self._privileged)
        return out

    @torch.no_grad()
    def _act(self):
        obs = self._current(self.obs)
        if self.state is not None:
            self.state = self.state * torch.from_numpy(~self.starts).float().unsqueeze(-1)
        logits, value, self.state = self.net(obs, self.state)
        logp_all = torch.log_softmax(logits, -1)
        action = torch.multinomial(logp_all.exp(), 1, generator=self.generator).squeeze(-1)
        logp = logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return action.numpy(), logp.numpy(), value.numpy()

    @torch.no_grad()
    def _value(self, obs, final: bool = False) -> np.ndarray:
        """V(obs) of the current step, or (`final`) of an episode's last observation, whose
        hidden state is gone after the autoreset: its privileged features are left at zero."""
        tobs = {k: torch.from_numpy(np.asarray(obs[k])) for k in self.obs_keys}
        if self.privileged_dim and not final:
            tobs[PRIVILEGED] = torch.from_numpy(self.env.privileged())
        return self.net(tobs, self.state)[1].numpy()

    def _record(self, t: int, action, logp, value) -> None:
        for k in self.obs_keys:
            self.buf_obs[k][t] = self.obs[k]
        if self.privileged_dim:
            self.buf_obs[PRIVILEGED][t] = self._privileged
        self.buf_actions[t], self.buf_logprobs[t], self.buf_values[t] = action, logp, value
        self.buf_starts[t] = self.starts

    def _stack(self, observations):
        return {k: np.stack([o[k] for o in observations]) for k in self.obs_keys}

    def _step(self, t: int, action, episodes: list, counted: np.ndarray | None = None) -> None:
        before = self.obs["item"][:, PROGRESS_COLUMN].copy()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.buf_advanced[t] = obs["item"][:, PROGRESS_COLUMN] != before
        done = terminated | truncated
        reward = reward.astype(np.float32)
        if truncated.any():  # a time-out is not a failure: bootstrap from the final observation
            final = info["final_obs"]
            for i in np.flatnonzero(truncated & ~terminated):
                value = self._value(self._stack([final[i]]), final=True)[0]
                reward[i] += self.cfg.gamma * float(value)
        self.buf_rewards[t], self.buf_dones[t] = reward, done
        self.episode_return += reward
        for i in np.flatnonzero(done):
            if counted is None or counted[i]:
                episodes.append(_episode_record(self.episode_return[i], info, i))
            self.episode_return[i] = 0.0
        self.obs, self.starts = obs, done

    def collect_ppo(self) -> Rollout:
        T = self.cfg.rollout_steps
        state0 = None if self.state is None else self.state.clone().numpy()
        episodes: list[dict] = []
        for t in range(T):
            action, logp, value = self._act()
            self._record(t, action, logp, value)
            self._step(t, action, episodes)
        last_values = self._value(self.obs)
        advanced = self.buf_advanced if self.cfg.discount_clock is DiscountClock.ADVANCE else None
        adv, ret = gae(self.buf_rewards, self.buf_values, self.buf_dones, last_values,
                       self.cfg.gamma, self.cfg.gae_lambda, advanced)
        return Rollout(
            obs={k: v.copy() for k, v in self.buf_obs.items()}, actions=self.buf_actions.copy(),
            logprobs=self.buf_logprobs.copy(), advantages=adv, returns=ret,
            valid=np.ones((T, self.cfg.num_envs), bool), starts=self.buf_starts.copy(),
            initial_state=state0, episodes=episodes, env_steps=T * self.cfg.num_envs,
        )

    def collect_grpo(self) -> Rollout:
        """One episode per env; each group of `group_size` envs plays the same stream seed."""
        N, G = self.cfg.num_envs, self.cfg.group_size
        seeds = np.repeat(self.rng.integers(2**31, size=N // G), G)
        self.obs, _ = self.env.reset(seed=[int(s) for s in seeds])
        self.state = self.net.initial_state(N)
        self.starts[:] = True
        self.episode_return[:] = 0.0
        state0 = None if self.state is None else self.state.clone().numpy()
        running = np.ones(N, bool)
        valid = np.zeros_like(self.buf_starts)
        returns = np.zeros(N, np.float64)
        episodes: list[dict] = []
        t = 0
        while running.any():
            if t == len(self.buf_actions):
                raise RuntimeError("an episode exceeded the env's declared step_bound")
            action, logp, value = self._act()
            self._record(t, action, logp, value)
            valid[t] = running
            finishing = running.copy()
            before = self.episode_return.copy()
            self._step(t, action, episodes, counted=finishing)
            ended = running & self.buf_dones[t].astype(bool)
            returns[ended] = (before + self.buf_rewards[t])[ended]
            running &= ~ended
            t += 1
        zero_std = float(np.mean(returns.reshape(-1, G).std(axis=1) < 1e-9))
        if self.cfg.grpo_credit is GrpoCredit.TO_GO:
            # The item's `progress` is the same for every member of a group at the same point
            # of their (shared) stream: the position the step-level baseline groups by.
            position = self.buf_obs["item"][:t, :, PROGRESS_COLUMN]
            advanced = self.buf_advanced[:t]
            if self.cfg.discount_clock is DiscountClock.STEP:
                advanced = np.ones_like(advanced)
            discounts = np.where(advanced, self.cfg.gamma, 1.0)
            advantages = group_to_go_advantages(self.buf_rewards[:t], valid[:t], position, G,
                                                discounts=discounts, scale=self.cfg.grpo_scale)
        else:
            adv = group_advantages(returns, G, scale=self.cfg.grpo_scale)
            advantages = np.where(valid[:t], adv[None, :], 0.0).astype(np.float32)
        return Rollout(
            obs={k: v[:t].copy() for k, v in self.buf_obs.items()},
            actions=self.buf_actions[:t].copy(), logprobs=self.buf_logprobs[:t].copy(),
            advantages=advantages, returns=np.zeros_like(advantages), valid=valid[:t].copy(),
            starts=self.buf_starts[:t].copy(), initial_state=state0,
            episodes=episodes, env_steps=int(valid[:t].sum()),
            stats={"frac_reward_zero_std": zero_std},
        )




def _episode_record(ret: float, info: dict, i: int) -> dict:
    record = {"return": float(ret)}
    final = info.get("final_info", {})
    metrics = final.get("metrics") if isinstance(final, dict) else None
    if metrics is not None:
        for name, values in metrics.items():
            if not name.startswith("_"):
                record[name] = float(values[i])
    return record
