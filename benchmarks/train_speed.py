"""Training steps/s of memgym's PPO beside sb3-contrib's MaskablePPO, measured in one run.

Both train on `memgym/Conflict-Medium-v0` with the same network (the default of `TrainConfig`,
or `--policy`, hidden 64: SB3 runs our network through `trainers/sb3_backend.py`, so parameter
count and initialisation are identical), the same batch (num_envs x rollout_steps), epochs and
minibatches, one torch thread each, no held-out evaluation or checkpoints inside the timed part.

Ours is `Trainer.train()` from `trainers/run.py` with `num_workers: 0` (rollouts in-process, no
Ray), exactly as `memgym train` drives it, metrics and TensorBoard writes included. SB3's is
`MaskablePPO.learn()` with its default `DummyVecEnv` and masks from `env.action_masks()`, as a
user of sb3-contrib runs it. Each side first trains a warm-up iteration, then the timed
iterations; the two sides alternate for `rounds` rounds so a noisy machine hits both alike. We
report steps/s over wall time and over process CPU time (the latter barely moves when other jobs
share the machine), per round, and the ratio ours / SB3 of the medians.

With `--overlap`, ours collects on one Ray rollout worker while its learner updates
(`overlap: true`: the next batch comes from the weights before the update). Its work then runs in
two processes, so only the wall-clock ratio compares like with like; the CPU-time one is left out.

With `--precision bf16`, ours runs its update under bfloat16 autocast (`precision: bf16`); SB3
stays in float32, as sb3-contrib trains. Network, batch and parameters are still the same.

Run it with `memgym bench train [--json PATH] [--steps N] [--rounds R] [--policy NET] [--overlap]
[--precision bf16]`.
"""

from __future__ import annotations

import datetime as _dt
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

ENV_ID = "memgym/Conflict-Medium-v0"
SIDES = ("memgym_ppo", "sb3_maskable_ppo")


def bench_config(**overrides):
    """The quickstart batch on Conflict-Medium with the default network (`TrainConfig.policy`);
    evaluation and checkpoints kept out of the way."""
    from memgym.trainers.config import TrainConfig

    settings = dict(env=ENV_ID, algo="ppo", hidden=64, num_envs=32,
                    rollout_steps=128, epochs=4, minibatches=4, lr=1e-3, anneal_lr=False,
                    total_steps=10**9, eval_every=10**6, checkpoint_every=10**6, num_workers=0,
                    torch_threads=1, seed=0,
                    # Like for like: SB3's critic sees the observation only and discounts every
                    # action, so ours does the same here (same parameter count, same work).
                    critic="observation", discount_clock="step")
    settings.update(overrides)
    return TrainConfig(**settings)


@dataclass
class Timing:
    side: str
    round: int
    steps: int
    seconds: float
    cpu_seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    @property
    def cpu_steps_per_s(self) -> float:
        return self.steps / self.cpu_seconds


