"""Known-answer tests for every metric in `info["metrics"]`.

Each test scripts a policy on a tiny stream (one or two facts, one or two queries) by reading the
hidden state (`get_state()`), records the stream it saw, and checks every metric against a value
computed by hand from that stream: e.g. "store the fact, then evict it" must give
`evictions == 1`, `abstentions == 1`, `lost_evicted == 1`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from helpers import make

from memgym.envs import ItemKind, Op
from memgym.envs.episode_metrics import METRIC_NAMES

# One fact, one query at the end, two slots: short enough to reason about item by item.
TINY = dict(length=20, num_facts=1, num_queries=1, capacity=2, query_schedule="end")
CONFLICT = "memgym/Conflict-Easy-v0"


@dataclass
class Episode:
    metrics: dict
    ret: float
    length: int
    items: list = field(default_factory=list)  # (kind, fact, version) per stream position

    def positions(self, kind: ItemKind, fact: int | None = None) -> list[int]:
        return [t for t, (k, f, _) in enumerate(self.items) if k == kind and fact in (None, f)]

    def versions(self, fact: int) -> list[int]:
        return [v for k, f, v in self.items if k == ItemKind.FACT and f == fact]


def play(env_id: str, seed: int, rule, **kwargs) -> Episode:
    """Run one episode; `rule(state, env) -> action` sees `get_state()` before every step."""
    env = make(env_id, **kwargs)
    env.reset(seed=seed)
    items, ret = [], 0.0
    while True:
        s = env.get_state()
        if len(items) == s["t"]:
            items.append((s["item_kind"], s["item_fact"], s["item_version"]))
        _, reward, terminated, truncated, info = env.step(rule(s, env))
        ret += reward
        if terminated or truncated:
            return Episode(info["metrics"], ret, env.config.length, items)


def answer_from(slot: int, reads: int = 1):
    """On a query: RETRIEVE `slot` `reads` times, then SKIP to answer."""

    def on_query(s, env):
        return env.encode(Op.RETRIEVE, slot) if s["inner_ops"] < reads else 0

    return on_query


def scripted(on_fact=None, on_distractor=None, on_query=None):
    """A rule from per-kind callbacks; a missing callback SKIPs."""

    def rule(s, env):
        cb = {ItemKind.FACT: on_fact, ItemKind.DISTRACTOR: on_distractor,
              ItemKind.QUERY: on_query}[s["item_kind"]]
        return cb(s, env) if cb else 0

    return rule


def once(action_fn):
    """A callback that acts on its first call only, then SKIPs."""
    calls = []

    def cb(s, env):
        calls.append(s["t"])
        return action_fn(s, env) if len(calls) == 1 else 0

    return cb


def one_slot_from(ep: "Episode", t: int) -> float:
    """mean_utilisation when one of two slots is full from the write at `t` to the end."""
    return (ep.length - t) * 0.5 / ep.length


def two_facts_kept(ep: "Episode") -> float:
    """mean_utilisation when facts 0 and 1 are each stored at their first mention and kept (two
    slots): one slot full between the two intros, both after."""
    a, b = sorted(ep.positions(ItemKind.FACT, f)[0] for f in (0, 1))
    return ((b - a) * 0.5 + (ep.length - b) * 1.0) / ep.length


def expect(ep: Episode, **expected) -> None:
    """Every metric is checked: those not named must be zero."""
    full = {name: 0 for name in METRIC_NAMES}
    full.update(expected)
    assert set(ep.metrics) == set(METRIC_NAMES)
    for name in ("accuracy", "mean_utilisation"):  # the only non-integer metrics
        full[name] = pytest.approx(full[name], rel=1e-12, abs=0)
    assert ep.metrics == full, f"stream: {ep.items}"


def store_slot(slot):
    return lambda s, env: env.encode(Op.STORE, slot)


# ---- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skip_everything(seed):
    """No memory use: every query is an abstention, and every needed item was skipped."""
    ep = play("memgym/Retrieval-Easy-v0", seed, lambda s, env: 0, num_facts=4, num_queries=4,
              update_rate=0.0, query_schedule="end")
    # Each of the 4 facts is asked once (queries cycle through the facts), never updated.
    expect(ep, abstentions=4, lost_items=4, lost_skipped=4)
    assert ep.ret == 0.0


def test_skip_everything_multihop_counts_bridge_and_target():
    """Multi-hop Easy: 2 chains (bridge + target), 4 queries cycling over the 2 bridges: each query
    needs its bridge and its target, so all 4 facts are lost, each counted once."""
    ep = play("memgym/MultiHop-Easy-v0", 0, lambda s, env: 0, num_facts=4, num_queries=4,
              update_rate=0.0, query_schedule="end")
    expect(ep, abstentions=4, lost_items=4, lost_skipped=4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_store_keep_and_answer(seed):
    """Store the fact at its first mention, keep it, read it at the query: a perfect episode.
    Utilisation: one of two slots is full from the intro (after its write) to the end."""
    ep = play(CONFLICT, seed, scripted(on_fact=once(store_slot(0)), on_query=answer_from(0)),
              update_rate=0.0, **TINY)
    intro = ep.positions(ItemKind.FACT)[0]
    expect(ep, accuracy=1.0, correct=1, writes=1, retrieves=1,
           mean_utilisation=one_slot_from(ep, intro))
    assert ep.ret == 1.0


def test_write_cost_is_charged_per_store_and_edit():
    cost = 0.125
    ep = play(CONFLICT, 0, scripted(on_fact=once(store_slot(0)), on_query=answer_from(0)),
              update_rate=0.0, write_cost=cost, **TINY)
    assert ep.metrics["writes"] == 1 and ep.metrics["correct"] == 1
    assert ep.ret == 1.0 - cost


def test_retrieves_and_invalid_actions_are_counted():
    """Three reads of the same slot on the query (the per-item bound), and two invalid actions
    (EDIT of an empty slot, then an out-of-range index) on the first distractor."""
    sent = []

    def on_distractor(s, env):
        if len(sent) < 2:
            sent.append(s["t"])
            return [env.encode(Op.EDIT, 1), 10_000][len(sent) - 1]
        return 0

    ep = play(CONFLICT, 0, scripted(on_fact=once(store_slot(0)), on_distractor=on_distractor,
                                    on_query=answer_from(0, reads=3)), update_rate=0.0, **TINY)
    assert sent[0] == sent[1]  # both on the same item: at most max_inner_ops = 3 per item
    intro = ep.positions(ItemKind.FACT)[0]
    expect(ep, accuracy=1.0, correct=1, writes=1, retrieves=3, invalid_actions=2,
           mean_utilisation=one_slot_from(ep, intro))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_store_then_evict_is_lost_evicted(seed):
    """Store the fact, evict it on the next item: the query finds nothing (an abstention) and the
    needed item is lost by eviction, even though the fact is restated later (same version)."""
    state = {"stored_at": None, "evicted": False}

    def rule(s, env):
        if s["item_kind"] == ItemKind.FACT and state["stored_at"] is None:
            state["stored_at"] = s["t"]
            return env.encode(Op.STORE, 0)
        if state["stored_at"] is not None and not state["evicted"]:
            state["evicted"] = True
            return env.encode(Op.EVICT, 0)
        return 0

    ep = play(CONFLICT, seed, rule, update_rate=0.0, **TINY)
    assert len(ep.positions(ItemKind.FACT)) >= 2  # premise: restatements came and were skipped
    # Occupied for exactly one advancing step (the STORE itself): 1 of 2 slots, once.
    expect(ep, abstentions=1, writes=1, evictions=1, lost_items=1, lost_evicted=1,
           mean_utilisation=0.5 / ep.length)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overwrite_by_a_distractor_is_lost_overwritten_and_a_wrong_answer(seed):
    """Store the fact, then EDIT its slot with the next distractor: the slot now holds a
    distractor, so reading it at the query gives a wrong answer; the fact was lost by overwrite."""
    state = {"stored": False, "edited": False}

    def rule(s, env):
        if s["item_kind"] == ItemKind.FACT and not state["stored"]:
            state["stored"] = True
            return env.encode(Op.STORE, 0)
        if s["item_kind"] == ItemKind.DISTRACTOR and state["stored"] and not state["edited"]:
            state["edited"] = True
            return env.encode(Op.EDIT, 0)
        if s["item_kind"] == ItemKind.QUERY:
            return answer_from(0)(s, env)
        return 0

    ep = play(CONFLICT, seed, rule, update_rate=0.0, **TINY)
    assert state["edited"]
    intro = ep.positions(ItemKind.FACT)[0]
    expect(ep, wrong=1, writes=1, edits=1, retrieves=1, lost_items=1, lost_overwritten=1,
           mean_utilisation=one_slot_from(ep, intro))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_copies_evicting_one_is_not_a_loss(seed):
    """Store the first two mentions in slots 0 and 1, evict slot 0: a copy survives, so nothing
    is lost and the answer from slot 1 is correct."""
    state = {"writes": 0, "evicted": False}

    def rule(s, env):
        if s["item_kind"] == ItemKind.FACT and state["writes"] < 2:
            state["writes"] += 1
            return env.encode(Op.STORE, state["writes"] - 1)
        if state["writes"] == 2 and not state["evicted"]:
            state["evicted"] = True
            return env.encode(Op.EVICT, 0)
        if s["item_kind"] == ItemKind.QUERY:
            return answer_from(1)(s, env)
        return 0

    ep = play(CONFLICT, seed, rule, update_rate=0.0, **TINY)
    first, second = ep.positions(ItemKind.FACT)[:2]
    # Slot 0 from `first` to `second`, both slots for one step, then slot 1 alone to the end.
    util = (second - first) * 0.5 + 1.0 + (ep.length - second - 1) * 0.5
    expect(ep, accuracy=1.0, correct=1, writes=2, evictions=1, retrieves=1,
           mean_utilisation=util / ep.length)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_keeping_an_old_version_gives_a_stale_answer(seed):
    """Every later mention is an update (update_rate=1). Keep only the first version: the answer
    is stale, and the needed (latest) version was skipped."""
    ep = play(CONFLICT, seed, scripted(on_fact=once(store_slot(0)), on_query=answer_from(0)),
              update_rate=1.0, **TINY)
    versions = ep.versions(0)
    assert versions == list(range(len(versions))) and len(versions) >= 2  # premise: updates came
    intro = ep.positions(ItemKind.FACT)[0]
    expect(ep, stale=1, writes=1, retrieves=1, lost_items=1, lost_skipped=1,
           mean_utilisation=one_slot_from(ep, intro))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_editing_every_update_answers_with_the_latest_version(seed):
    def on_fact(s, env):
        if s["slot_occupied"][0]:
            return env.encode(Op.EDIT, 0)
        return env.encode(Op.STORE, 0)

    ep = play(CONFLICT, seed, scripted(on_fact=on_fact, on_query=answer_from(0)),
              update_rate=1.0, **TINY)
    updates = len(ep.versions(0)) - 1
    assert updates >= 1
    intro = ep.positions(ItemKind.FACT)[0]
    expect(ep, accuracy=1.0, correct=1, writes=1, edits=updates, retrieves=1,
           mean_utilisation=one_slot_from(ep, intro))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edit_with_the_previous_version_after_an_update_is_stale(seed):
    """Store v0, then on the first update do nothing; a slot that still holds v0 while v1 is current
    answers stale. Then on the *next* update EDIT with it: the latest version is kept and the answer
    is right again - the per-version bookkeeping follows the latest mention only."""

    def on_fact(s, env):
        if not s["slot_occupied"][0]:
            return env.encode(Op.STORE, 0)
        if s["item_version"] == 2:
            return env.encode(Op.EDIT, 0)
        return 0

    ep = play(CONFLICT, seed, scripted(on_fact=on_fact, on_query=answer_from(0)),
              update_rate=1.0, **TINY)
    last = ep.versions(0)[-1]
    assert last >= 2  # premise
    util = one_slot_from(ep, ep.positions(ItemKind.FACT)[0])
    if last == 2:
        expect(ep, accuracy=1.0, correct=1, writes=1, edits=1, retrieves=1, mean_utilisation=util)
    else:  # v3 or later came after the edit and was skipped
        expect(ep, stale=1, writes=1, edits=1, retrieves=1, lost_items=1, lost_skipped=1,
               mean_utilisation=util)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_is_the_fraction_of_right_answers(seed):
    """Two facts in slots 0 and 1 (by fact id), two queries at the end; answer the first from the
    right slot and the second from the other fact's slot: one correct, one wrong."""
    answered = []

    def rule(s, env):
        if s["item_kind"] == ItemKind.FACT:
            f = s["item_fact"]
            return env.encode(Op.STORE, f) if not s["slot_occupied"][f] else 0
        if s["item_kind"] == ItemKind.QUERY:
            if s["inner_ops"] == 0:
                answered.append(s["t"])
                right = s["query_answers"][len(answered) - 1]
                slot = right if len(answered) == 1 else 1 - right
                return env.encode(Op.RETRIEVE, slot)
            return 0
        return 0

    ep = play("memgym/Retrieval-Easy-v0", seed, rule, length=24, num_facts=2, num_queries=2,
              capacity=2, update_rate=0.0, query_schedule="end")
    expect(ep, accuracy=0.5, correct=1, wrong=1, writes=2, retrieves=2,
           mean_utilisation=two_facts_kept(ep))
    assert ep.ret == 0.5


