"""The oracle: perfect memory use from the hidden future (Belady's rule, generalised).

It keeps exactly what future queries need: a needed item updates the slot holding an older
version of the same fact, else takes a free slot, else replaces the slot whose content is needed
furthest in the future (or never) when that is later than the item's own next use. On a query it
reads the chain (bridge, then target) and answers. It is the ceiling a learned policy is measured
against.
"""

from __future__ import annotations

import numpy as np

from memgym.envs.ops import Op
from memgym.envs.stream import ItemKind

SKIP = 0


class OraclePolicy:
    name = "oracle"
    needs_state = True

    def reset(self, num_envs: int, seed: int | None = None) -> None:
        pass

    def act(self, obs, states=None) -> np.ndarray:
        if states is None:
            raise ValueError("the oracle needs env.get_state() for every env (needs_state=True)")
        K = obs["slots"].shape[-2]
        actions = np.array([self._act_one(s, K) if s else SKIP for s in states], np.int64)
        valid = obs["action_mask"][np.arange(len(actions)), actions].astype(bool)
        return np.where(valid, actions, SKIP)

    @staticmethod
    def _act_one(s, K: int) -> int:
        def action(op: Op, slot: int) -> int:
            return 1 + (int(op) - 1) * K + int(slot)

        if s["item_kind"] == ItemKind.QUERY:
            chain = s["answer_slots"]
            target = chain[-1]
            if target < 0:
                return SKIP  # the answer was lost: nothing to read
            holds_target = s["recall_fact"] == s["slot_fact"][target] and (
                s["recall_version"] == s["slot_version"][target]
            )
            if holds_target:
                return SKIP
            bridge = chain[0] if len(chain) == 2 else -1
            if bridge >= 0 and s["recall_fact"] != s["slot_fact"][bridge]:
                return action(Op.RETRIEVE, bridge)
            return action(Op.RETRIEVE, target)

        never = s["never"]
        need = s["item_next_use"]
        if need == never:
            return SKIP
        same_fact = np.flatnonzero(s["slot_fact"] == s["item_fact"])
        if len(same_fact):
            slot = same_fact[0]
            if s["slot_version"][slot] == s["item_version"]:
                return SKIP  # a restatement of what is already kept
            return action(Op.EDIT, slot)
        free = np.flatnonzero(~s["slot_occupied"])
        if len(free):
            return action(Op.STORE, free[0])
        next_use = s["slot_next_use"]
        victim = int(next_use.argmax())
        if next_use[victim] > need:
            return action(Op.EVICT, victim)
        return SKIP
