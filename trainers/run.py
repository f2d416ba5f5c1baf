"""The training loop: collect, update, log, evaluate, checkpoint, until the step or time budget
is spent or a signal asks to stop. Writes `runs/<name>/` (see `RunPaths`)."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memgym.policies.torch_policy import NeuralPolicy

from . import checkpoint
from .config import TrainConfig
from .learner import update
from .run_io import (EVAL_SEED, StallWatch, evaluate_held_out, install_signal_handlers,  # noqa: F401
                     progress_bar, restore_signal_handlers, snapshot_policy, write_record)
from .vector import critic_width, make_vector_env
from .workers import make_workers

log = logging.getLogger("memgym.train")
STALL_ITERATIONS = 20  # warn if the return has not moved from zero for this many iterations


@dataclass
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    @property
    def curve(self) -> Path:
        return self.root / "learning_curve.png"

    @property
    def levels(self) -> Path:
        return self.root / "baseline_levels.json"


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path, resume: bool = False):
        self.cfg = cfg
        self.paths = RunPaths(Path(run_dir))
        self.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.torch_threads)
        probe = make_vector_env(cfg.env, cfg.env_kwargs, 1)
        self.observation_space = probe.single_observation_space
        width = critic_width(cfg, probe)
        probe.close()
        self.net = cfg.network(self.observation_space, width)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, eps=1e-5)
        self.reference = copy.deepcopy(self.net).eval() if cfg.kl_coef > 0 else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.workers = make_workers(cfg)
        # `overlap`: the batch being collected while the learner updates, the weights it was
        # started with, and the workers' states from just before it started (what a checkpoint
        # holds, so that a resumed run starts the same batch again).
        self._in_flight = None
        self._behaviour: dict | None = None
        self._states_before_flight: list[bytes] | None = None
        self.iteration = 0
        self.global_step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.recent_episodes: list[dict] = []
        self._stop_requested = False
        if resume:
            self._restore(checkpoint.load(self.paths.root))
        else:
            cfg.save(self.paths.config)

    # ---- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        payload = {
            "config": self.cfg.to_dict(),
            "iteration": self.iteration,
            "global_step": self.global_step,
            "elapsed": self.elapsed,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "reference": None if self.reference is None else self.reference.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "workers": self._states_before_flight or self.workers.get_states(),
            "behaviour": self._behaviour,
            "history": self.history,
            # The training metrics average over these: without them a resumed run logs other
            # figures for the same iteration.
            "recent_episodes": self.recent_episodes,
        }
        return checkpoint.save_iteration(self.paths.checkpoints, self.iteration, payload)

    def _restore(self, payload: dict) -> None:
        checkpoint.check_config(payload, self.cfg.to_dict())
        self.iteration, self.global_step = payload["iteration"], payload["global_step"]
        self.elapsed, self.history = payload["elapsed"], payload["history"]
        try:
            self.net.load_state_dict(payload["net"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.reference is not None and payload["reference"] is not None:
                self.reference.load_state_dict(payload["reference"])
        except (RuntimeError, ValueError) as e:
            # A run of an earlier version whose network has changed since (for evaluation,
            # `memgym eval --policy` still loads it).
            raise checkpoint.CheckpointError(
                f"this checkpoint's network differs from what this version builds for its config, "
                f"so it cannot be resumed (evaluate it with `memgym eval --policy`): {e}") from None
        self.generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        self.workers.set_states(payload["workers"])
        self._behaviour = payload.get("behaviour")
        self.recent_episodes = payload.get("recent_episodes", [])

    # ---- the loop ------------------------------------------------------------------------------

    def request_stop(self, *_):
        self._stop_requested = True

    def train(self, max_iterations: int | None = None, progress: bool = True) -> dict:
        cfg = self.cfg
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(self.paths.tensorboard), purge_step=self.global_step or None)
        handlers = install_signal_handlers(self.request_stop)
        bar = progress_bar(cfg, self.global_step, progress)
        stall = StallWatch(bar, STALL_ITERATIONS)
        done_iterations = 0
        try:
            while self.global_step < cfg.total_steps and not self._stop_requested:
                if cfg.time_limit_minutes and self.elapsed >= 60 * cfg.time_limit_minutes:
                    break
                if max_iterations is not None and done_iterations >= max_iterations:
                    break
                t0 = time.perf_counter()
                if cfg.anneal_lr:
                    frac = 1.0 - self.global_step / cfg.total_steps
                    for group in self.optimizer.param_groups:
                        group["lr"] = cfg.lr * max(frac, 0.0)
                weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                if cfg.overlap:
                    batch = self._collect_overlapped(weights)
                else:
                    batch = self.workers.collect(weights)
                t_collect = time.perf_counter() - t0
                stats = update(self.net, self.optimizer, batch, cfg, self.generator, self.reference)
                self.iteration += 1
                done_iterations += 1
                self.global_step += batch.env_steps
                dt = time.perf_counter() - t0
                self.elapsed += dt
                self.recent_episodes = (self.recent_episodes + batch.episodes)[-200:]
                record = self._record(batch, stats, dt, t_collect)
                if self.iteration % cfg.eval_every == 0:
                    record.update(self.evaluate(cfg.eval_episodes, prefix="eval/"))
                    headline = "success" if "eval/success" in record else "accuracy"
                    self.history.append({"step": self.global_step, "elapsed": self.elapsed,
                                         headline: record[f"eval/{headline}"],
                                         "return": record["eval/return"]})
                self._log(writer, record)
                bar.update(batch.env_steps)
                bar.set_postfix(ret=f"{record['train/return']:.3f}",
                                acc=f"{record['train/accuracy'] or record['train/success']:.3f}",
                                sps=f"{record['perf/steps_per_second']:.0f}")
                stall.update(record["train/return"])
                if self.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
            writer.close()
            restore_signal_handlers(handlers)
        self.save_checkpoint()
        return {"iteration": self.iteration, "global_step": self.global_step,
                "stopped_early": self._stop_requested}

    def _collect_overlapped(self, weights: dict):
        """The batch started last iteration (with the weights from before the last update; at
        the start, with `weights`), after starting the next one with `weights`: the workers
        collect it while the learner updates on this one."""
        if self._in_flight is None:
            self._in_flight = self.workers.launch(self._behaviour or weights)
        batch = self.workers.wait(self._in_flight)
        self._states_before_flight = self.workers.get_states()
        self._behaviour = weights
        self._in_flight = self.workers.launch(weights)
        return batch

    def _record(self, batch, stats, dt, t_collect) -> dict:
        eps = self.recent_episodes
        record = {"iteration": self.iteration, "step": self.global_step,
                  "time": round(self.elapsed, 3)}
        for key in ("return", "accuracy", "success", "lost_items", "stale", "writes", "evictions"):
            vals = [e[key] for e in eps if key in e]
            record[f"train/{key}"] = float(np.mean(vals)) if vals else 0.0
        record["train/episodes"] = len(batch.episodes)
        record.update({f"loss/{k}": v for k, v in stats.items()})
        record.update({f"rollout/{k}": v for k, v in batch.stats.items()})
        record["perf/steps_per_second"] = batch.env_steps / dt
        record["perf/collect_fraction"] = t_collect / dt
        record["perf/worker_restarts"] = getattr(self.workers, "restarts", 0)
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        return record

    def _log(self, writer, record: dict) -> None:
        write_record(writer, self.paths.metrics, record, self.global_step)

    def policy(self) -> NeuralPolicy:
        return snapshot_policy(self.net, self.paths.root.name)

    def evaluate(self, episodes: int, prefix: str = ""):
        return evaluate_held_out(self.policy(), self.cfg, episodes, prefix)

    def close(self) -> None:
        self.workers.close()
