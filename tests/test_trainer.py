"""The on-policy core end to end: learning moves parameters, resume == uninterrupted, logs read
back, config errors stop before work."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from memgym.cli import main
from memgym.trainers.checkpoint import CheckpointError
from memgym.trainers import config as config_module
from memgym.trainers.config import ConfigError, load_config, native_bf16
from memgym.trainers.run import Trainer

needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16")
TINY = dict(env="memgym/Conflict-Easy-v0", num_envs=8, rollout_steps=32, minibatches=2,
            epochs=2, eval_every=2, eval_episodes=4, checkpoint_every=2, total_steps=10_000_000)


def _params(net):
    return torch.cat([p.detach().flatten().clone() for p in net.parameters()])


@pytest.mark.parametrize("algo, options", [
    ("ppo", {}),
    ("ppo", {"critic": "privileged", "discount_clock": "advance"}),
    ("grpo", {}),
    ("grpo", {"grpo_credit": "to_go"}),
    ("ppo", {"env": "memgym/ObjectRecall-Easy-v0", "query_addressing": True, "store_novelty": True,
             "rollout_steps": 128}),  # long enough to reach a cue
    ("grpo", {"env": "memgym/ObjectRecall-Easy-v0", "query_addressing": True, "store_novelty": True}),
    pytest.param("ppo", {"precision": "bf16"}, marks=needs_bf16),
    pytest.param("grpo", {"precision": "bf16"}, marks=needs_bf16),
    pytest.param("ppo", {"precision": "bf16", "policy": "recurrent"}, marks=needs_bf16),
    pytest.param("ppo", {"precision": "bf16", "policy": "slot_attention"}, marks=needs_bf16),
])
def test_one_iteration_changes_every_layer(tmp_path, algo, options):
    cfg = load_config(None, {**TINY, "algo": algo, "group_size": 4, **options})
    trainer = Trainer(cfg, tmp_path / "run")
    before = {n: p.detach().clone() for n, p in trainer.net.named_parameters()}
    trainer.train(max_iterations=1, progress=False)
    trainer.close()
    unchanged = [n for n, p in trainer.net.named_parameters() if torch.equal(p, before[n])]
    # GRPO has no critic: its value head is the one part that must not move.
    if algo == "grpo":
        assert all(n.startswith("value_head") for n in unchanged), unchanged
    else:
        assert unchanged == []


@pytest.mark.parametrize("options", [{}, {"critic": "privileged", "discount_clock": "advance"},
                                     {"algo": "grpo", "group_size": 4},
                                     pytest.param({"precision": "bf16"}, marks=needs_bf16)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, options):
    cfg = load_config(None, {**TINY, **options})
    straight = Trainer(cfg, tmp_path / "a")
    straight.train(max_iterations=4, progress=False)
    straight.close()

    first = Trainer(cfg, tmp_path / "b")
    first.train(max_iterations=2, progress=False)  # checkpoints at the end
    first.close()
    resumed = Trainer(load_config(tmp_path / "b" / "config.yaml"), tmp_path / "b", resume=True)
    assert resumed.iteration == 2
    resumed.train(max_iterations=2, progress=False)
    resumed.close()

    assert torch.equal(_params(straight.net), _params(resumed.net))
    last_a = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    last_b = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("step", "train/return", "loss/policy_loss", "loss/entropy", "eval/accuracy"):
        assert last_a[key] == last_b[key], key


def test_a_privileged_critic_needs_an_env_that_has_one(tmp_path):
    # Every registered id has a native vector env with the features; an id without one (a user's
    # own, run through SyncVectorEnv) has none.
    spec = gym.spec("memgym/ObjectRecall-Easy-v0")
    gym.register("memgym-test/NoNativeVector-v0", entry_point=spec.entry_point, kwargs=spec.kwargs)
    try:
        cfg = load_config(None, {**TINY, "env": "memgym-test/NoNativeVector-v0",
                                 "critic": "privileged"})
        with pytest.raises(ConfigError, match="set critic=observation"):
            Trainer(cfg, tmp_path / "run")
    finally:
        del gym.registry["memgym-test/NoNativeVector-v0"]


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    cfg = load_config(None, TINY)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=1, progress=False)
    trainer.close()
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(cfg, tmp_path / "run", resume=True)
    assert main(["eval", "--policy", str(tmp_path / "run"), "--env", "memgym/Conflict-Easy-v0",
                 "--episodes", "1"]) == 2


def test_tensorboard_events_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(None, TINY)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=2, progress=False)
    trainer.close()
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("train/return", "loss/entropy", "loss/approx_kl", "loss/clip_fraction",
                "loss/explained_variance", "perf/steps_per_second", "eval/accuracy"):
        assert tag in tags, tag
    steps = [e.step for e in acc.Scalars("loss/entropy")]
    assert steps == [8 * 32, 2 * 8 * 32]


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"lrr": 1e-3}, "did you mean 'lr'"),
        ({"algo": "ppoo"}, "did you mean 'ppo'"),
        ({"algo": "grpo", "num_envs": 10, "group_size": 4}, "not divisible by group_size"),
        ({"num_envs": 8, "rollout_steps": 3, "minibatches": 5}, "not divisible by"),
        ({"lr": "fast"}, "lr must be float"),
        ({"num_workers": -1}, "num_workers"),
        ({"algo": "grpo", "critic": "privileged"}, "critic=privileged is for algo=ppo"),
        ({"grpo_credit": "togo"}, "did you mean 'to_go'"),
        ({"discount_clock": "item"}, "discount_clock"),
        ({"overlap": True}, "set num_workers >= 1"),
        ({"novelty_threshold": 1.0}, r"novelty_threshold must be in \[0, 1\)"),
        ({"precision": "fp16"}, "precision='fp16' is not one of"),
        ({"algo": "maskable_ppo", "precision": "bf16"}, "precision=bf16 is for algo=ppo or grpo"),
    ],
)
def test_config_errors_name_the_key(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(None, overrides)


def test_bf16_is_refused_where_the_cpu_would_emulate_it(monkeypatch):
    monkeypatch.setattr(config_module, "native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="no native bfloat16.*set precision=fp32"):
        load_config(None, {"precision": "bf16"})
    assert load_config(None, {"precision": "fp32"}).precision.value == "fp32"
    assert load_config(None, {"precision": "auto"}).precision.value == "fp32"


def test_auto_precision_is_bf16_only_where_native_and_ours(monkeypatch):
    monkeypatch.setattr(config_module, "native_bf16", lambda: True)
    assert load_config(None, {"precision": "auto"}).precision.value == "bf16"
    assert load_config(None, {"precision": "auto", "algo": "grpo"}).precision.value == "bf16"
    sb3 = load_config(None, {"precision": "auto", "algo": "maskable_ppo"})
    assert sb3.precision.value == "fp32"


@needs_bf16
def test_a_bf16_update_follows_the_float32_gradient(tmp_path):
    """One minibatch, one epoch, the same batch and weights: the bf16 update moves the weights
    nearly as the float32 one does (it is the same loss, rounded), but not identically (autocast
    did run)."""
    moves = {}
    for precision in ("fp32", "bf16"):
        cfg = load_config(None, {**TINY, "epochs": 1, "minibatches": 1, "precision": precision,
                                 "anneal_lr": False})
        trainer = Trainer(cfg, tmp_path / precision)
        before = _params(trainer.net)
        trainer.train(max_iterations=1, progress=False)
        trainer.close()
        moves[precision] = _params(trainer.net) - before
    a, b = moves["fp32"], moves["bf16"]
    assert not torch.equal(a, b)
    # Adam's first step is ~lr * sign(grad): the weights that move, move the same way.
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) > 0.99


def test_train_cli_config_errors_exit_2_before_work(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("env: memgym/Conflict-Easy-v0\nlearning_rate: 0.1\n")
    assert main(["train", str(cfg), "--runs", str(tmp_path)]) == 2
    assert "unknown config key 'learning_rate'" in capsys.readouterr().err
    cfg.write_text("env: memgym/Conflct-Easy-v0\n")
    assert main(["train", str(cfg), "--runs", str(tmp_path)]) == 2
    assert "did you mean" in capsys.readouterr().err
    cfg.write_text("env: memgym/Conflict-Easy-v0\nenv_kwargs: {lenght: 100}\n")
    assert main(["train", str(cfg), "--runs", str(tmp_path)]) == 2
    assert "did you mean 'length'" in capsys.readouterr().err
    assert not any((tmp_path).glob("c-*"))  # no run folder was started


def test_train_cli_writes_the_run_layout_and_eval_reads_it(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("\n".join(f"{k}: {v}" for k, v in {**TINY, "total_steps": 512,
                                                      "final_eval_episodes": 4}.items()))
    assert main(["train", str(cfg), "--name", "t", "--runs", str(tmp_path), "--no-progress"]) == 0
    run = tmp_path / "t"
    for name in ("config.yaml", "metrics.jsonl", "eval.json", "learning_curve.png",
                 "baseline_levels.json", "checkpoints/latest.pt"):
        assert (run / name).exists(), name
    report = json.loads((run / "eval.json").read_text())
    assert {"env", "policy", "episodes", "seed", "env_kwargs", "metrics"} <= set(report)
    assert report["episodes"] == 4 and "accuracy" in report["metrics"]
    levels = json.loads((run / "baseline_levels.json").read_text())
    assert levels["oracle"] == 1.0
    capsys.readouterr()
    assert main(["eval", "--policy", str(run), "--env", "memgym/Conflict-Easy-v0",
                 "--episodes", "3", "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["episodes"] == 3
    # a second train with the same name refuses instead of overwriting
    assert main(["train", str(cfg), "--name", "t", "--runs", str(tmp_path)]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_a_short_run_raises_the_return(tmp_path, algo):
    """Conflict-Easy: from a random policy (~0.03) to clearly better within ~60k steps."""
    # GRPO's advantage has no critic to smooth it: it needs the larger step to move in 40 updates.
    cfg = load_config(None, {**TINY, "algo": algo, "num_envs": 16, "rollout_steps": 64,
                             "group_size": 8, "lr": 1e-3 if algo == "ppo" else 3e-3,
                             "eval_every": 1000})
    trainer = Trainer(cfg, tmp_path / "run")
    start = trainer.evaluate(64)["accuracy"]
    trainer.train(max_iterations=60 if algo == "ppo" else 40, progress=False)
    end = trainer.evaluate(64)["accuracy"]
    trainer.close()
    assert end >= start + 0.15, (start, end)


@pytest.mark.parametrize("env_id", ["memgym/Conflict-Easy-v0", "memgym/ObjectRecall-Easy-v0"])
def test_a_checkpoint_from_before_the_newer_options_loads_as_it_ran(tmp_path, env_id):
    from memgym.trainers import checkpoint
    from memgym.trainers.loading import load_policy

    cfg = load_config(None, {**TINY, "env": env_id, "addressing": False, "critic": "observation",
                             "discount_clock": "step", "query_addressing": False,
                             "store_novelty": False})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=1, progress=False)
    trainer.close()
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    payload = torch.load(latest, weights_only=False)
    for key in checkpoint.PREDATING:  # what an older release wrote
        del payload["config"][key]
    torch.save(payload, latest)
    policy = load_policy(tmp_path / "run")
    assert policy.net.addressing is None and policy.net.query_addressing is None
    assert policy.net.store_novelty is None
    assert torch.equal(_params(policy.net), _params(trainer.net))


def test_a_checkpoint_from_before_the_novelty_threshold_keeps_its_linear_novelty(tmp_path):
    from memgym.trainers.loading import load_policy

    cfg = load_config(None, {**TINY, "env": "memgym/ObjectRecall-Easy-v0", "store_novelty": True})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=1, progress=False)
    trainer.close()
    assert trainer.net.novelty_threshold == cfg.novelty_threshold > 0
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    payload = torch.load(latest, weights_only=False)
    del payload["config"]["novelty_threshold"]  # what a run before it wrote
    torch.save(payload, latest)
    assert load_policy(tmp_path / "run").net.novelty_threshold == 0.0


def test_an_embodied_checkpoint_from_before_its_privileged_critic_still_evaluates(tmp_path):
    from memgym.trainers import checkpoint
    from memgym.trainers.loading import load_policy

    cfg = load_config(None, {**TINY, "env": "memgym/ObjectRecall-Easy-v0"})
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.net.privileged_dim > 0  # `critic: auto` now gives embodied tasks one
    trainer.train(max_iterations=1, progress=False)
    trainer.close()
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    payload = torch.load(latest, weights_only=False)
    # What the previous release wrote for the same config: a value head without those inputs.
    space = gym.make(cfg.env).observation_space
    old = cfg.network(space, privileged_dim=0).state_dict()
    payload["net"] = old
    torch.save(payload, latest)
    policy = load_policy(tmp_path / "run")
    assert policy.net.privileged_dim == 0
    with pytest.raises(checkpoint.CheckpointError, match="cannot be resumed"):
        Trainer(load_config(tmp_path / "run" / "config.yaml"), tmp_path / "run", resume=True)


@needs_bf16
def test_a_bf16_run_evaluates_where_the_cpu_has_no_bfloat16(tmp_path, monkeypatch):
    """Precision concerns the update only: evaluation and rollout workers load such a run
    anywhere, while training it again there is refused before any work."""
    from memgym.trainers.loading import load_policy
    from memgym.trainers.rollout import RolloutWorker

    cfg = load_config(None, {**TINY, "precision": "bf16"})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train(max_iterations=2, progress=False)
    trainer.close()
    monkeypatch.setattr(config_module, "native_bf16", lambda: False)
    policy = load_policy(tmp_path / "run")
    assert sum(p.numel() for p in policy.net.parameters()) > 0
    RolloutWorker(cfg.to_dict(), seed=0).close()
    with pytest.raises(ConfigError, match="no native bfloat16"):
        load_config(tmp_path / "run" / "config.yaml")
