"""Steady-state env steps per second of the streaming tasks' native vector envs, autoresets included.

`memgym bench envs` times each vector env for a couple of seconds right after `reset`: at 4096 envs
that is a few hundred vector steps, inside the first episode of almost every env, so it leaves out
episode generation at autoresets. Here each env first runs `--warmup` vector steps (past the first
episodes: a random policy takes ~2 steps per item, and Medium streams are 200-300 items), then
`--steps` more are timed. Actions are the same uniform pick among each row's valid actions as in
`memgym bench envs`. Figures are per wall-clock second and per CPU-second of this process (the
machine may be shared), with the load average.

Run it with `python -m memgym.benchmarks.vector_steady [--warmup 700] [--steps 500] [--envs 1024 4096]
[--json PATH]`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import time
from pathlib import Path

import gymnasium as gym

from memgym.benchmarks.envs_speed import RandomValidActions, memgym_ids


def measure(env_id: str, num_envs: int, warmup: int, steps: int, seed: int = 0) -> dict:
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    valid_pick = RandomValidActions(num_envs, int(env.single_action_space.n), seed)

    def pick(obs, i):
        return valid_pick(obs["action_mask"], i)

    obs, _ = env.reset(seed=seed)
    for i in range(warmup):
        obs = env.step(pick(obs, i))[0]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        obs = env.step(pick(obs, i))[0]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    n = steps * num_envs
    return {"env": env_id, "num_envs": num_envs, "warmup": warmup, "steps": steps,
            "steps_per_s": n / wall, "steps_per_cpu_s": n / cpu, "load_average": os.getloadavg()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=int, default=700, help="vector steps before the clock starts")
    p.add_argument("--steps", type=int, default=500, help="vector steps timed")
    p.add_argument("--envs", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    rows = []
    print(f"load average {os.getloadavg()}")
    for env_id in memgym_ids():
        for n in args.envs:
            r = measure(env_id, n, args.warmup, args.steps)
            rows.append(r)
            print(f"{env_id:<36} {n:>5} envs {r['steps_per_s']:>11,.0f} steps/s "
                  f"{r['steps_per_cpu_s']:>11,.0f} per CPU-s  load {r['load_average'][0]:.2f}",
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": _dt.datetime.now().astimezone().isoformat(
            timespec="seconds"), "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
