"""The compiled stream generator: its random numbers, batching, block boundaries, the futures the
oracle reads, and constant memory on long streams."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from helpers import make
from numba import njit

from memgym.envs import kernel_random, stream_kernel, streaming_step
from memgym.envs.config import ConfigError, QuerySchedule, StreamConfig
from memgym.envs.kernel_random import normals, seed_row, shuffle, uniform
from memgym.envs.stream import NEVER, ItemKind, StreamBatch, TaskStructure
from memgym.envs.stream_block import StreamBlocks

BLOCK_FIELDS = ("kind", "emb", "fact", "version", "answer", "answer_version", "asked_version",
                "next_update")


def test_stream_kernels_record_the_generator_they_were_compiled_against():
    """numba's on-disk cache would keep running stream kernels compiled against an older
    kernel_random.py: an edit there must come with its new hash in stream_kernel.py."""
    with open(kernel_random.__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert stream_kernel.KERNEL_RANDOM_SHA256 == digest, (
        f"kernel_random.py changed: set KERNEL_RANDOM_SHA256 = {digest!r} in stream_kernel.py")


def test_step_kernels_record_the_stream_kernels_they_were_compiled_against():
    """The same for the vector env's step (streaming_step.py), which calls `fill_rows`."""
    with open(stream_kernel.__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert streaming_step.STREAM_KERNEL_SHA256 == digest, (
        f"stream_kernel.py changed: set STREAM_KERNEL_SHA256 = {digest!r} in streaming_step.py")


@njit
def _draw(seed, n, dim):
    state = np.zeros(4, np.uint64)
    seed_row(state, seed)
    out = np.empty((n, dim))
    for i in range(n):
        normals(state, out[i])
    u = np.empty(n)
    for i in range(n):
        u[i] = uniform(state)
    perm = np.arange(10)
    shuffle(state, perm)
    return out, u, perm


def test_generator_is_deterministic_per_seed_and_distinct_across_seeds():
    a, ua, pa = _draw(7, 100, 5)
    b, ub, pb = _draw(7, 100, 5)
    c, _, _ = _draw(8, 100, 5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ua, ub)
    np.testing.assert_array_equal(pa, pb)
    assert not np.isin(a, c).any()  # neighbouring seeds share no number
    assert sorted(pa) == list(range(10))


def test_normals_and_uniforms_are_statistically_sane():
    z, u, _ = _draw(123, 40_000, 7)
    z = z.ravel()  # 280,000 numbers: the mean's std is 0.0019, the variance's 0.0027
    assert abs(z.mean()) < 0.01
    assert abs(z.var() - 1.0) < 0.015
    assert abs(np.mean(z**4) - 3.0) < 0.1  # Gaussian kurtosis
    assert abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.003
    assert abs(np.mean(np.abs(z) > 3.0) - 0.0027) < 0.0005  # the ziggurat's tail and wedges
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005


def _config(**kw) -> StreamConfig:
    base = dict(length=300, num_facts=6, num_queries=8, distractor_rate=0.7, update_rate=0.5,
                query_schedule=QuerySchedule.INTERLEAVED, noise=0.2, dim=16)
    return StreamConfig(**{**base, **kw})


def _task(F: int, topics: bool = False) -> TaskStructure:
    topic_of = np.arange(F) % 2 if topics else np.full(F, -1)
    return TaskStructure(queryable=np.ones(F, bool), answer_of=np.arange(F),
                         link_of=np.full(F, -1), topic_of=topic_of, num_topics=2 if topics else 0)


def _multihop_task(F: int) -> TaskStructure:
    chains = F // 2
    targets = np.arange(chains, F)
    return TaskStructure(queryable=np.arange(F) < chains,
                         answer_of=np.concatenate([targets, targets]),
                         link_of=np.concatenate([targets, np.full(chains, -1)]),
                         topic_of=np.full(F, -1), updatable=np.arange(F) >= chains)


def generate(cfg: StreamConfig, seeds, tasks, block: int, rows_per_call=None,
             threads: bool = False) -> dict:
    """Every item of each seed's stream, `{field: [N, L, ...]}`, made `block` items at a time
    with `rows_per_call` rows in each kernel call (default: all rows at once), spread over
    threads or not."""
    N, L = len(seeds), cfg.length
    batch, blocks = StreamBatch(cfg, N), StreamBlocks(N, block, cfg.dim)
    batch.parallel_rows = 1 if threads else N + 1
    rows = np.arange(N)
    groups = [rows] if rows_per_call is None else np.array_split(rows, N // rows_per_call)
    for g in groups:
        batch.start(g, np.asarray(seeds)[g], [tasks[i] for i in g])
    out = {f: np.zeros((N, L) + getattr(blocks, f).shape[2:], getattr(blocks, f).dtype)
           for f in BLOCK_FIELDS}
    for t in range(0, L, block):
        for g in groups:
            batch.fill(g, np.full(len(g), t, np.int64), blocks)
            n = min(block, L - t)
            assert (blocks.start[g] == t).all() and (blocks.filled[g] == n).all()
            for f in BLOCK_FIELDS:
                out[f][g, t : t + n] = getattr(blocks, f)[g, :n]
    out["query_pos"] = batch.query_pos.copy()
    return out


@pytest.mark.parametrize("task", ["plain", "topics", "multihop"])
def test_batched_fills_equal_row_by_row_fills_and_any_block_size(task):
    """One call for all rows == one call per row == rows over threads, and blocks of 1, 7, 64 or
    the whole stream make the same items: a row's draws depend only on its seed and the items
    made before."""
    cfg = _config()
    F = cfg.num_facts
    tasks = [{"plain": _task(F), "topics": _task(F, True), "multihop": _multihop_task(F)}[task]
             for _ in range(4)]
    seeds = [3, 99, 2**62 + 5, 0]
    ref = generate(cfg, seeds, tasks, 64)
    for block, per_call, threads in ((64, 1, False), (7, None, False), (1, 2, False),
                                     (cfg.length, None, False), (64, None, True), (5, 2, True)):
        other = generate(cfg, seeds, tasks, block, per_call, threads)
        for f in ref:
            np.testing.assert_array_equal(ref[f], other[f], err_msg=f"{f} block={block}")
    assert not np.array_equal(ref["emb"][0], ref["emb"][1])  # rows differ



def test_fills_capped_by_limit_make_the_same_items():
    """A fill capped at `limit` items (the vector env makes only the first item of a new episode
    on the thread that starts it) and full blocks after it: the same stream."""
    cfg = _config()
    N, L, B = 3, cfg.length, 16
    tasks, seeds = [_task(cfg.num_facts)] * N, [5, 6, 7]
    ref = generate(cfg, seeds, tasks, B)
    batch, blocks = StreamBatch(cfg, N), StreamBlocks(N, B, cfg.dim)
    rows = np.arange(N)
    batch.start(rows, np.asarray(seeds), tasks)
    emb, t = np.zeros((N, L, cfg.dim), np.float32), 0
    for limit in [1, 2, None] + [None] * L:
        if t >= L:
            break
        batch.fill(rows, np.full(N, t, np.int64), blocks, limit=limit)
        n = int(blocks.filled[0])
        assert n == min(B if limit is None else limit, L - t)
        emb[:, t : t + n] = blocks.emb[:, :n]
        t += n
    np.testing.assert_array_equal(emb, ref["emb"])

def _scan(items: dict, r: int, F: int):
    """Brute force over one generated stream: per position, each fact's current version."""
    L = items["kind"].shape[1]
    version = np.full((L, F), -1)
    cur = np.full(F, -1)
    for t in range(L):
        if items["kind"][r, t] == ItemKind.FACT:
            f, v = items["fact"][r, t], items["version"][r, t]
            assert v in (cur[f], cur[f] + 1)  # versions start at 0 and grow by one
            cur[f] = v
        version[t] = cur
    return version


@pytest.mark.parametrize("schedule", list(QuerySchedule))
def test_snapshots_and_next_update_agree_with_a_scan_of_the_stream(schedule):
    cfg = _config(length=600, query_schedule=schedule)
    F = cfg.num_facts
    tasks = [_multihop_task(F), _task(F, True), _task(F)]
    items = generate(cfg, [1, 2, 3], tasks, 64)
    fact_end = cfg.length - cfg.num_queries if schedule is QuerySchedule.END else cfg.length
    for r, task in enumerate(tasks):
        version = _scan(items, r, F)
        kind, fact = items["kind"][r], items["fact"][r]
        queries = np.flatnonzero(kind == ItemKind.QUERY)
        np.testing.assert_array_equal(queries, items["query_pos"][r])
        assert not (np.flatnonzero(kind == ItemKind.FACT) >= fact_end).any()
        for p in queries:
            f, a = fact[p], items["answer"][r, p]
            assert task.queryable[f] and a == task.answer_of[f]
            assert items["answer_version"][r, p] == version[p, a] >= 0  # introduced before
            assert items["asked_version"][r, p] == version[p, f] >= 0
        starts = np.flatnonzero((kind == ItemKind.FACT) & (items["next_update"][r] != -1))
        for t in starts:
            f, v = fact[t], items["version"][r, t]
            later = np.flatnonzero((fact == f) & (items["version"][r] == v + 1))
            assert items["next_update"][r, t] == (later[0] if len(later) else NEVER)
        # Every mention that starts a version says when it ends, and only those.
        first = [t for t in range(cfg.length) if kind[t] == ItemKind.FACT
                 and (t == 0 or version[t - 1, fact[t]] != items["version"][r, t])]
        np.testing.assert_array_equal(starts, first)


@pytest.mark.parametrize("env_id", ["memgym/Conflict-Easy-v0", "memgym/MultiHop-Medium-v0",
                                    "memgym/TestTimeLearning-Easy-v0"])
def test_next_use_agrees_with_a_scan_of_the_stream(env_id):
    """The single env's `next_use` (what the oracle reads) against the brute-force answer: the
    first later query that needs exactly this version of the fact, before it is updated."""
    env = make(env_id)
    env.reset(seed=11)
    s, L, F = env.stream, env.config.length, env.config.num_facts
    kinds, facts, versions, answers = [], [], [], []
    checks = []
    for t in range(L):
        kind, _, f, v = s.item(t)
        kinds.append(kind)
        facts.append(f)
        versions.append(s.version.copy())
        answers.append(int(s.query_answers[s._next_query - 1]) if kind == ItemKind.QUERY else -1)
        for g in range(F):  # the current version and the one before (no longer needed)
            for v in range(max(int(s.version[g]) - 1, 0), int(s.version[g]) + 1):
                checks.append((t, g, v, s.next_use(g, v, t)))
    assert len(checks) > L
    for t, g, v, got in checks:
        want = NEVER
        if v == versions[t][g]:
            for p in range(t, L):
                if versions[p][g] != v:
                    break
                # A query needs its answer fact and the fact it asks about (the same fact but
                # in multi-hop, where the asked fact is the bridge).
                if kinds[p] == ItemKind.QUERY and g in (answers[p], facts[p]):
                    want = p
                    break
        assert got == want, (t, g, v)


def test_impossible_query_schedules_are_config_errors():
    cfg = _config(length=40, num_facts=4, num_queries=16, distractor_rate=0.9)
    batch = StreamBatch(cfg, 1)
    with pytest.raises(ConfigError, match="too short for 16 interleaved queries"):
        for seed in range(20):
            batch.start(np.zeros(1, np.int64), np.array([seed]), [_task(4)])


def test_million_item_stream_keeps_constant_state():
    """The whole state of a stream is its `StreamBatch` arrays: the same bytes at 1,000 and at
    1,000,000 items, and a million items are made in order with the schedule still sane."""
    def state_bytes(length):
        b = StreamBatch(_config(length=length), 1)
        return sum(v.nbytes for v in vars(b).values() if isinstance(v, np.ndarray))

    assert state_bytes(1_000) == state_bytes(1_000_000)
    cfg = _config(length=1_000_000, query_schedule=QuerySchedule.END)
    batch, blocks = StreamBatch(cfg, 1), StreamBlocks(1, 4096, cfg.dim)
    row = np.zeros(1, np.int64)
    batch.start(row, np.array([5]), [_task(cfg.num_facts)])
    counts = np.zeros(3, np.int64)
    for t in range(0, cfg.length, 4096):
        batch.fill(row, np.array([t]), blocks)
        counts += np.bincount(blocks.kind[0, : blocks.filled[0]], minlength=3)
    assert counts[ItemKind.QUERY] == cfg.num_queries
    facts = counts[ItemKind.FACT] / (cfg.length - cfg.num_queries)
    assert abs(facts - (1 - cfg.distractor_rate)) < 0.01  # mentions fill their share
    assert (batch.gen_version[0] > 1000).all()  # updates kept coming to the end
