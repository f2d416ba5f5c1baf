"""`NeuralPolicy`: a torch network behind the same batched `act(obs)` protocol as the baselines,
so a trained policy is evaluated exactly like a heuristic."""

from __future__ import annotations

import numpy as np
import torch

from .networks import obs_to_torch


class NeuralPolicy:
    needs_state = False

    def __init__(self, net: torch.nn.Module, name: str = "neural", deterministic: bool = True,
                 seed: int | None = None):
        self.net = net.eval()
        self.name = name
        self.deterministic = deterministic
        self.generator = torch.Generator().manual_seed(seed or 0)
        self.state = None

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.state = self.net.initial_state(num_envs)

    def episode_start(self, env_index: int) -> None:
        if self.state is not None:
            self.state[env_index] = 0.0

    @torch.no_grad()
    def act(self, obs, states=None) -> np.ndarray:
        n = len(obs["action_mask"])
        state = self.state
        if state is not None and len(state) != n:
            # The evaluator drops finished envs from the batch; keep the recurrent rows aligned
            # by always running every env (callers pass a full batch).
            raise ValueError("recurrent policies need the full batch of envs at every step")
        logits, _, self.state = self.net(obs_to_torch(obs), state)
        if self.deterministic:
            return logits.argmax(-1).numpy()
        probs = torch.softmax(logits, -1)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1).numpy()
