"""The SB3 backend: MaskablePPO runs our network, writes our run layout, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sb3_contrib")

from memgym.cli import main  # noqa: E402
from memgym.policies.networks import build_network  # noqa: E402
from memgym.trainers.checkpoint import load as load_checkpoint  # noqa: E402
from memgym.trainers.config import load_config  # noqa: E402
from memgym.trainers.loading import load_policy  # noqa: E402
from memgym.trainers.run import RunPaths  # noqa: E402
from memgym.trainers.sb3_backend import SB3Run, network_of, train_maskable_ppo  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = {"env": "memgym/Conflict-Easy-v0", "num_envs": 4, "rollout_steps": 64, "total_steps": 1024,
        "eval_every": 2, "eval_episodes": 4, "final_eval_episodes": 8, "time_limit_minutes": 0}
TINY_ARGS = [f"{k}={v}" for k, v in TINY.items()]


def tiny(**overrides):
    return load_config(ROOT / "configs" / "sb3_reference.yaml", {**TINY, **overrides})


def test_train_cli_writes_the_run_layout(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code = main(["train", str(ROOT / "configs" / "sb3_reference.yaml"), *TINY_ARGS,
                 "--name", "sb3", "--runs", str(tmp_path), "--no-progress"])
    assert code == 0
    run = tmp_path / "sb3"
    assert load_config(run / "config.yaml").algo.value == "maskable_ppo"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [256, 512, 768, 1024]  # 4 envs x 64 steps per iteration
    for key in ("train/return", "train/accuracy", "perf/steps_per_second", "loss/approx_kl",
                "loss/entropy", "loss/clip_fraction", "loss/explained_variance", "lr"):
        assert all(key in r for r in records), key
    assert [("eval/accuracy" in r) for r in records] == [False, True, False, True]
    assert records[0]["loss/entropy"] > 0  # SB3 logs -entropy; we store the entropy

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for key in ("train/return", "train/accuracy", "perf/steps_per_second", "eval/accuracy"):
        assert key in tags, key
    assert [e.step for e in acc.Scalars("train/return")] == [256, 512, 768, 1024]
    assert [e.step for e in acc.Scalars("eval/accuracy")] == [512, 1024]

    report = json.loads((run / "eval.json").read_text())
    assert report["episodes"] == 8 and report["training"] == {"algo": "maskable_ppo", "steps": 1024}
    assert (run / "learning_curve.png").stat().st_size > 0
    assert "oracle" in json.loads((run / "baseline_levels.json").read_text())
    assert (run / "checkpoints" / "latest.pt").exists()
    # Our loader (memgym eval --policy runs/<name>, export) reads the SB3 run's checkpoint.
    policy = load_policy(run)
    assert sum(p.numel() for p in policy.net.parameters()) == sum(
        p.numel() for p in build_network(load_config(run / "config.yaml").policy, _space(),
                                         64).parameters())
    assert "trained" in capsys.readouterr().out


def _space():
    import gymnasium as gym

    return gym.make("memgym/Conflict-Easy-v0").observation_space


def test_sb3_policy_is_our_network_and_training_changes_it(tmp_path):
    cfg = tiny(total_steps=512)
    torch.manual_seed(cfg.seed)  # SB3 seeds torch with cfg.seed before building the policy
    before = build_network(cfg.policy, _space(), cfg.hidden)
    run = SB3Run(cfg, RunPaths(tmp_path / "run"))
    net = network_of(run.model)
    # Same architecture, same initial weights as our PPO starts from.
    for (name, a), b in zip(before.state_dict().items(), net.state_dict().values()):
        assert torch.equal(a, b), name
    try:
        run.train(progress=False)
    finally:
        run.close()
    assert any(not torch.equal(a, b) for a, b in zip(before.state_dict().values(),
                                                      net.state_dict().values()))
    # SB3's masked distribution is exactly the softmax of our network's logits.
    env = run.model.get_env()
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):  # move into the stream so the slots hold something
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in obs["action_mask"]])
        obs, *_ = env.step(actions)
    masks = obs["action_mask"].astype(bool)
    tobs, _ = run.model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        dist = run.model.policy.get_distribution(tobs, action_masks=masks)
        logits, _, _ = net(tobs)
    np.testing.assert_allclose(dist.distribution.probs.numpy(),
                               torch.softmax(logits, -1).numpy(), atol=1e-6)
    greedy, _ = run.model.predict(obs, action_masks=masks, deterministic=True)
    policy = run.policy()
    policy.reset(len(masks))
    np.testing.assert_array_equal(policy.act(obs), greedy)
    assert masks[np.arange(len(masks)), greedy].all()


def test_resumed_run_equals_uninterrupted(tmp_path):
    whole = train_maskable_ppo(tiny(), RunPaths(tmp_path / "whole"), progress=False)
    paths = RunPaths(tmp_path / "split")
    first = train_maskable_ppo(tiny(), paths, progress=False, max_iterations=2)
    assert first.global_step == 512
    second = train_maskable_ppo(load_config(paths.config), paths, resume=True, progress=False)
    assert second.global_step == 1024 and second.iteration == 4
    a, b = network_of(whole.model).state_dict(), network_of(second.model).state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    strip = lambda h: [(x["step"], x["accuracy"], x["return"]) for x in h]  # noqa: E731
    assert strip(whole.history) == strip(second.history)
    records = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]


def test_resume_refuses_a_run_it_did_not_write(tmp_path):
    from memgym.trainers.checkpoint import CheckpointError
    from memgym.trainers.run import Trainer

    cfg = load_config(None, {**TINY, "total_steps": 256})
    trainer = Trainer(cfg, tmp_path / "ppo")
    trainer.train(progress=False)
    trainer.close()
    assert "sb3_model" not in load_checkpoint(tmp_path / "ppo")
    with pytest.raises(CheckpointError, match="different config|maskable_ppo"):
        SB3Run(tiny(total_steps=256), RunPaths(tmp_path / "ppo"), resume=True)
