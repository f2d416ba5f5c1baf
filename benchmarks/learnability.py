"""Is relevance learnable from the observation? A diagnostic for the streaming task design.

1. A *reference rule* that sees the hidden item kind only to skip distractors, and otherwise acts
   like the similarity-merge heuristic, shows what an observation-level policy could score.
2. Behaviour cloning that rule into the `slot_pool` network, from observations alone, shows the
   network can represent it (the distractor/fact distinction is a read-out of the item embedding).

    python -m memgym.benchmarks.learnability --env memgym/Conflict-Medium-v0

The reference rule is a diagnostic, not a baseline: it uses hidden state.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.envs.stream import ItemKind
from memgym.policies import SimilarityMergePolicy, batch_observations
from memgym.policies.evaluation import evaluate
from memgym.policies.networks import build_network, obs_to_torch
from memgym.policies.torch_policy import NeuralPolicy

HELD_OUT = 1_000_000


class SkipDistractorsReference(SimilarityMergePolicy):
    """Similarity merge that skips distractors (told by the hidden item kind)."""

    name = "reference"
    needs_state = True

    def act(self, obs, states=None):
        actions = super().act(obs, states)
        for i, s in enumerate(states):
            if s and s["item_kind"] == ItemKind.DISTRACTOR:
                actions[i] = 0
        return actions


def demonstrations(policy, env_id: str, episodes: int):
    observations, actions = [], []
    for seed in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            action = int(policy.act(batch_observations([obs]), [env.unwrapped.get_state()])[0])
            observations.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return batch_observations(observations), torch.tensor(actions)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="memgym/Conflict-Medium-v0")
    p.add_argument("--demo-episodes", type=int, default=150)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    reference = SkipDistractorsReference(0.5)
    ref = evaluate(reference, args.env, args.eval_episodes, HELD_OUT, progress=False).summary()
    print(f"reference rule: accuracy {ref['accuracy']['mean']:.3f} ± {ref['accuracy']['ci95']:.3f}")

    obs, actions = demonstrations(reference, args.env, args.demo_episodes)
    net = build_network("slot_pool", gym.make(args.env).observation_space)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = obs_to_torch(obs)
    n = len(actions)
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n)
        for start in range(0, n, 512):
            idx = order[start:start + 512]
            logits, _, _ = net({k: v[idx] for k, v in data.items()})
            loss = torch.nn.functional.cross_entropy(logits, actions[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 5 == 0 or epoch == args.epochs:
            res = evaluate(NeuralPolicy(net), args.env, args.eval_episodes, HELD_OUT,
                           progress=False).summary()
            print(f"cloned, epoch {epoch}: accuracy {res['accuracy']['mean']:.3f} ± "
                  f"{res['accuracy']['ci95']:.3f} ({n} demonstration steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