@dataclass
class TrainBenchResult:
    date: str
    command: str
    config: dict[str, Any]
    parameters: dict[str, int]
    machine: dict[str, Any]
    timings: list[Timing] = field(default_factory=list)
    overlap: bool = False  # ours collected on a Ray worker: its CPU time is not all in this process

    def median(self, side: str, cpu: bool = False) -> float:
        return statistics.median(t.cpu_steps_per_s if cpu else t.steps_per_s
                                 for t in self.timings if t.side == side)

    def ratio(self, cpu: bool = False) -> float | None:
        """Ours over SB3's steps/s (medians over rounds); no CPU-time ratio when ours overlaps."""
        if cpu and self.overlap:
            return None
        return self.median(SIDES[0], cpu) / self.median(SIDES[1], cpu)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date, "command": self.command, "env": ENV_ID, "config": self.config,
            "parameters": self.parameters, "machine": self.machine,
            "timings": [asdict(t) | {"steps_per_s": t.steps_per_s,
                                     "cpu_steps_per_s": t.cpu_steps_per_s} for t in self.timings],
            "steps_per_s": {s: self.median(s) for s in SIDES},
            "cpu_steps_per_s": {s: self.median(s, cpu=True) for s in SIDES},
            "ratio": self.ratio(), "cpu_ratio": self.ratio(cpu=True), "overlap": self.overlap,
        }


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_bench(steps: int = 32_768, rounds: int = 2, command: str = "memgym bench train",
              log: Callable[[str], None] = print, overlap: bool = False,
              precision: str = "fp32", **overrides) -> TrainBenchResult:
    """Time `steps` env steps (rounded up to whole batches) per side per round."""
    import torch

    from memgym.benchmarks.envs_speed import machine_info
    from memgym.trainers.run import Trainer
    from memgym.trainers.sb3_backend import build_model, make_sb3_env, network_of

    cfg = bench_config(**overrides, precision=precision,
                       **(dict(num_workers=1, overlap=True) if overlap else {}))
    batch = cfg.num_envs * cfg.rollout_steps
    iterations = max(1, -(-steps // batch))
    torch.set_num_threads(cfg.torch_threads)

    with tempfile.TemporaryDirectory(prefix="memgym-bench-train-") as tmp:
        ours = Trainer(cfg, f"{tmp}/ours")
        sb3_cfg = bench_config(**{**overrides, "algo": "maskable_ppo"})
        sb3_env = make_sb3_env(sb3_cfg)
        sb3 = build_model(sb3_cfg, sb3_env)
        count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
        result = TrainBenchResult(
            date=_dt.datetime.now().astimezone().isoformat(timespec="seconds"), command=command,
            config={k: v for k, v in cfg.to_dict().items()
                    if k in ("env", "policy", "hidden", "num_envs", "rollout_steps", "epochs",
                             "minibatches", "torch_threads", "precision")},
            parameters={SIDES[0]: count(ours.net), SIDES[1]: count(sb3.policy)},
            machine=machine_info() | {"torch": torch.__version__}, overlap=overlap,
        )
        log(f"parameters: ours {result.parameters[SIDES[0]]:,}, SB3 {result.parameters[SIDES[1]]:,}"
            f"; {iterations} iterations of {batch} steps per side per round")
        if count(network_of(sb3)) != result.parameters[SIDES[1]]:
            raise RuntimeError("the SB3 policy has parameters outside our network")
        try:
            ours.train(max_iterations=1, progress=False)  # warm-up
            sb3.learn(batch, log_interval=None, reset_num_timesteps=False)
            for r in range(rounds):
                wall, cpu = _timed(lambda: ours.train(max_iterations=iterations, progress=False))
                result.timings.append(Timing(SIDES[0], r, iterations * batch, wall, cpu))
                wall, cpu = _timed(lambda: sb3.learn(iterations * batch, log_interval=None,
                                                     reset_num_timesteps=False))
                result.timings.append(Timing(SIDES[1], r, iterations * batch, wall, cpu))
                for t in result.timings[-2:]:
                    log(f"  round {r}: {t.side:<17} {t.steps_per_s:>8,.0f} steps/s "
                        f"({t.cpu_steps_per_s:,.0f} per CPU-second)")
        finally:
            ours.close()
            sb3_env.close()
    return result


def table(result: TrainBenchResult) -> str:
    rows = [["trainer", "steps/s (wall)", "steps/s (CPU time)", "parameters"],
            ["---", "---:", "---:", "---:"]]
    ours = "num_workers 1, overlap" if result.overlap else "num_workers 0"
    if result.config.get("precision", "fp32") != "fp32":
        ours += f", {result.config['precision']} update"
    names = {SIDES[0]: f"memgym PPO (`Trainer`, {ours})", SIDES[1]: "sb3-contrib MaskablePPO"}
    for s in SIDES:
        cpu = "— (two processes)" if s == SIDES[0] and result.overlap else \
            f"{result.median(s, cpu=True):,.0f}"
        rows.append([names[s], f"{result.median(s):,.0f}", cpu, f"{result.parameters[s]:,}"])
    cpu_ratio = result.ratio(cpu=True)
    rows.append(["**ratio ours / SB3**", f"**{result.ratio():.2f}×**",
                 "—" if cpu_ratio is None else f"**{cpu_ratio:.2f}×**", ""])
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def summary(result: TrainBenchResult) -> str:
    m, c = result.machine, result.config
    return "\n".join([
        f"{result.date} · {m['cpu_count']} CPUs ({m['processor']}) · Python {m['python']} · "
        f"torch {m['torch']}",
        f"command: {result.command}",
        f"{result.config['env']}, {c['policy']} hidden {c['hidden']}, batch {c['num_envs']} envs x "
        f"{c['rollout_steps']} steps, {c['epochs']} epochs x {c['minibatches']} minibatches, "
        f"{c['torch_threads']} torch thread(s); medians of {len(result.timings) // 2} round(s)",
        "",
        table(result),
    ])


if __name__ == "__main__":  # python -m memgym.benchmarks.train_speed
    print(summary(run_bench(command="python -m memgym.benchmarks.train_speed")))
