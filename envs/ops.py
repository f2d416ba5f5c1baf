"""The memory-op vocabulary shared by every env, policy, text rendering and export.

Actions are one flat ``Discrete``: the world actions come first (streaming tasks have none beyond
``SKIP``), then one block of ``K`` actions per slot op, in the order of :class:`Op`.
"""

from __future__ import annotations

from enum import IntEnum


class Op(IntEnum):
    """A memory operation. ``SKIP`` takes no slot; every other op names one slot."""

    SKIP = 0  # let the item pass; on a query, submit `recall` as the answer (advances)
    STORE = 1  # write the item into a free slot (advances)
    EDIT = 2  # overwrite an occupied slot with the item: an update of what it holds (advances)
    EVICT = 3  # clear a slot (does not advance)
    RETRIEVE = 4  # read a slot into `recall` (does not advance)


SLOT_OPS = (Op.STORE, Op.EDIT, Op.EVICT, Op.RETRIEVE)
ADVANCING_OPS = frozenset({Op.SKIP, Op.STORE, Op.EDIT})


class ActionCodec:
    """Maps ``(op, slot)`` to the flat action index and back.

    ``num_world_actions`` world actions (index 0 is always the stream-advancing no-op, ``SKIP``)
    are followed by ``len(SLOT_OPS)`` blocks of ``capacity`` slot actions.
    """

    def __init__(self, capacity: int, num_world_actions: int = 1):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if num_world_actions < 1:
            raise ValueError("there must be at least one world action (SKIP)")
        self.capacity = capacity
        self.num_world_actions = num_world_actions
        self.n = num_world_actions + len(SLOT_OPS) * capacity

    def encode(self, op: Op, slot: int = 0) -> int:
        op = Op(op)
        if op is Op.SKIP:
            return 0
        if not 0 <= slot < self.capacity:
            raise ValueError(f"slot {slot} out of range [0, {self.capacity})")
        return self.num_world_actions + (op - 1) * self.capacity + slot

    def decode(self, action: int) -> tuple[Op, int]:
        """Return ``(op, slot)``; world actions other than SKIP decode as ``(SKIP, -1 - index)``
        so embodied envs can tell moves apart while slot ops stay uniform."""
        a = int(action)
        if not 0 <= a < self.n:
            raise ValueError(f"action {a} out of range [0, {self.n})")
        if a < self.num_world_actions:
            return Op.SKIP, (0 if a == 0 else -a)
        op_index, slot = divmod(a - self.num_world_actions, self.capacity)
        return Op(op_index + 1), slot
