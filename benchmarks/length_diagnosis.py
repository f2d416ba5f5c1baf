"""Why does a trained policy lose accuracy on streams longer than it was trained on?

Evaluates a run's policy at a longer length three ways on the same held-out seeds: as it is; with
the slots' age features clipped to the largest values seen at the training length (do ages beyond
the training range mislead it?); and with ages and read/edit counts clipped. It also prints the
write and edit rates per item at both lengths, since every write of a distractor is one more
chance to overwrite a fact, and a stream 100x longer offers 100x more of them between a fact's
last mention and its question.

    python -m memgym.benchmarks.length_diagnosis runs/quickstart --factor 100 --episodes 16
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.envs.bank import NUM_SLOT_FEATURES, SLOT_FEATURES
from memgym.policies.evaluation import evaluate
from memgym.trainers.loading import load_policy

EVAL_SEED = 1_000_000  # the held-out seeds of `memgym.benchmarks.learning`
AGES = [SLOT_FEATURES.index(k) for k in ("age", "since_used")]
COUNTS = [SLOT_FEATURES.index(k) for k in ("reads", "edits")]


class _Wrapped:
    """A policy seen through a change of its observation (the protocol of `memgym.policies`)."""

    needs_state = False

    def __init__(self, policy, name: str):
        self.policy, self.name = policy, name

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        self.policy.reset(num_envs, seed)

    def episode_start(self, env_index: int) -> None:
        self.policy.episode_start(env_index)

    def act(self, obs, states=None):
        return self.policy.act(self.transform(obs), states)

    def transform(self, obs):
        return obs


class SlotFeatureRange(_Wrapped):
    """Records the largest value of each slot feature the policy is shown."""

    def __init__(self, policy):
        super().__init__(policy, "recorder")
        self.high = np.zeros(NUM_SLOT_FEATURES, np.float32)

    def transform(self, obs):
        features = obs["slots"][..., -NUM_SLOT_FEATURES:]
        self.high = np.maximum(self.high, features.reshape(-1, NUM_SLOT_FEATURES).max(0))
        return obs


class ClippedSlotFeatures(_Wrapped):
    """Shows the policy its slot features with `columns` clipped to `high`."""

    def __init__(self, policy, high: np.ndarray, columns: list[int], name: str):
        super().__init__(policy, name)
        self.high, self.columns = high, columns

    def transform(self, obs):
        slots = obs["slots"].copy()
        for c in self.columns:
            col = c - NUM_SLOT_FEATURES
            slots[..., col] = np.minimum(slots[..., col], self.high[c])
        return {**obs, "slots": slots}


def diagnose(run: str, env_id: str, factor: int, episodes: int) -> list[dict]:
    policy = load_policy(run)
    length = gym.make(env_id).unwrapped.config.length
    recorder = SlotFeatureRange(policy)
    base = evaluate(recorder, env_id, episodes, EVAL_SEED, {}, progress=False)
    rows = [_row("as trained", length, base)]
    long = {"length": length * factor}
    variants = {
        "as trained": policy,
        "ages clipped": ClippedSlotFeatures(policy, recorder.high, AGES, "ages clipped"),
        "ages and counts clipped": ClippedSlotFeatures(policy, recorder.high, AGES + COUNTS,
                                                       "ages and counts clipped"),
    }
    for label, variant in variants.items():
        result = evaluate(variant, env_id, episodes, EVAL_SEED, long, progress=True)
        rows.append(_row(label, length * factor, result))
    return rows


def _row(label: str, length: int, result) -> dict:
    s = result.summary()
    return {"policy": label, "length": length, "accuracy": s["accuracy"]["mean"],
            "ci95": s["accuracy"]["ci95"], "writes_per_item": s["writes"]["mean"] / length,
            "edits_per_item": s["edits"]["mean"] / length,
            "lost_overwritten": s["lost_overwritten"]["mean"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder (or checkpoint) of `memgym train`")
    p.add_argument("--env", default="memgym/Conflict-Medium-v0")
    p.add_argument("--factor", type=int, default=100, help="how many times the training length")
    p.add_argument("--episodes", type=int, default=16)
    args = p.parse_args(argv)
    print("| policy | length | accuracy | STORE / item | EDIT / item | lost overwritten |")
    print("|---|---:|---|---:|---:|---:|")
    for r in diagnose(args.run, args.env, args.factor, args.episodes):
        print(f"| {r['policy']} | {r['length']:,} | {r['accuracy']:.3f} ± {r['ci95']:.3f} | "
              f"{r['writes_per_item']:.3f} | {r['edits_per_item']:.3f} | "
              f"{r['lost_overwritten']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
