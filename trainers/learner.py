"""The update step of the on-policy core: a clipped policy-gradient loss on precomputed advantages.

PPO brings GAE advantages and a value loss; GRPO brings group-relative advantages, no critic, and
an optional KL penalty to a frozen reference policy. Everything else is shared and reads top to
bottom: flatten the batch, shuffle, minibatch, clip, step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import Algo, Precision, TrainConfig
from .rollout import Rollout


def _logp_entropy(logits: torch.Tensor, actions: torch.Tensor):
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy, logp_all


def _forward(net: nn.Module, obs: dict[str, torch.Tensor], rollout_state, starts):
    """Logits and values for `[T, n]` observations. A recurrent net is unrolled over T from its
    rollout-start state, reset wherever an episode starts; others run on the flattened batch."""
    T, n = obs["action_mask"].shape[:2]
    if not getattr(net, "recurrent", False):
        flat = {k: v.reshape(T * n, *v.shape[2:]) for k, v in obs.items()}
        logits, values, _ = net(flat)
        return logits.reshape(T, n, -1), values.reshape(T, n)
    state = rollout_state
    all_logits, all_values = [], []
    for t in range(T):
        state = state * (~starts[t]).float().unsqueeze(-1)
        logits, values, state = net({k: v[t] for k, v in obs.items()}, state)
        all_logits.append(logits)
        all_values.append(values)
    return torch.stack(all_logits), torch.stack(all_values)


def update(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Rollout,
    cfg: TrainConfig,
    generator: torch.Generator,
    reference: nn.Module | None = None,
) -> dict[str, float]:
    obs = {k: torch.from_numpy(v) for k, v in batch.obs.items()}
    actions = torch.from_numpy(batch.actions)
    old_logp = torch.from_numpy(batch.logprobs)
    advantages = torch.from_numpy(batch.advantages)
    returns = torch.from_numpy(batch.returns)
    valid = torch.from_numpy(batch.valid).float()
    starts = torch.from_numpy(batch.starts)
    init_state = None if batch.initial_state is None else torch.from_numpy(batch.initial_state)
    recurrent = getattr(net, "recurrent", False)
    T, N = actions.shape
    # Mixed precision: the network's ops in bfloat16 where autocast allows, the loss in float32.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16,
                              enabled=cfg.precision is Precision.BF16)
    with torch.no_grad():
        ref_logp_all = None
        if reference is not None and cfg.kl_coef > 0:
            ref_logits, _ = _forward(reference, obs, init_state, starts)
            ref_logp_all = torch.log_softmax(ref_logits, -1)

    # Minibatches are sets of envs (whole sequences) for recurrent nets, else sets of steps.
    stats: dict[str, list[float]] = {k: [] for k in
                                     ("policy_loss", "value_loss", "entropy", "approx_kl",
                                      "clip_fraction", "kl_ref")}
    for _ in range(cfg.epochs):
        if recurrent:
            order = torch.randperm(N, generator=generator)
            chunks = order.chunk(min(cfg.minibatches, N))
        else:
            order = torch.randperm(T * N, generator=generator)
            chunks = order.chunk(cfg.minibatches)
        for idx in chunks:
            with autocast:
                if recurrent:
                    logits, values = _forward(net, {k: v[:, idx] for k, v in obs.items()},
                                              init_state[idx], starts[:, idx])
                    sel = (slice(None), idx)
                    mb = lambda x: x[sel]  # noqa: E731
                else:
                    t_idx, n_idx = idx // N, idx % N
                    mb_obs = {k: v[t_idx, n_idx] for k, v in obs.items()}
                    logits, values, _ = net(mb_obs)
                    mb = lambda x: x[t_idx, n_idx]  # noqa: E731
            logits, values = logits.float(), values.float()
            logp, entropy, logp_all = _logp_entropy(logits, mb(actions))
            w = mb(valid)
            denom = w.sum().clamp(min=1.0)
            adv = mb(advantages)
            if cfg.algo is Algo.PPO and adv.numel() > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            log_ratio = logp - mb(old_logp)
            ratio = log_ratio.exp()
            surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip))
            policy_loss = (surrogate * w).sum() / denom
            entropy_mean = (entropy * w).sum() / denom
            loss = policy_loss - cfg.ent_coef * entropy_mean
            value_loss = torch.zeros(())
            if cfg.algo is Algo.PPO:
                value_loss = 0.5 * (((values - mb(returns)) ** 2) * w).sum() / denom
                loss = loss + cfg.vf_coef * value_loss
            kl_ref = torch.zeros(())
            if ref_logp_all is not None:
                ref_logp = mb(ref_logp_all).gather(-1, mb(actions).unsqueeze(-1)).squeeze(-1)
                d = ref_logp - logp  # k3 estimator of KL(pi || ref), always >= 0
                kl_ref = ((d.exp() - d - 1) * w).sum() / denom
                loss = loss + cfg.kl_coef * kl_ref
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                stats["policy_loss"].append(float(policy_loss))
                stats["value_loss"].append(float(value_loss))
                stats["entropy"].append(float(entropy_mean))
                stats["approx_kl"].append(float((((ratio - 1) - log_ratio) * w).sum() / denom))
                stats["clip_fraction"].append(
                    float((((ratio - 1).abs() > cfg.clip).float() * w).sum() / denom))
                stats["kl_ref"].append(float(kl_ref))
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    if cfg.algo is Algo.PPO:
        values = batch.returns - batch.advantages
        var = float(np.var(batch.returns))
        out["explained_variance"] = float(1 - np.var(batch.returns - values) / var) if var > 0 else 0.0
    return out
