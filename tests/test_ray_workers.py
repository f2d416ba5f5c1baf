"""Rollouts on Ray actors: a worker killed mid-run is restarted while the run goes on; checkpoints
resume; with `overlap`, collection runs beside the update and a resumed run still equals the
uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch

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


def _params(net):
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


def _records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_overlap_starts_with_the_synchronous_batch_then_lags_one_update(local_ray, tmp_path):
    # Both runs collect their first batch with the initial weights, so their first iterations
    # agree; the overlapped run's second batch was started before the first update, so it was
    # collected by the initial policy too, and the runs part.
    runs = {}
    for overlap in (False, True):
        cfg = load_config(None, {**TINY, "num_workers": 1, "overlap": overlap})
        trainer = Trainer(cfg, tmp_path / str(overlap))
        trainer.train(max_iterations=2, progress=False)
        trainer.close()
        runs[overlap] = _records(tmp_path / str(overlap))
    sync, lagged = runs[False], runs[True]
    for key in ("train/return", "loss/policy_loss", "loss/entropy"):
        assert sync[0][key] == lagged[0][key], key
    assert sync[1]["loss/policy_loss"] != lagged[1]["loss/policy_loss"]
    assert lagged[1]["step"] == 2 * 4 * 32


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_overlapped_resume_equals_the_uninterrupted_run(local_ray, tmp_path, algo):
    cfg = load_config(None, {**TINY, "num_workers": 1, "overlap": True, "algo": algo,
                             "group_size": 2})
    straight = Trainer(cfg, tmp_path / "a")
    straight.train(max_iterations=4, progress=False)
    straight.close()

    first = Trainer(cfg, tmp_path / "b")
    first.train(max_iterations=2, progress=False)  # its next batch is in flight when it saves
    first.close()
    resumed = Trainer(load_config(tmp_path / "b" / "config.yaml"), tmp_path / "b", resume=True)
    resumed.train(max_iterations=2, progress=False)
    resumed.close()

    assert torch.equal(_params(straight.net), _params(resumed.net))
    a, b = _records(tmp_path / "a"), _records(tmp_path / "b")
    for key in ("step", "train/return", "loss/policy_loss", "loss/entropy"):
        assert a[-1][key] == b[-1][key], key


def test_bench_train_times_the_overlapped_trainer_by_the_wall_clock_only(local_ray):
    pytest.importorskip("sb3_contrib")
    from memgym.benchmarks.train_speed import SIDES, run_bench, summary

    result = run_bench(steps=200, rounds=1, log=lambda _: None, overlap=True,
                       env="memgym/Conflict-Easy-v0", num_envs=4, rollout_steps=64)
    payload = result.to_json()
    assert payload["overlap"] is True and payload["cpu_ratio"] is None
    assert payload["ratio"] == pytest.approx(
        payload["steps_per_s"][SIDES[0]] / payload["steps_per_s"][SIDES[1]])
    assert "num_workers 1, overlap" in summary(result)
