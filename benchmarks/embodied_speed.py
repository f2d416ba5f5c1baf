"""Steps per second of the embodied family's native vector envs at 1024 and 4096 envs, beside
`SyncVectorEnv` of POPGym RepeatPreviousEasy and MiniGrid-MemoryS13 measured in the same run.

Every env takes uniformly random valid actions (drawn from a table made before the clock starts;
POPGym and MiniGrid have no invalid actions). Each figure is reported twice: per wall-clock second
and per CPU-second of this process, because the machine may be shared with other jobs and the
CPU figure is what the code costs.

Run it with `python -m memgym.benchmarks.embodied_speed [--seconds S] [--envs 1024 4096] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.benchmarks.envs_speed import VECTOR_WARMUP, RandomValidActions
from memgym.envs.registration import registered_ids

LEVEL = "Medium"
REFERENCES = {"popgym": "popgym-RepeatPreviousEasy-v0", "minigrid": "MiniGrid-MemoryS13-v0"}
_TABLE = 16  # pre-drawn random tables, cycled


def measure(vec, seconds: float, seed: int = 0, warmup: int = VECTOR_WARMUP) -> dict[str, float]:
    """Step `vec` with random valid actions for about `seconds`, after `warmup` untimed steps
    (past every env's first episode, so autoresets are in the figure at their steady rate)."""
    obs, _ = vec.reset(seed=seed)
    n_envs, n_actions = vec.num_envs, vec.single_action_space.n
    masked = isinstance(obs, dict) and "action_mask" in obs
    valid_pick = RandomValidActions(n_envs, n_actions, seed)
    uniform = np.random.default_rng(seed).integers(n_actions, size=(_TABLE, n_envs))

    def act(obs, k):
        return valid_pick(obs["action_mask"], k) if masked else uniform[k % _TABLE]

    for k in range(warmup):
        obs, *_ = vec.step(act(obs, k))
    steps, k = 0, 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        obs, *_ = vec.step(act(obs, k))
        steps, k = steps + n_envs, k + 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"steps": steps, "steps_per_s": steps / wall, "steps_per_cpu_s": steps / max(cpu, 1e-9)}


def reference(suite: str, env_id: str, n_envs: int):
    try:
        __import__(suite)
    except ImportError:
        return None
    return gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)])


def run(seconds: float, sizes: list[int]) -> dict:
    rows = []
    for n in sizes:
        for eid in [i for i in registered_ids("embodied") if f"-{LEVEL}-" in i]:
            vec = gym.make_vec(eid, num_envs=n, vectorization_mode="vector_entry_point")
            rows.append({"env": eid, "num_envs": n, "kind": "native", **measure(vec, seconds)})
        for suite, eid in REFERENCES.items():
            vec = reference(suite, eid, n)
            if vec is not None:
                # Each of its envs resets on its own (episodes start out of step), and a warm-up
                # of MiniGrid at this many envs would take minutes.
                rows.append({"env": eid, "num_envs": n, "kind": "SyncVectorEnv",
                             **measure(vec, seconds, warmup=0)})
    return {"date": _dt.date.today().isoformat(), "seconds": seconds, "results": rows}


def table(result: dict) -> str:
    lines = [f"{'env':<34} {'envs':>5} {'kind':<13} {'steps/s':>11} {'per CPU-s':>11}"]
    for r in result["results"]:
        lines.append(f"{r['env']:<34} {r['num_envs']:>5} {r['kind']:<13} "
                     f"{r['steps_per_s']:>11,.0f} {r['steps_per_cpu_s']:>11,.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    p.add_argument("--envs", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--json", help="write the figures as JSON here")
    args = p.parse_args(argv)
    result = run(args.seconds, args.envs)
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
