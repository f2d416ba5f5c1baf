"""The memory-op vocabulary shared by every env, policy, text rendering and export.

Actions are one flat ``Discrete``: the world actions come first (streaming tasks have none beyond
``SKIP``), then one block of ``K`` actions per slot op, in the order of :class:`Op`.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


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


class MaskGather:
    """The validity rules of the memory contract as one gather: ``mask = source[table]``.

    ``source`` is ``[0, 1, occupied (K), free (K)]`` (int8), kept current by the env as slots fill
    and empty; ``tables[is_query, spent]`` maps each action to its entry, for the four cases of
    (is the current item a query? are the non-advancing ops spent?). A gather is a fresh array,
    so a mask handed out never aliases ``source``.
    """

    def __init__(self, codec: ActionCodec):
        K = codec.capacity
        self.source = np.zeros(2 + 2 * K, np.int8)
        self.clear()
        slots = np.arange(K)
        occupied, free, never = 2 + slots, 2 + K + slots, np.zeros(K, np.intp)
        self.tables: dict[tuple[bool, bool], np.ndarray] = {}
        for is_query in (False, True):
            for spent in (False, True):
                entry = {
                    Op.STORE: never if is_query else free,  # nothing to write on a query
                    Op.EDIT: never if is_query else occupied,
                    Op.EVICT: never if spent else occupied,
                    Op.RETRIEVE: never if spent else occupied,
                }
                table = np.zeros(codec.n, np.intp)
                table[: codec.num_world_actions] = 1  # SKIP (and world actions) always valid
                for op in SLOT_OPS:
                    table[codec.encode(op, 0) + slots] = entry[op]
                self.tables[is_query, spent] = table

    def set_occupied(self, slot: int, occupied: bool) -> None:
        K = (len(self.source) - 2) // 2
        self.source[2 + slot] = occupied
        self.source[2 + K + slot] = not occupied

    def clear(self) -> None:
        """Every slot free."""
        K = (len(self.source) - 2) // 2
        self.source[:2] = (0, 1)
        self.source[2 : 2 + K] = 0
        self.source[2 + K :] = 1
