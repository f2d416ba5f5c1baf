"""Rollout workers in-process or on Ray actors, behind one interface.

`num_workers: 0` runs one `RolloutWorker` in this process (no Ray at all). `num_workers > 0`
starts that many Ray actors; `ray.init()` honours `RAY_ADDRESS`, so the same command runs on a
local embedded Ray or on a cluster. An actor that dies is restarted from its last checkpointed
state (or fresh, if it had none) and its rollout is collected again: the run goes on and the
restart is counted in the logs.

On Ray a collection is `launch(weights)` then `wait(launched)` (`collect` is both at once), so a
trainer can start the next batch before it updates on this one (`TrainConfig.overlap`, which
needs Ray workers: in-process there is nothing to run beside the learner).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any

from .config import Algo, TrainConfig
from .rollout import Rollout, RolloutWorker

log = logging.getLogger("memgym.workers")


def _writable(rollout: Rollout) -> Rollout:
    """`rollout` with arrays it owns: one from a Ray actor holds read-only views of the object
    store, which torch warns about (and must not write through)."""
    import numpy as np

    fix = lambda x: x if x is None or x.flags.writeable else np.array(x)  # noqa: E731
    arrays = {f: fix(getattr(rollout, f)) for f in
              ("actions", "logprobs", "advantages", "returns", "valid", "starts", "initial_state")}
    return replace(rollout, obs={k: fix(v) for k, v in rollout.obs.items()}, **arrays)


def _merge(parts: list[Rollout]) -> Rollout:
    import numpy as np

    if len(parts) == 1:
        return _writable(parts[0])
    T = max(p.actions.shape[0] for p in parts)

    def pad(x, fill=0):
        if x.shape[0] == T:
            return x
        out = np.full((T,) + x.shape[1:], fill, x.dtype)
        out[: x.shape[0]] = x
        return out

    cat = lambda xs, fill=0: np.concatenate([pad(x, fill) for x in xs], axis=1)  # noqa: E731
    states = [p.initial_state for p in parts]
    return Rollout(
        obs={k: cat([p.obs[k] for p in parts], 1 if k == "action_mask" else 0) for k in parts[0].obs},
        actions=cat([p.actions for p in parts]),
        logprobs=cat([p.logprobs for p in parts]),
        advantages=cat([p.advantages for p in parts]),
        returns=cat([p.returns for p in parts]),
        valid=cat([p.valid for p in parts], False),
        starts=cat([p.starts for p in parts], False),
        initial_state=None if states[0] is None else np.concatenate(states),
        episodes=[e for p in parts for e in p.episodes],
        env_steps=sum(p.env_steps for p in parts),
        stats={k: float(np.mean([p.stats[k] for p in parts])) for k in parts[0].stats},
    )


class LocalWorkers:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.worker = RolloutWorker(cfg, seed=cfg.seed)
        self.restarts = 0

    def collect(self, weights) -> Rollout:
        self.worker.set_weights(weights)
        return self.worker.collect_grpo() if self.cfg.algo is Algo.GRPO else self.worker.collect_ppo()

    def get_states(self) -> list[bytes]:
        return [self.worker.get_state()]

    def set_states(self, states: list[bytes]) -> None:
        self.worker.set_state(states[0])

    def close(self) -> None:
        self.worker.close()


def init_ray(num_cpus: int | None = None):
    """Connect to RAY_ADDRESS if set, else start an embedded local Ray on loopback."""
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return ray


@dataclass
class Launched:
    """Rollouts running on the actors: the weights they were started with (an object ref) and
    each actor's pending result."""

    weights: Any
    futures: dict[int, Any]


class RayWorkers:
    def __init__(self, cfg: TrainConfig):
        self.ray = init_ray()
        self.cfg = cfg
        self.remote_cls = self.ray.remote(num_cpus=1)(RolloutWorker)
        self.seeds = [cfg.seed + 1000 * (i + 1) for i in range(cfg.num_workers)]
        self.actors = [self._start(i) for i in range(cfg.num_workers)]
        self.last_states: list[bytes | None] = [None] * cfg.num_workers
        self.restarts = 0

    def _start(self, i: int):
        return self.remote_cls.remote(self.cfg.to_dict(), self.seeds[i])

    def _restart(self, i: int) -> None:
        self.restarts += 1
        log.warning("rollout worker %d died; restarting it (restart #%d)", i, self.restarts)
        self.actors[i] = self._start(i)
        if self.last_states[i] is not None:
            self.ray.get(self.actors[i].set_state.remote(self.last_states[i]))

    def collect(self, weights) -> Rollout:
        return self.wait(self.launch(weights))

    def launch(self, weights) -> Launched:
        """Every actor starts a rollout with `weights`; returns at once."""
        ref = self.ray.put(weights)
        return Launched(ref, {i: self._submit(i, ref) for i in range(len(self.actors))})

    def _submit(self, i: int, weights_ref):
        method = "collect_grpo" if self.cfg.algo is Algo.GRPO else "collect_ppo"
        self.actors[i].set_weights.remote(weights_ref)
        return getattr(self.actors[i], method).remote()

    def wait(self, launched: Launched) -> Rollout:
        """The merged rollouts of `launched`. An actor that died is restarted from its last
        recorded state and its rollout run again with the same weights."""
        from ray.exceptions import RayActorError

        parts: list[Rollout | None] = [None] * len(self.actors)
        futures = launched.futures
        for _attempt in range(3):
            retry = {}
            for i, fut in futures.items():
                try:
                    parts[i] = self.ray.get(fut)
                except RayActorError:
                    self._restart(i)
                    retry[i] = self._submit(i, launched.weights)
            if not retry:
                break
            futures = retry
        if any(p is None for p in parts):
            raise RuntimeError("rollout workers kept dying; see the Ray logs")
        return _merge(parts)

    def get_states(self) -> list[bytes]:
        from ray.exceptions import RayActorError

        states = []
        for i, actor in enumerate(self.actors):
            try:
                states.append(self.ray.get(actor.get_state.remote()))
            except RayActorError:
                self._restart(i)
                states.append(self.ray.get(self.actors[i].get_state.remote()))
        self.last_states = list(states)
        return states

    def set_states(self, states: list[bytes]) -> None:
        if len(states) != len(self.actors):
            raise ValueError(
                f"checkpoint has {len(states)} worker states but num_workers={len(self.actors)}"
            )
        self.last_states = list(states)
        self.ray.get([a.set_state.remote(s) for a, s in zip(self.actors, states)])

    def actor_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)


def make_workers(cfg: TrainConfig):
    return RayWorkers(cfg) if cfg.num_workers > 0 else LocalWorkers(cfg)
