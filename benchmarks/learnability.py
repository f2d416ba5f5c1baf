"""Is relevance learnable from the observation? A diagnostic for the streaming task design.

1. A *reference rule* that sees the hidden item kind only to skip distractors, and otherwise acts
   like the similarity-merge heuristic, shows what an observation-level policy could score.
2. A *learned probe*: logistic regression from the item embedding to "is a distractor", fitted on
   demonstration episodes, replaces the hidden kind; the rule then reads the observation only.
3. Behaviour cloning the reference rule into the `slot_pool` network, from observations alone.

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


class ProbeRule(SimilarityMergePolicy):
    """Similarity merge that skips items a learned linear probe calls distractors."""

    name = "probe_rule"

    def __init__(self, weight: np.ndarray, bias: float, dim: int):
        super().__init__(0.5)
        self.weight, self.bias, self.dim = weight, bias, dim

    def act(self, obs, states=None):
        actions = super().act(obs, states)
        is_query = obs["item"][:, self.dim] > 0.5
        distractor = obs["item"][:, : self.dim] @ self.weight + self.bias > 0
        return np.where(distractor & ~is_query, 0, actions)


def fit_probe(obs, kinds: np.ndarray, dim: int, steps: int = 500):
    x = torch.as_tensor(obs["item"][:, :dim])
    y = torch.as_tensor(kinds == ItemKind.DISTRACTOR, dtype=torch.float32)
    keep = torch.as_tensor(kinds != ItemKind.QUERY)
    x, y = x[keep], y[keep]
    w = torch.zeros(dim, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_acc = float((((x @ w + b) > 0).float() == y).float().mean())
    return w.detach().numpy(), float(b.detach()), train_acc


def demonstrations(policy, env_id: str, episodes: int):
    observations, actions, kinds = [], [], []
    for seed in range(episodes):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            state = env.unwrapped.get_state()
            action = int(policy.act(batch_observations([obs]), [state])[0])
            observations.append(obs)
            actions.append(action)
            kinds.append(int(state["item_kind"]))
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return batch_observations(observations), torch.tensor(actions), np.array(kinds)


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

    obs, actions, kinds = demonstrations(reference, args.env, args.demo_episodes)
    dim = gym.make(args.env).unwrapped.config.dim
    weight, bias, probe_acc = fit_probe(obs, kinds, dim)
    rule = ProbeRule(weight, bias, dim)
    res = evaluate(rule, args.env, args.eval_episodes, HELD_OUT, progress=False).summary()
    print(f"learned probe (train accuracy {probe_acc:.3f}) + similarity merge: accuracy "
          f"{res['accuracy']['mean']:.3f} ± {res['accuracy']['ci95']:.3f} (observation only)")
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