def test_same_needed_version_is_lost_once():
    """One fact (never updated), asked twice at the end, never stored: two abstentions, one lost
    item (lost items count (fact, version) pairs, not queries)."""
    ep = play(CONFLICT, 0, lambda s, env: 0, update_rate=0.0, length=20, num_facts=1,
              num_queries=2, capacity=2, query_schedule="end")
    expect(ep, abstentions=2, lost_items=1, lost_skipped=1)


def test_different_needed_versions_are_lost_separately():
    """Interleaved queries on one fact that is updated between them: each query needs a different
    version, so skipping everything loses two items."""
    ep = play(CONFLICT, 0, lambda s, env: 0, update_rate=1.0, length=20, num_facts=1,
              num_queries=2, capacity=2, query_schedule="interleaved")
    q1, q2 = ep.positions(ItemKind.QUERY)
    assert any(k == ItemKind.FACT for k, _, _ in ep.items[q1:q2])  # premise: an update between
    expect(ep, abstentions=2, lost_items=2, lost_skipped=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multihop_reads_bridge_then_target(seed):
    """One chain: bridge (fact 0) points at target (fact 1). Keep both (slot = fact id), read the
    bridge then the target, answer: correct, with two reads."""

    def rule(s, env):
        if s["item_kind"] == ItemKind.FACT:
            f = s["item_fact"]
            return env.encode(Op.STORE, f) if not s["slot_occupied"][f] else 0
        if s["item_kind"] == ItemKind.QUERY:
            assert s["answer_slots"] == [0, 1]
            return [env.encode(Op.RETRIEVE, 0), env.encode(Op.RETRIEVE, 1), 0][s["inner_ops"]]
        return 0

    ep = play("memgym/MultiHop-Easy-v0", seed, rule, length=24, num_facts=2, num_queries=1,
              capacity=2, update_rate=0.0, query_schedule="end")
    expect(ep, accuracy=1.0, correct=1, writes=2, retrieves=2,
           mean_utilisation=two_facts_kept(ep))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multihop_missing_bridge_is_a_lost_item(seed):
    """Keep only the target: the query still needed the bridge, so one item is lost (skipped).
    (Scoring looks only at what is submitted, so reading the target directly still answers.)"""

    def rule(s, env):
        if s["item_kind"] == ItemKind.FACT and s["item_fact"] == 1 and not s["slot_occupied"][0]:
            return env.encode(Op.STORE, 0)
        if s["item_kind"] == ItemKind.QUERY:
            return answer_from(0)(s, env)
        return 0

    ep = play("memgym/MultiHop-Easy-v0", seed, rule, length=24, num_facts=2, num_queries=1,
              capacity=2, update_rate=0.0, query_schedule="end")
    intro = ep.positions(ItemKind.FACT, 1)[0]
    expect(ep, accuracy=1.0, correct=1, writes=1, retrieves=1, lost_items=1, lost_skipped=1,
           mean_utilisation=one_slot_from(ep, intro))


def test_every_metric_has_a_known_answer_test():
    """If a metric is added to the summary, this file must grow a test for it."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    for name in METRIC_NAMES:
        assert source.count(f"{name}=") >= 1, f"no known-answer check names {name}"
    env = make(CONFLICT, **TINY)
    env.reset(seed=0)
    while True:
        *_, terminated, _, info = env.step(0)
        if terminated:
            break
    assert tuple(info["metrics"]) == METRIC_NAMES
