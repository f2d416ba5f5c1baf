"""Rollouts on Ray actors: same results as in-process for one worker, and a worker killed
mid-run is restarted while the run goes on."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from memgym.trainers.config import load_config
from memgym.trainers.run import Trainer

pytestmark = pytest.mark.slow

TINY = dict(env="memgym/Conflict-Easy-v0", num_envs=4, rollout_steps=32, minibatches=2,
            epochs=1, eval_every=1000, checkpoint_every=1000, total_steps=10_000_000)


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_killed_worker_is_restarted_and_the_run_goes_on(local_ray, tmp_path):
    cfg = load_config(None, {**TINY, "num_workers": 2})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=1, progress=False)
    victim = trainer.workers.actor_pids()[0]
    metrics = tmp_path / "run" / "metrics.jsonl"

    def kill_during_the_next_iterations():
        lines = len(metrics.read_text().splitlines())
        while len(metrics.read_text().splitlines()) < lines + 1:
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_during_the_next_iterations)
    killer.start()
    trainer.train(max_iterations=5, progress=False)
    killer.join()
    assert trainer.iteration == 6
    assert trainer.workers.restarts >= 1
    assert victim not in trainer.workers.actor_pids()
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert records[-1]["perf/worker_restarts"] >= 1
    # every iteration still trained on both workers' envs
    assert all(r["step"] == (i + 1) * 2 * 4 * 32 for i, r in enumerate(records))
    trainer.close()


def test_ray_rollouts_train_and_checkpoint(local_ray, tmp_path):
    cfg = load_config(None, {**TINY, "num_workers": 2, "algo": "grpo", "group_size": 2})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=2, progress=False)
    assert trainer.iteration == 2 and trainer.global_step > 0
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").exists()
    trainer.close()
    resumed = Trainer(cfg, tmp_path / "run", resume=True)
    resumed.train(max_iterations=1, progress=False)
    assert resumed.iteration == 3
    resumed.close()
