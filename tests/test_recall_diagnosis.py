"""`memgym.benchmarks.recall_diagnosis`: what it reports agrees with `memgym eval` on the same
held-out episodes, and its cases cover every step where an object is the item."""

from __future__ import annotations

import numpy as np
import pytest

from memgym.benchmarks.recall_diagnosis import diagnose
from memgym.policies.evaluation import evaluate
from memgym.trainers.config import load_config
from memgym.trainers.loading import load_policy
from memgym.trainers.run import Trainer

TINY = dict(env="memgym/ObjectRecall-Easy-v0", num_envs=8, rollout_steps=32, minibatches=2,
            epochs=1, eval_every=100, eval_episodes=4, checkpoint_every=1, total_steps=10_000_000,
            store_novelty=True, query_addressing=True)


def _run(tmp_path, **overrides):
    trainer = Trainer(load_config(None, {**TINY, **overrides}), tmp_path / "run")
    trainer.train(max_iterations=1, progress=False)
    trainer.close()
    return tmp_path / "run"


def test_diagnosis_agrees_with_eval_on_the_same_episodes(tmp_path):
    run = _run(tmp_path)
    d = diagnose(str(run), episodes=6, seed=123)
    reference = evaluate(load_policy(run), TINY["env"], 6, seed=123, progress=False)
    assert d.success == pytest.approx(reference.summary()["success"]["mean"])
    assert d.stores == pytest.approx(reference.summary()["writes"]["mean"])
    assert sum(d.objects_attended) == pytest.approx(1.0)
    assert 1.0 <= d.cells_explored <= 25.0  # at least the start cell; the room is 5 x 5
    assert sum(d.samples.values()) > 0
    for case in ("first", "other", "copy"):
        p = getattr(d, f"p_store_{case}")
        assert (np.isnan(p) and d.samples[case] == 0) or 0.0 <= p <= 1.0


def test_diagnosis_refuses_a_run_of_another_task(tmp_path):
    run = _run(tmp_path, env="memgym/Conflict-Easy-v0", store_novelty=False,
               query_addressing=False)
    with pytest.raises(ValueError, match="not an ObjectRecall task"):
        diagnose(str(run), episodes=1)
