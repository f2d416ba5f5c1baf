"""SB3 backend: sb3-contrib's MaskablePPO on a memgym env, with *our* network, writing our run layout.

The SB3 policy computes exactly the function of the memgym network (`policies/networks.py`): a
features extractor runs the network and hands SB3 its masked logits and its value as "features",
and the action and value heads only pick those columns (no SB3 MLP in between, no orthogonal
re-initialisation). So parameters, initialisation and size match our PPO's, the weights are saved in
our checkpoint format (`memgym eval --policy runs/<name>` and export work unchanged), and a
difference in learning or speed comes from the two algorithm implementations, nothing else.

`learn()` is called once per iteration (one rollout + one update), so logging, held-out evaluation,
checkpoints, the time limit and SIGINT/SIGTERM are handled between iterations exactly as in
`trainers/run.py`, with the same metric names.
"""

from __future__ import annotations

import functools
import io
import pickle
import random
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.policies.networks import build_network
from memgym.policies.torch_policy import NeuralPolicy

from . import checkpoint
from .config import TrainConfig
from .run import STALL_ITERATIONS, RunPaths
from .run_io import (StallWatch, evaluate_held_out, install_signal_handlers, progress_bar,
                     restore_signal_handlers, snapshot_policy, write_record)

# SB3 logger key -> our metric name (and sign): the same names as trainers/run.py writes.
SB3_STATS = {
    "train/policy_gradient_loss": ("loss/policy_loss", 1.0),
    "train/value_loss": ("loss/value_loss", 1.0),
    "train/entropy_loss": ("loss/entropy", -1.0),  # SB3 logs -entropy
    "train/approx_kl": ("loss/approx_kl", 1.0),
    "train/clip_fraction": ("loss/clip_fraction", 1.0),
    "train/explained_variance": ("loss/explained_variance", 1.0),
}
EPISODE_KEYS = ("return", "accuracy", "lost_items", "stale", "writes", "evictions")


# ---- the network inside SB3 -------------------------------------------------------------------


class MemgymNetExtractor(BaseFeaturesExtractor):
    """Runs a memgym network; its features are `[masked logits (n actions), value]`."""

    def __init__(self, observation_space: gym.spaces.Dict, arch: str = "slot_attention",
                 hidden: int = 64, addressing: bool = True, query_addressing: bool = False,
                 store_novelty: bool = False, novelty_threshold: float = 0.0):
        # The options default to what models saved before them had; runs pass their config's.
        n_actions = int(observation_space["action_mask"].shape[-1])
        super().__init__(observation_space, features_dim=n_actions + 1)
        self.net = build_network(arch, observation_space, hidden, addressing=addressing,
                                 query_addressing=query_addressing,
                                 store_novelty=store_novelty,
                                 novelty_threshold=novelty_threshold)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, value, _ = self.net(observations)
        return torch.cat([logits, value.unsqueeze(-1)], -1)


