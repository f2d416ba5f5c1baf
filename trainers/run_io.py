"""What every trainer (ours and the SB3 backend) does the same way around its loop: write a
metrics record to TensorBoard and `metrics.jsonl`, evaluate a network on the held-out seeds, and
turn SIGINT/SIGTERM into a polite stop request."""

from __future__ import annotations

import copy
import json
import logging
import signal
from pathlib import Path

from memgym.policies.evaluation import evaluate
from memgym.policies.torch_policy import NeuralPolicy

EVAL_SEED = 1_000_000  # held-out: training envs draw seeds below 2**31 from their own generator
NOT_SCALARS = ("iteration", "step", "time")


def write_record(writer, metrics_path: Path, record: dict, step: int) -> None:
    for k, v in record.items():
        if k not in NOT_SCALARS and isinstance(v, (int, float)):
            writer.add_scalar(k, v, step)
    with metrics_path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def snapshot_policy(net, name: str) -> NeuralPolicy:
    """A greedy policy over a copy of `net`, so training can go on while it is evaluated."""
    return NeuralPolicy(copy.deepcopy(net), name=name)


def evaluate_held_out(policy, cfg, episodes: int, prefix: str = "") -> dict:
    result = evaluate(policy, cfg.env, episodes, EVAL_SEED, cfg.env_kwargs, progress=False)
    return {f"{prefix}{k}": v["mean"] for k, v in result.summary().items()}


def progress_bar(cfg, initial: int, progress: bool):
    """The run's progress bar. A huge step budget means "until the time limit": show counts, not
    a 0% bar with an ETA of days."""
    from tqdm.auto import tqdm

    total = cfg.total_steps if cfg.total_steps < 10**8 else None
    return tqdm(total=total, initial=initial, disable=not progress, unit="step",
                desc=f"{cfg.algo.value} {Path(cfg.env).name}", dynamic_ncols=True)


def install_signal_handlers(callback) -> dict:
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, callback)
        except ValueError:  # not the main thread (e.g. inside a Ray task): leave signals alone
            pass
    return previous


def restore_signal_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class StallWatch:
    """Warns loudly, once per stall, when the training return has sat at zero for `patience`
    iterations: a run that fails silently is the worst kind."""

    def __init__(self, bar, patience: int = 20):
        self.bar, self.patience, self.stalled = bar, patience, 0

    def update(self, train_return: float) -> None:
        self.stalled = self.stalled + 1 if abs(train_return) < 1e-9 else 0
        if self.stalled == self.patience:
            message = (f"return stuck at 0 for {self.patience} iterations: the policy is not "
                       "answering any query; check lr, ent_coef and the env")
            logging.getLogger("memgym.train").warning(message)
            self.bar.write(f"WARNING: {message}")
