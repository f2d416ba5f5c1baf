"""Where does a trained object-recall policy fail: exploring, writing, or reading?

Plays a run's policy (greedy, as `memgym eval` does) on held-out episodes of its ObjectRecall env
and reads the hidden state (`get_state()`) at every step. While exploring it counts the cells the
agent stood on and which objects it attended to; at every step where an object is the item it
records the policy's probability of STORE (any slot), split three ways: the first object, with no
object in memory yet; another object, while memory holds one; and a copy of what memory already
holds. At the cue it checks whether the target is in memory. A policy on the ~0.5 plateau of
ObjectRecall-Easy shows up as a low "another object" probability, few cells and one object seen.

    python -m memgym.benchmarks.recall_diagnosis runs/or-s1 --episodes 100
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
import torch

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.envs import Op
from memgym.envs.object_recall import ObjectRecallEnv, RecallPhase
from memgym.policies.networks import obs_to_torch
from memgym.trainers import checkpoint
from memgym.trainers.config import TrainConfig
from memgym.trainers.loading import load_policy

EVAL_SEED = 1_000_000  # the held-out seeds of `memgym eval` and `memgym.benchmarks.learning`


@dataclass
class RecallDiagnosis:
    episodes: int
    success: float
    target_held_at_cue: float
    cells_explored: float  # distinct cells stood on while exploring, per episode
    objects_attended: list[float]  # fraction of episodes that attended to 0, 1, ... objects
    stores: float  # STOREs an episode
    p_store_first: float  # mean P(STORE) with the item an object and no object in memory
    p_store_other: float  # ... an object memory does not hold, while it holds another
    p_store_copy: float  # ... an object memory already holds
    samples: dict[str, int] = field(default_factory=dict)  # steps behind each mean


def diagnose(run: str, episodes: int = 100, seed: int = EVAL_SEED) -> RecallDiagnosis:
    cfg = TrainConfig.for_inference(checkpoint.load(run)["config"])
    env = gym.make(cfg.env, **cfg.env_kwargs).unwrapped
    if not isinstance(env, ObjectRecallEnv):
        raise ValueError(f"{run} trained on {cfg.env}, not an ObjectRecall task")
    policy = load_policy(run)
    objects, capacity = env.config.num_objects, env.config.capacity
    stores = [env.encode(Op.STORE, k) for k in range(capacity)]
    p_store: dict[str, list[float]] = {"first": [], "other": [], "copy": []}
    attended_counts = np.zeros(objects + 1)
    cells = success = held = writes = 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        policy.reset(1)
        attended, visited = set(), set()
        done, info = False, {}
        while not done:
            state = env.get_state()
            batch = {k: v[None] for k, v in obs.items()}
            item = state["item_entity"]
            # One forward pass gives both the greedy action (what `memgym eval` plays) and the
            # probabilities; it carries a recurrent policy's state as `NeuralPolicy.act` does.
            with torch.no_grad():
                logits, _, policy.state = policy.net(obs_to_torch(batch), policy.state)
            if state["phase"] == RecallPhase.EXPLORE:
                visited.add(state["pos"])
            if item is not None and 0 <= item < objects and not state["item_is_query"]:
                attended.add(item)
                in_memory = {int(e) for e, on in zip(state["slot_entity"], state["slot_occupied"])
                             if on and 0 <= e < objects}
                case = "copy" if item in in_memory else "other" if in_memory else "first"
                p_store[case].append(float(torch.softmax(logits, -1)[0, stores].sum()))
            obs, _, terminated, truncated, info = env.step(int(logits.argmax(-1)[0]))
            done = terminated or truncated
        metrics = info["metrics"]
        attended_counts[len(attended)] += 1
        cells += len(visited)
        success += metrics["success"]
        held += 1.0 - metrics["lost_items"]
        writes += metrics["writes"]

    def mean(xs):
        return float(np.mean(xs)) if xs else float("nan")

    return RecallDiagnosis(
        episodes=episodes, success=success / episodes, target_held_at_cue=held / episodes,
        cells_explored=cells / episodes, objects_attended=(attended_counts / episodes).tolist(),
        stores=writes / episodes, p_store_first=mean(p_store["first"]),
        p_store_other=mean(p_store["other"]), p_store_copy=mean(p_store["copy"]),
        samples={k: len(v) for k, v in p_store.items()})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (or checkpoints) of ObjectRecall runs")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--json", help="also write the diagnoses to this file")
    args = parser.parse_args(argv)
    results = {}
    for run in args.runs:
        d = diagnose(run, args.episodes)
        results[run] = asdict(d)
        seen = ", ".join(f"{n}: {p:.2f}" for n, p in enumerate(d.objects_attended))
        print(f"{run}: success {d.success:.3f}, target held at the cue {d.target_held_at_cue:.3f}, "
              f"{d.cells_explored:.1f} cells explored, objects attended ({seen}), "
              f"{d.stores:.2f} STOREs; P(STORE) first object {d.p_store_first:.3f}, "
              f"another while one is held {d.p_store_other:.3f}, copy {d.p_store_copy:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
