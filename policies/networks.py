"""Torch memory policies over the streaming observation: a slot-attention (pointer) network, an
MLP baseline and a recurrent variant. Each maps a batched observation to masked logits over the
flat action space `[SKIP, STORE x K, EDIT x K, EVICT x K, RETRIEVE x K]` and a value.

The slot-attention network is permutation-equivariant over slots: it scores each (op, slot) pair
from that slot's features in the context of the item, `recall` and the other slots, so the same
weights run at any capacity K.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from torch import nn

from memgym.envs.bank import NUM_SLOT_FEATURES, SLOT_FEATURES
from memgym.envs.streaming import ITEM_FEATURES, NUM_ITEM_FEATURES

NUM_SLOT_OPS = 4
MASKED = -1e8  # logit of an invalid action: exp() underflows to exactly 0
# Initial bias of each slot op's logit (STORE, EDIT, EVICT, RETRIEVE) where memory ops compete
# with world actions (embodied tasks, `ExplicitMemory`). With even logits an untrained policy
# spends most of its mass on the 4K slot ops: up to `max_inner_ops` of them per world step, so it
# overwrites and evicts all the time and what the task asks about is never in memory when asked
# (ObjectRecall-Easy: lost items 0.99, no learning in 3 M steps). Starting from "move, sometimes
# write, rarely overwrite or evict, read freely" gives PPO episodes where memory held the answer.
WORLD_OP_PRIOR = (-2.0, -4.0, -4.0, 0.0)


# Content-based addressing (as in memory networks and the NTM): each slot op's logit gets
# `strength[op] * cos(slot, item)` added, with a learned strength per op. Initialised to favour
# EDIT and RETRIEVE on the slots most like the item, so that from the first rollouts an update
# tends to replace the version it updates and a question reads the slot that answers it; PPO
# otherwise often settles on keeping stale copies beside new versions (BENCHMARKS.md).
ADDRESSING_INIT = (0.0, 4.0, 0.0, 4.0)  # STORE, EDIT, EVICT, RETRIEVE
# Where memory ops compete with world actions the op prior (`WORLD_OP_PRIOR`) shapes the first
# rollouts, and an item is seen again and again (its slot is always the most similar). There only
# EDIT starts addressed: writing what memory already holds then refreshes its own slot rather than
# overwriting another. RETRIEVE starts at zero: addressed from the start, ObjectRecall-Easy PPO
# collapsed to never writing on both seeds tried (BENCHMARKS.md).
WORLD_ADDRESSING_INIT = (0.0, 4.0, 0.0, 0.0)
# There RETRIEVE is addressed only where reading is what a question asks for: a second strength
# per op, times the slot's similarity, gated by "the item is a question not yet read for"
# (`is_query` and not `recall_valid`), the reading rule of the heuristics. Without it, PPO on
# ObjectRecall-Easy first learns to fill every slot with the first object it meets, so that any
# read answers right half the time, and storing the other object only pays once reads also pick
# the slot the cue names: two changes that must come together, and half the seeds never made
# them (BENCHMARKS.md). Alone it freed two stuck seeds and left another at 0; together with
# `store_novelty` (below) the two seeds stuck without them left the plateau and the two that
# learned without them stayed on it, unless writes also cost a little (BENCHMARKS.md,
# 2026-12-02): opt-in. Streaming tasks already address RETRIEVE at every item.
QUERY_ADDRESSING_INIT = (0.0, 0.0, 0.0, 4.0)
# Where there are world actions an item stays in view for many steps, and a STORE of what memory
# already holds is valid (a free slot takes anything). With `store_novelty`, STORE logits get a
# learned strength times the item's similarity to the slot most like it, initialised negative:
# "do not write what you already hold". Without it, PPO on ObjectRecall-Easy often fills every
# slot with copies of the first object it meets (any read then answers half the cues), and the
# second object finds no free slot. Alone it did not free a stuck seed (the network learned to
# write copies anyway: reads were not yet addressed, so a second object did not pay); with
# `query_addressing` both halves of the trap are open from the first rollouts (BENCHMARKS.md).
STORE_NOVELTY_INIT = -4.0
# Only near-copies count as held: the penalty is the strength times `relu(sim - threshold) /
# (1 - threshold)` of the slot most like the item. Linear in the similarity (threshold 0, as
# before 2026-12-03) it also lowered STORE of every *other* object, which shares the objects'
# direction (cosine up to 0.58 at ObjectRecall-Easy, 0.71 at Medium, 0.75 at Hard, against
# >= 0.98 for a copy at Easy/Medium and >= 0.83 under Hard's noise): ~2 logits at the learned
# strengths of the seeds that stayed on the ~0.5 plateau, whose policies never stored a second
# object (P(STORE) < 0.001 with one held; BENCHMARKS.md).
STORE_NOVELTY_THRESHOLD = 0.8
SIM_ITEM_FROM_END = SLOT_FEATURES.index("sim_item") - NUM_SLOT_FEATURES
IS_QUERY_FROM_END = ITEM_FEATURES.index("is_query") - NUM_ITEM_FEATURES
RECALL_VALID_FROM_END = ITEM_FEATURES.index("recall_valid") - NUM_ITEM_FEATURES


class Architecture(str, Enum):
    SLOT_ATTENTION = "slot_attention"  # slots attend over the item and each other
    SLOT_POOL = "slot_pool"  # the same pointer heads with a pooled (Deep Sets) context: ~3x cheaper
    MLP = "mlp"
    RECURRENT = "recurrent"  # slot_pool + a GRU over the item encoding


def mlp(inp: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = inp
    for _ in range(layers - 1):
        mods += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    mods.append(nn.Linear(width, out))
    return nn.Sequential(*mods)


CORE_KEYS = ("item", "slots", "recall", "action_mask")
PRIVILEGED = "privileged"  # optional batch entry only the value head reads (asymmetric critic)


def obs_to_torch(obs: dict, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, device=device) for k, v in obs.items()}


def extra_keys(observation_space) -> list[str]:
    """Observation entries beyond the memory contract (e.g. an embodied task's `view`): they are
    flattened into the item encoder's input."""
    return sorted(k for k in observation_space.spaces if k not in CORE_KEYS)


def value_input(obs: dict[str, torch.Tensor], pooled: torch.Tensor, width: int) -> torch.Tensor:
    """The value head's input: the policy's pooled features, plus the hidden-state features of an
    asymmetric critic when the net has them (zeros where a batch has none, e.g. at evaluation,
    where the value is not used). The policy logits never see them."""
    if not width:
        return pooled
    extra = obs.get(PRIVILEGED)
    if extra is None:
        extra = pooled.new_zeros(pooled.shape[0], width)
    return torch.cat([pooled, extra], -1)


def item_input(obs: dict[str, torch.Tensor], extras: list[str]) -> torch.Tensor:
    parts = [obs["item"], obs["recall"]]
    n = obs["item"].shape[0]
    parts += [obs[k].reshape(n, -1).float() for k in extras]
    return torch.cat(parts, -1)


class SlotAttentionNet(nn.Module):
    """Pointer network over slots. `attention=True`: each slot attends over the item and the
    other slots; `False`: each slot sees a pooled context (item, mean and max over slots)."""

    def __init__(self, item_dim: int, slot_dim: int, recall_dim: int, hidden: int = 64,
                 heads: int = 4, recurrent: bool = False, attention: bool = True,
                 extras: tuple[list[str], int] = ([], 0), world_actions: int = 1,
                 privileged_dim: int = 0, addressing: bool = True, query_addressing: bool = False,
                 store_novelty: bool = False, novelty_threshold: float = STORE_NOVELTY_THRESHOLD):
        super().__init__()
        if not 0.0 <= novelty_threshold < 1.0:
            raise ValueError(f"novelty_threshold must be in [0, 1), got {novelty_threshold}")
        self.novelty_threshold = novelty_threshold
        self.extras, extra_dim = extras
        item_dim += extra_dim
        self.hidden = hidden
        self.privileged_dim = privileged_dim
        self.recurrent = recurrent
        self.item_net = mlp(item_dim + recall_dim, hidden, hidden)
        self.slot_net = mlp(slot_dim, hidden, hidden)
        if attention:
            self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.norm = nn.LayerNorm(hidden)
        else:
            self.attention = None
            self.context_net = mlp(3 * hidden, hidden, hidden, layers=1)
        self.gru = nn.GRUCell(hidden, hidden) if recurrent else None
        self.op_head = mlp(2 * hidden, hidden, NUM_SLOT_OPS)
        if world_actions > 1:
            with torch.no_grad():
                self.op_head[-1].bias.copy_(torch.tensor(WORLD_OP_PRIOR))
        strength = WORLD_ADDRESSING_INIT if world_actions > 1 else ADDRESSING_INIT
        self.addressing = nn.Parameter(torch.tensor(strength)) if addressing else None
        gated = addressing and query_addressing and world_actions > 1
        self.query_addressing = nn.Parameter(torch.tensor(QUERY_ADDRESSING_INIT)) if gated else None
        novel = store_novelty and world_actions > 1
        self.store_novelty = nn.Parameter(torch.tensor(STORE_NOVELTY_INIT)) if novel else None
        # SKIP plus any world actions (an embodied task's moves) are scored from the pooled context.
        self.world_head = mlp(3 * hidden, hidden, world_actions)
        self.value_head = mlp(3 * hidden + privileged_dim, hidden, 1)

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.hidden)

    def _op_scores(self, slots: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """`op_head` of each slot's features beside the item's, `(N, K, 4)`. Its first layer is
        applied in two parts (the slot's half of the weights per slot, the item's once per row)
        rather than to their concatenation: the same function, without a `(N, K, 2H)` copy and
        K times fewer multiplications for the item's half."""
        first, rest = self.op_head[0], self.op_head[1:]
        h = slots.shape[-1]
        pre = nn.functional.linear(slots, first.weight[:, :h])
        pre = pre + nn.functional.linear(item, first.weight[:, h:], first.bias).unsqueeze(1)
        return rest(pre)

    def forward(self, obs: dict[str, torch.Tensor], state: torch.Tensor | None = None):
        item = self.item_net(item_input(obs, self.extras))  # (N, H)
        if self.gru is not None:
            item = self.gru(item, state)
            state = item
        slots = self.slot_net(obs["slots"])  # (N, K, H)
        n, k, h = slots.shape
        if self.attention is not None:
            # Slots attend over the item and each other: an (op, slot) score sees its context.
            tokens = torch.cat([item.unsqueeze(1), slots], 1)
            ctx, _ = self.attention(slots, tokens, tokens, need_weights=False)
            slots = self.norm(slots + ctx)
        else:
            ctx = self.context_net(torch.cat([item, slots.mean(1), slots.amax(1)], -1))
            slots = torch.tanh(slots + ctx.unsqueeze(1))
        per_slot = self._op_scores(slots, item)
        sim = obs["slots"][..., SIM_ITEM_FROM_END].unsqueeze(-1)  # (N, K, 1)
        if self.addressing is not None:
            per_slot = per_slot + sim * self.addressing
            if self.query_addressing is not None:
                features = obs["item"]
                unread = features[:, IS_QUERY_FROM_END] * (1.0 - features[:, RECALL_VALID_FROM_END])
                per_slot = per_slot + sim * unread[:, None, None] * self.query_addressing
        if self.store_novelty is not None:
            # Empty slots have similarity 0, so an item memory does not hold yet is not penalised.
            # (With a free slot the most similar slot is >= 0, so threshold 0 is the linear form.)
            tau = self.novelty_threshold
            held = torch.relu(sim.amax(1) - tau) / (1.0 - tau)  # (N, 1)
            store = per_slot[..., 0] + self.store_novelty * held
            per_slot = torch.cat([store.unsqueeze(-1), per_slot[..., 1:]], -1)
        pooled = torch.cat([item, slots.mean(1), slots.amax(1)], -1)
        # (N, K, 4) -> (N, 4, K) -> (N, 4K): one block of K per op, as the action codec lays out.
        logits = torch.cat([self.world_head(pooled), per_slot.transpose(1, 2).reshape(n, -1)], -1)
        logits = logits.masked_fill(~obs["action_mask"].bool(), MASKED)
        value = self.value_head(value_input(obs, pooled, self.privileged_dim))
        return logits, value.squeeze(-1), state


class MLPNet(nn.Module):
    """Flattens everything: a baseline that cannot share weights across slots."""

    recurrent = False

    def __init__(self, item_dim: int, slot_dim: int, recall_dim: int, capacity: int,
                 hidden: int = 64, extras: tuple[list[str], int] = ([], 0),
                 world_actions: int = 1, privileged_dim: int = 0):
        super().__init__()
        self.extras, extra_dim = extras
        self.privileged_dim = privileged_dim
        inp = item_dim + extra_dim + recall_dim + capacity * slot_dim
        self.body = mlp(inp, hidden, hidden, layers=2)
        self.policy_head = nn.Linear(hidden, world_actions + NUM_SLOT_OPS * capacity)
        self.value_head = nn.Linear(hidden + privileged_dim, 1)

    def initial_state(self, n: int):
        return None

    def forward(self, obs, state=None):
        x = torch.cat([item_input(obs, self.extras), obs["slots"].flatten(1)], -1)
        h = torch.tanh(self.body(x))
        logits = self.policy_head(h).masked_fill(~obs["action_mask"].bool(), MASKED)
        return logits, self.value_head(value_input(obs, h, self.privileged_dim)).squeeze(-1), state


def build_network(arch: Architecture | str, observation_space, hidden: int = 64,
                  privileged_dim: int = 0, addressing: bool = True,
                  query_addressing: bool = False, store_novelty: bool = False,
                  novelty_threshold: float = STORE_NOVELTY_THRESHOLD) -> nn.Module:
    """Build a network sized from a streaming env's observation space; `privileged_dim > 0`
    gives its value head that many hidden-state features (an asymmetric critic); `addressing`
    adds content-based addressing to the slot networks' op logits (`ADDRESSING_INIT`), and
    `query_addressing` its question-gated form where there are world actions
    (`QUERY_ADDRESSING_INIT`); `store_novelty` there penalises writing what memory already holds
    (`STORE_NOVELTY_INIT`), counting as held only what is more similar than `novelty_threshold`
    (`STORE_NOVELTY_THRESHOLD`)."""
    arch = Architecture(arch)
    item_dim = observation_space["item"].shape[-1]
    capacity, slot_dim = observation_space["slots"].shape[-2:]
    recall_dim = observation_space["recall"].shape[-1]
    keys = extra_keys(observation_space)
    extras = (keys, sum(int(np.prod(observation_space[k].shape)) for k in keys))
    world = observation_space["action_mask"].n - NUM_SLOT_OPS * capacity
    if arch is Architecture.MLP:
        return MLPNet(item_dim, slot_dim, recall_dim, capacity, hidden, extras=extras,
                      world_actions=world, privileged_dim=privileged_dim)
    return SlotAttentionNet(item_dim, slot_dim, recall_dim, hidden, extras=extras,
                            world_actions=world, privileged_dim=privileged_dim,
                            addressing=addressing, query_addressing=query_addressing,
                            store_novelty=store_novelty, novelty_threshold=novelty_threshold,
                            recurrent=arch is Architecture.RECURRENT,
                            attention=arch is Architecture.SLOT_ATTENTION)
