"""The oracle (Belady's rule on the hidden future) is the ceiling: return 1.0 wherever the task is
solvable within capacity, and exactly the capacity bound where it is not."""

from __future__ import annotations

import pytest
from helpers import EASY_MEDIUM_IDS, HARD_IDS, task_of

from memgym.evaluation import evaluate
from memgym.policies import OraclePolicy

EPISODES = 12


def assert_perfect(result) -> None:
    ep = result.per_episode
    assert len(ep["return"]) == result.episodes
    for i, ret in enumerate(ep["return"]):
        assert ret == pytest.approx(1.0, abs=1e-9), f"episode {i} (seed {result.seed + i})"
    assert ep["accuracy"] == [1.0] * result.episodes
    for name in ("stale", "abstentions", "wrong", "lost_items", "invalid_actions"):
        assert ep[name] == [0] * result.episodes, name


@pytest.mark.parametrize("env_id", EASY_MEDIUM_IDS)
def test_oracle_is_perfect_at_easy_and_medium(env_id):
    assert_perfect(evaluate(OraclePolicy(), env_id, EPISODES, seed=100, progress=False))


@pytest.mark.parametrize("env_id", EASY_MEDIUM_IDS)
def test_oracle_is_perfect_with_interleaved_queries(env_id):
    result = evaluate(
        OraclePolicy(), env_id, EPISODES, seed=200, progress=False,
        env_kwargs={"query_schedule": "interleaved"},
    )
    assert_perfect(result)


@pytest.mark.parametrize("task", ["Retrieval", "Conflict", "MultiHop", "TestTimeLearning"])
def test_oracle_is_perfect_with_write_cost_and_long_stream(task):
    """A longer stream than the preset, with a write cost: still every answer right, and the
    return is exactly 1 minus the cost of the writes the oracle made."""
    cost = 0.001
    result = evaluate(
        OraclePolicy(), f"memgym/{task}-Medium-v0", 4, seed=300, progress=False,
        env_kwargs={"length": 3000, "write_cost": cost},
    )
    ep = result.per_episode
    assert ep["accuracy"] == [1.0] * 4
    for ret, writes, edits in zip(ep["return"], ep["writes"], ep["edits"]):
        assert writes + edits > 0
        assert ret == pytest.approx(1.0 - cost * (writes + edits), abs=1e-9)


def test_oracle_accuracy_is_the_capacity_bound_when_capacity_binds():
    """8 facts, each asked once at the end, 4 slots: the best possible is to keep 4 of them, and the
    oracle does exactly that in every episode."""
    result = evaluate(
        OraclePolicy(), "memgym/Retrieval-Medium-v0", 10, seed=0, progress=False,
        env_kwargs={"capacity": 4, "num_facts": 8, "num_queries": 8},
    )
    assert result.per_episode["accuracy"] == [0.5] * 10
    assert result.per_episode["lost_items"] == [4] * 10


@pytest.mark.slow
@pytest.mark.parametrize("env_id", HARD_IDS)
def test_oracle_at_hard(env_id):
    result = evaluate(OraclePolicy(), env_id, 30, seed=400, progress=False)
    acc = result.per_episode["accuracy"]
    assert min(acc) >= 0.95, f"{task_of(env_id)}: worst episode accuracy {min(acc)}"
    assert sum(acc) / len(acc) >= 0.99