class Columns(nn.Module):
    """Picks columns `[start, stop)` of the features: the action and value 'heads'."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.start:self.stop]


class MemgymNetPolicy(MaskableMultiInputActorCriticPolicy):
    """MaskablePPO's policy with SB3's heads replaced by column picks of `MemgymNetExtractor`."""

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        n = int(self.action_space.n)
        self.action_net = Columns(0, n)
        self.value_net = Columns(n, n + 1)
        # Rebuilt so the optimiser holds exactly the network's parameters (not the replaced heads).
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)


def make_sb3_env(cfg: TrainConfig) -> DummyVecEnv:
    fns = [functools.partial(gym.make, cfg.env, **cfg.env_kwargs) for _ in range(cfg.num_envs)]
    return DummyVecEnv(fns)


def build_model(cfg: TrainConfig, env: DummyVecEnv) -> MaskablePPO:
    """MaskablePPO with our network and the same batch and loss settings as our PPO."""
    batch = cfg.num_envs * cfg.rollout_steps
    model = MaskablePPO(
        MemgymNetPolicy, env,
        learning_rate=cfg.lr, n_steps=cfg.rollout_steps, batch_size=batch // cfg.minibatches,
        n_epochs=cfg.epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip,
        ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
        policy_kwargs={"features_extractor_class": MemgymNetExtractor,
                       "features_extractor_kwargs": {"arch": cfg.policy.value, "hidden": cfg.hidden,
                                                     "addressing": cfg.addressing,
                                                     "query_addressing": cfg.query_addressing,
                                                     "store_novelty": cfg.store_novelty,
                                                     "novelty_threshold": cfg.novelty_threshold},
                       "net_arch": [], "ortho_init": False},
        seed=cfg.seed, device="cpu", verbose=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # we write TB/JSONL ourselves
    return model


def network_of(model: MaskablePPO) -> nn.Module:
    return model.policy.features_extractor.net


# ---- per-step episode bookkeeping ---------------------------------------------------------------


class _EpisodeTracker(BaseCallback):
    """Sums rewards per env and records finished episodes with the env's end-of-episode metrics."""

    def __init__(self, num_envs: int):
        super().__init__()
        self.episode_return = np.zeros(num_envs, np.float64)
        self.episodes: list[dict] = []
        self.rollout_end = 0.0

    def _on_step(self) -> bool:
        self.episode_return += self.locals["rewards"]
        infos = self.locals["infos"]
        for i in np.flatnonzero(self.locals["dones"]):
            record = {"return": float(self.episode_return[i])}
            for name, value in (infos[i].get("metrics") or {}).items():
                if not name.startswith("_"):
                    record[name] = float(value)
            self.episodes.append(record)
            self.episode_return[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        self.rollout_end = time.perf_counter()


# ---- the run ------------------------------------------------------------------------------------


class SB3Run:
    """A MaskablePPO training run in `runs/<name>/`; `.policy()` and `.history` as `Trainer`."""

    def __init__(self, cfg: TrainConfig, paths: RunPaths, resume: bool = False):
        self.cfg, self.paths = cfg, paths
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(cfg.torch_threads)
        self.iteration = 0
        self.global_step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.recent_episodes: list[dict] = []
        self.stopped_early = False
        self._stop_requested = False
        self.tracker = _EpisodeTracker(cfg.num_envs)
        if resume:
            self._restore(checkpoint.load(paths.root))
        else:
            cfg.save(paths.config)
            self.env = make_sb3_env(cfg)
            self.model = build_model(cfg, self.env)

    # ---- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        blob = io.BytesIO()
        self.model.save(blob)
        payload = {
            "config": self.cfg.to_dict(),
            "backend": "sb3-maskable_ppo",
            "iteration": self.iteration,
            "global_step": self.global_step,
            "elapsed": self.elapsed,
            "history": self.history,
            "net": network_of(self.model).state_dict(),  # our format: eval/export load this
            "sb3_model": blob.getvalue(),
            # Mid-episode envs, the last observation and RNGs: a resumed run goes on exactly.
            "envs": pickle.dumps(self.env.envs),
            "last_obs": self.model._last_obs,
            "last_episode_starts": self.model._last_episode_starts,
            "episode_return": self.tracker.episode_return,
            "recent_episodes": self.recent_episodes,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "random": random.getstate()},
        }
        return checkpoint.save_iteration(self.paths.checkpoints, self.iteration, payload)

    def _restore(self, payload: dict) -> None:
        checkpoint.check_config(payload, self.cfg.to_dict())
        if "sb3_model" not in payload:
            raise checkpoint.CheckpointError(
                f"{self.paths.root} was not trained with algo=maskable_ppo (no SB3 model in it)"
            )
        self.iteration, self.global_step = payload["iteration"], payload["global_step"]
        self.elapsed, self.history = payload["elapsed"], payload["history"]
        self.recent_episodes = payload["recent_episodes"]
        envs = pickle.loads(payload["envs"])
        self.env = DummyVecEnv([functools.partial(_identity, e) for e in envs])
        self.model = MaskablePPO.load(io.BytesIO(payload["sb3_model"]), env=self.env, device="cpu")
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.model._last_obs = payload["last_obs"]
        self.model._last_episode_starts = payload["last_episode_starts"]
        self.tracker.episode_return[:] = payload["episode_return"]
        rng = payload["rng"]  # after load(), which reseeds everything from cfg.seed
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["random"])

    # ---- the loop ------------------------------------------------------------------------------

    def request_stop(self, *_):
        self._stop_requested = True

    def train(self, max_iterations: int | None = None, progress: bool = True) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        batch = cfg.num_envs * cfg.rollout_steps
        writer = SummaryWriter(str(self.paths.tensorboard), purge_step=self.global_step or None)
        handlers = install_signal_handlers(self.request_stop)
        bar = progress_bar(cfg, self.global_step, progress)
        done_iterations = 0
        stall = StallWatch(bar, STALL_ITERATIONS)
        try:
            while self.global_step < cfg.total_steps and not self._stop_requested:
                if cfg.time_limit_minutes and self.elapsed >= 60 * cfg.time_limit_minutes:
                    break
                if max_iterations is not None and done_iterations >= max_iterations:
                    break
                lr = cfg.lr * max(1.0 - self.global_step / cfg.total_steps, 0.0) if cfg.anneal_lr else cfg.lr
                self.model.lr_schedule = ConstantSchedule(lr)
                self.tracker.episodes = []
                t0 = time.perf_counter()
                self.model.learn(batch, callback=self.tracker, log_interval=None,
                                 reset_num_timesteps=False)
                dt = time.perf_counter() - t0
                self.iteration += 1
                done_iterations += 1
                self.global_step += batch
                self.elapsed += dt
                self.recent_episodes = (self.recent_episodes + self.tracker.episodes)[-200:]
                record = self._record(dt, (self.tracker.rollout_end - t0) / dt, lr)
                if self.iteration % cfg.eval_every == 0:
                    record.update(self.evaluate(cfg.eval_episodes, prefix="eval/"))
                    self.history.append({"step": self.global_step, "elapsed": self.elapsed,
                                         "accuracy": record["eval/accuracy"],
                                         "return": record["eval/return"]})
                self._log(writer, record)
                bar.update(batch)
                bar.set_postfix(ret=f"{record['train/return']:.3f}",
                                acc=f"{record['train/accuracy']:.3f}",
                                sps=f"{record['perf/steps_per_second']:.0f}")
                stall.update(record["train/return"])
                if self.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
            writer.close()
            restore_signal_handlers(handlers)
        self.save_checkpoint()
        self.stopped_early = self._stop_requested
        return {"iteration": self.iteration, "global_step": self.global_step,
                "stopped_early": self.stopped_early}

    def _record(self, dt: float, collect_fraction: float, lr: float) -> dict:
        record = {"iteration": self.iteration, "step": self.global_step,
                  "time": round(self.elapsed, 3)}
        for key in EPISODE_KEYS:
            vals = [e[key] for e in self.recent_episodes if key in e]
            record[f"train/{key}"] = float(np.mean(vals)) if vals else 0.0
        record["train/episodes"] = len(self.tracker.episodes)
        logged = self.model.logger.name_to_value
        for sb3_key, (name, sign) in SB3_STATS.items():
            if sb3_key in logged:
                record[name] = sign * float(logged[sb3_key])
        record["perf/steps_per_second"] = self.cfg.num_envs * self.cfg.rollout_steps / dt
        record["perf/collect_fraction"] = collect_fraction
        record["lr"] = lr
        return record

    def _log(self, writer, record: dict) -> None:
        write_record(writer, self.paths.metrics, record, self.global_step)

    def policy(self) -> NeuralPolicy:
        """The trained policy behind the batched protocol (greedy, as `model.predict(...,
        deterministic=True)` with the action masks)."""
        return snapshot_policy(network_of(self.model), self.paths.root.name)

    def evaluate(self, episodes: int, prefix: str = "") -> dict:
        return evaluate_held_out(self.policy(), self.cfg, episodes, prefix)

    def close(self) -> None:
        self.env.close()


def _identity(x):
    return x


def train_maskable_ppo(cfg: TrainConfig, paths: RunPaths, resume: bool = False,
                       progress: bool = True, max_iterations: int | None = None) -> SB3Run:
    """Train MaskablePPO for `cfg` in `paths.root`; the returned run has `.policy()`,
    `.history` and `.stopped_early`."""
    run = SB3Run(cfg, paths, resume=resume)
    try:
        run.train(max_iterations=max_iterations, progress=progress)
    finally:
        run.close()
    return run
