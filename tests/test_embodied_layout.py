"""Batched episode layouts (`envs/embodied_layout.py`) keep each task's rules of placement and
draw what a generator would: distinct cells where they must be, and every choice reachable."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import memgym.envs  # noqa: F401  (registers the envs)
from memgym.envs.embodied_layout import first_of_permutation, pick

EPISODES = 2000


def layouts_of(env_id: str, episodes: int = EPISODES, **kw):
    env = gym.make(env_id, **kw).unwrapped
    blocks = np.stack([env.draw_episode(seed) for seed in range(episodes)])
    return env.config, type(env).layouts(env.config, blocks)


def cell_ids(cells: np.ndarray, side: int) -> np.ndarray:
    return (cells[..., 0] - 1) * side + (cells[..., 1] - 1)


def test_pick_is_uniform_and_in_range_even_at_the_top_of_float32():
    top = np.nextafter(np.float32(1), np.float32(0))
    assert pick(np.array([0.0, top], np.float32), 49).tolist() == [0, 48]
    counts = np.bincount(pick(np.random.default_rng(0).random(70_000, np.float32), 7), minlength=7)
    assert counts.min() > 9_000 and counts.max() < 11_000


def test_first_of_permutation_draws_distinct_indices_uniformly():
    u = np.random.default_rng(1).random((20_000, 6), np.float32)
    chosen = first_of_permutation(u, 3)
    assert all(len(set(row)) == 3 for row in chosen.tolist())
    counts = np.bincount(chosen.ravel(), minlength=6)  # each index is chosen half the time
    assert np.all(np.abs(counts / 20_000 - 0.5) < 0.02)


@pytest.mark.parametrize("level", ["Easy", "Medium", "Hard"])
def test_object_recall_layouts(level):
    cfg, L = layouts_of(f"memgym/ObjectRecall-{level}-v0")
    S, N, C, Dc = cfg.room_size, cfg.num_objects, cfg.num_clutter, cfg.num_decoys
    origin, decoys = L.task["origin"], L.task["decoy_cells"]
    standing = cell_ids(L.entity_cells[:, : N + C], S)
    assert all(len(set(row)) == N + C for row in standing.tolist())  # objects, clutter apart
    assert (L.entity_cells[:, N + C :] == -1).all()  # decoys and the cue are not there yet
    clutter = cell_ids(L.entity_cells[:, N : N + C], S)
    decoy = cell_ids(decoys, S)
    assert all(len(set(d)) == Dc and not set(d) & set(c) for d, c in zip(decoy.tolist(), clutter.tolist()))
    assert ((1 <= origin) & (origin <= S)).all() and ((1 <= L.pos) & (L.pos <= S)).all()
    # Every cell hosts the first object in some episode; every object is cued in some.
    assert len(np.unique(cell_ids(origin[:, 0], S))) == S * S
    assert set(L.task["target"].tolist()) == set(range(N))
    # The cue resembles the object it names more than any other object.
    cue = L.embeddings[:, N + C + Dc]
    sims = np.einsum("rd,rnd->rn", cue, L.embeddings[:, :N])
    assert (sims.argmax(1) == L.task["target"]).all()
    assert np.allclose(np.linalg.norm(L.embeddings[:, : N + C + Dc + 2], axis=-1), 1, atol=1e-5)


def test_rearrange_layouts():
    cfg, L = layouts_of("memgym/Rearrange-Medium-v0")
    S, N, C, M = cfg.room_size, cfg.num_objects, cfg.num_clutter, cfg.num_moved
    every = np.concatenate([L.entity_cells, L.task["dest_cells"]], axis=1)
    assert all(len(set(row)) == N + C + M for row in cell_ids(every, S).tolist())
    moved = L.task["moved"]
    assert (np.diff(moved, axis=1) > 0).all() and ((0 <= moved) & (moved < N)).all()
    assert set(map(tuple, moved.tolist())) == {(a, b) for a in range(N) for b in range(a + 1, N)}
    assert (L.num_entities == N + C + 1).all()


def test_cue_corridor_layouts():
    cfg, L = layouts_of("memgym/CueCorridor-Medium-v0", episodes=500)
    nd, r = cfg.num_doors, cfg.view_radius
    scenery = L.num_entities - nd - 2
    span = cfg.length - nd - r - 1
    assert abs(scenery.mean() / span - cfg.distractor_rate) < 0.01
    for row, count in enumerate(scenery.tolist()):  # scenery fills entities nd+1 .. in order
        cols = L.entity_cells[row, nd + 1 : nd + 1 + count, 1]
        assert (np.diff(cols) > 0).all() and cols.min() >= 2 and cols.max() <= cfg.length - nd - r
        assert (L.entity_cells[row, nd + 1 + count :] == -1).all()
        assert not L.embeddings[row, nd + 2 + count :].any()  # past the backdrop: empty rows
    assert set(L.task["correct"].tolist()) == set(range(nd))
    cue = L.embeddings[np.arange(len(scenery)), nd]
    door = L.embeddings[np.arange(len(scenery)), L.task["correct"]]
    np.testing.assert_array_equal(cue, door)
