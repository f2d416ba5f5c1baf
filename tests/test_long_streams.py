"""Streams from 100 to 1,000,000 items at constant memory per env: an episode's peak memory must not
grow with its length."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import make

TASKS = ["Retrieval", "Conflict", "MultiHop", "TestTimeLearning"]


def run_episode(env_id: str, length: int, seed: int = 0, trace: bool = True):
    """SKIP mostly, with a random valid op every 101 steps (so the bank is used), optionally under
    tracemalloc. Returns (steps, episode-end metrics, peak traced bytes or 0)."""
    env = make(env_id, length=length)
    rng = np.random.default_rng(seed)
    if trace:
        tracemalloc.start()
    try:
        obs, _ = env.reset(seed=seed)
        step = env.step
        steps = 0
        while True:
            a = int(rng.choice(np.flatnonzero(obs["action_mask"]))) if steps % 101 == 0 else 0
            obs, _, terminated, truncated, info = step(a)
            steps += 1
            if terminated or truncated:
                break
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        tracemalloc.stop()
    assert terminated and not truncated and env.t == length
    return steps, info["metrics"], peak


@pytest.mark.parametrize("task", TASKS)
def test_traced_peak_does_not_grow_with_length(task):
    """tracemalloc counts numpy buffers too. The fixed per-env state is ~100 kB; 7,000 more items
    may add at most 50 kB, so anything kept per item (even one small Python object) fails."""
    env_id = f"memgym/{task}-Medium-v0"
    _, _, short = run_episode(env_id, 1_000)
    _, metrics, long = run_episode(env_id, 8_000)
    assert long <= short + 50_000, (short, long)
    assert long <= 1_000_000
    assert metrics["writes"] > 0  # the bank was used along the way


# ---- one million items, in a fresh process so its peak RSS is the episode's own -------------------

_CHILD = """
import json, resource, sys
sys.path.insert(0, {tests!r})
from test_long_streams import run_episode
steps, metrics, _ = run_episode(sys.argv[1], int(sys.argv[2]), trace=False)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"steps": steps, "metrics": metrics,
                  "peak_rss_mb": rss / (2**20 if sys.platform == "darwin" else 2**10)}}))
"""


def run_in_fresh_process(env_id: str, length: int) -> dict:
    code = _CHILD.format(tests=str(Path(__file__).parent))
    repo = Path(__file__).parents[1]
    proc = subprocess.run([sys.executable, "-c", code, env_id, str(length)], cwd=repo,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_million_item_stream_runs_at_constant_memory(task):
    """A 1,000,000-item episode runs to its end with the same peak RSS as a 10,000-item one (within
    10 MB: storing one float32 embedding per item would add ~128 MB, one small object ~30 MB)."""
    env_id = f"memgym/{task}-Medium-v0"
    short = run_in_fresh_process(env_id, 10_000)
    long = run_in_fresh_process(env_id, 1_000_000)
    assert long["steps"] >= 1_000_000
    assert long["peak_rss_mb"] <= short["peak_rss_mb"] + 10, (short, long)
    m = long["metrics"]
    Q = make(env_id).config.num_queries
    assert m["correct"] + m["stale"] + m["wrong"] + m["abstentions"] == Q  # every query scored
    assert m["writes"] > 1000  # the bank was used all along
    assert 0.0 < m["mean_utilisation"] <= 1.0
