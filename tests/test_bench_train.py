"""`memgym bench train`: both trainers timed on the same batch, the ratio written out."""

from __future__ import annotations

import pytest

pytest.importorskip("sb3_contrib")

from memgym.benchmarks.train_speed import SIDES, run_bench, summary  # noqa: E402
from memgym.cli import main  # noqa: E402
from memgym.trainers.config import native_bf16  # noqa: E402

SMALL = {"env": "memgym/Conflict-Easy-v0", "num_envs": 4, "rollout_steps": 64}


def test_both_trainers_run_the_same_network_and_steps():
    result = run_bench(steps=200, rounds=2, log=lambda _: None, **SMALL)
    assert result.parameters[SIDES[0]] == result.parameters[SIDES[1]] > 0
    assert [(t.side, t.round, t.steps) for t in result.timings] == [
        (SIDES[0], 0, 256), (SIDES[1], 0, 256), (SIDES[0], 1, 256), (SIDES[1], 1, 256)]
    payload = result.to_json()
    assert payload["ratio"] == pytest.approx(
        payload["steps_per_s"][SIDES[0]] / payload["steps_per_s"][SIDES[1]])
    assert "ratio ours / SB3" in summary(result)


def test_bench_train_cli_errors_exit_2(capsys):
    assert main(["bench", "train", "--steps", "0"]) == 2
    assert main(["bench", "train", "--policy", "recurrent"]) == 2
    err = capsys.readouterr().err
    assert "--steps and --rounds must be >= 1" in err and "recurrent" in err


def test_bench_envs_is_still_there():
    # The envs bench shares the subcommand; its argument checking still answers.
    assert main(["bench", "envs", "--seconds", "0"]) == 2


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16")
def test_a_bf16_bench_runs_ours_in_bf16_and_sb3_in_float32():
    result = run_bench(steps=200, rounds=1, log=lambda _: None, precision="bf16", **SMALL)
    assert result.config["precision"] == "bf16"
    assert result.parameters[SIDES[0]] == result.parameters[SIDES[1]]
    assert "bf16 update" in summary(result)
