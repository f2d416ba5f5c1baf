"""Privileged features of a batched streaming or embodied task: what the hidden state says about
the memory, for an asymmetric critic (a value function that sees more than the policy).

They are never part of the observation. A policy trained with such a critic still acts on the
observation alone and transfers to real text; only the training signal gets less noisy: when a
write destroys the latest version of a fact, the critic sees it at once, instead of many items
later when a question about that fact goes unanswered.
"""

from __future__ import annotations

import numpy as np

from .bank import FACT, VERSION
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


# ---- the embodied family ----------------------------------------------------------------------

EMBODIED_PRIVILEGED = (
    "item_needed_unheld",  # what is attended now is needed and not in memory: storing it pays
    "needed_held",  # fraction of the needed entities whose needed version some slot holds
    "all_needed_held",
    "recall_needed",  # `recall` holds a needed entity's needed version
    "unheld_distance",  # to the nearest needed entity still on the map and not held, normalised
    "unheld_on_map",  # whether there is one
    "goal_distance",  # to where the task wants the agent now (once that is set), normalised
    "goal_set",
)


def embodied_privileged_size(capacity: int) -> int:
    """Width of the features: per slot, holds a needed entity / holds something else or a copy."""
    return 2 * capacity + len(EMBODIED_PRIVILEGED)


def embodied_privileged(env) -> np.ndarray:
    """`[N, embodied_privileged_size(K)]` float32 from an `EmbodiedVectorEnv`'s batched state.

    "Needed" is the task's own notion (`_needed`): the entities whose first version (version 0:
    where an object belongs) the rest of the episode asks about, e.g. the object the cue will
    name. The critic may know it from the start; the policy never does. Without these features
    the only signal that storing the right object mattered is a success many steps later."""
    mem, N, K = env.memory, env.num_envs, env.memory.capacity
    rows = env.rows
    needed = env._needed(rows)  # [N, F] bool
    F = needed.shape[1]
    entity, version = mem.content[..., FACT], mem.content[..., VERSION]
    safe = np.clip(entity, 0, F - 1)
    slot_needed = mem.occupied & (entity >= 0) & (version == 0) & needed[rows[:, None], safe]
    # A copy of what a lower slot already holds is as useless as junk.
    same = (entity[:, :, None] == entity[:, None, :]) & (version[:, :, None] == version[:, None, :])
    both = mem.occupied[:, :, None] & mem.occupied[:, None, :]
    copy = (np.tril(same & both, k=-1)).any(-1)
    slot_needed &= ~copy
    held = np.zeros((N, F), bool)
    r, k = np.nonzero(slot_needed)
    held[r, safe[r, k]] = True
    num_needed = needed.sum(1)

    out = np.zeros((N, embodied_privileged_size(K)), np.float32)
    out[:, :K] = slot_needed
    out[:, K:2 * K] = mem.occupied & ~slot_needed
    c = 2 * K
    item, item_version = mem.item_content[:, FACT], mem.item_content[:, VERSION]
    item_safe = np.clip(item, 0, F - 1)
    out[:, c] = ((item >= 0) & (item_version == 0) & needed[rows, item_safe]
                 & ~held[rows, item_safe] & ~mem.is_query)
    out[:, c + 1] = held.sum(1) / np.maximum(num_needed, 1)
    out[:, c + 2] = (num_needed > 0) & (held.sum(1) == num_needed)
    rec, rec_version = mem.recall_content[:, FACT], mem.recall_content[:, VERSION]
    out[:, c + 3] = (mem.recall_valid & (rec >= 0) & (rec_version == 0)
                     & needed[rows, np.clip(rec, 0, F - 1)])
    span = float(sum(env.shape))
    where = env.where[:, :F]  # [N, F, 2], -1 where off the map
    chase = needed & ~held & (where[..., 0] >= 0)
    dist = np.abs(where - env.pos[:, None]).sum(-1)
    nearest = np.where(chase, dist, np.iinfo(np.int64).max).min(1)
    out[:, c + 4] = np.where(chase.any(1), nearest / span, 0.0)
    out[:, c + 5] = chase.any(1)
    goal = env._goal(rows)  # [N, 2], -1 where unset
    set_ = goal[:, 0] >= 0
    out[:, c + 6] = np.where(set_, np.abs(goal - env.pos).sum(-1) / span, 0.0)
    out[:, c + 7] = set_
    return out
