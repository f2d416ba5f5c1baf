"""Privileged features of a batched streaming task: what the hidden state says about the memory,
for an asymmetric critic (a value function that sees more than the policy).

They are never part of the observation. A policy trained with such a critic still acts on the
observation alone and transfers to real text; only the training signal gets less noisy: when a
write destroys the latest version of a fact, the critic sees it at once, instead of many items
later when a question about that fact goes unanswered.
"""

from __future__ import annotations

import numpy as np

from .stream import ItemKind

ITEM_PRIVILEGED = (
    "is_distractor",
    "is_fact",
    "item_fact_held",  # a fact mention whose latest version some slot holds
    "answer_held",  # a question whose answer (latest version) some slot holds
    "facts_held",  # fraction of facts whose latest version some slot holds
    "facts_seen",  # fraction of facts mentioned so far
)


def privileged_size(capacity: int) -> int:
    """Width of the features: per slot, holds the latest version / a stale one / a distractor."""
    return 3 * capacity + len(ITEM_PRIVILEGED)


def streaming_privileged(env) -> np.ndarray:
    """`[N, privileged_size(K)]` float32 from a `StreamingVectorEnv`'s batched state."""
    N, F = env.num_envs, env.config.num_facts
    rows = env.rows[:, None]
    fact = env.slot_fact
    is_fact = fact >= 0
    latest = is_fact & (env.slot_version == env.fact_version[rows, np.maximum(fact, 0)])
    stale = is_fact & ~latest
    distractor = env.occupied & ~is_fact
    kind = env.kind
    item_fact = np.maximum(env.fact, 0)
    mention = kind == int(ItemKind.FACT)
    item_held = mention & (env.copies[env.rows, item_fact] > 0)
    query = kind == int(ItemKind.QUERY)
    answer_held = query & ((fact == env.answer[:, None])
                           & (env.slot_version == env.answer_version[:, None])).any(1)
    out = np.empty((N, privileged_size(env.K)), np.float32)
    K = env.K
    out[:, :K], out[:, K:2 * K], out[:, 2 * K:3 * K] = latest, stale, distractor
    out[:, 3 * K] = kind == int(ItemKind.DISTRACTOR)
    out[:, 3 * K + 1] = mention
    out[:, 3 * K + 2] = item_held
    out[:, 3 * K + 3] = answer_held
    out[:, 3 * K + 4] = (env.copies > 0).sum(1) / F
    out[:, 3 * K + 5] = (env.fact_version >= 0).sum(1) / F
    return out
