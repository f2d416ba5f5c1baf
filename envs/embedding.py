"""Synthetic embeddings with controlled structure, built from unit vectors.

Every synthetic item is a normalised mix of unit "components": a fact is ``key + value + fact
direction + noise``, its query is ``key + query direction + noise``, a distractor is noise. So an
update of a fact is similar to the fact it replaces (shared key), a query is similar to the fact it
asks about, and distractors are dissimilar to everything. Per-episode components (keys, values,
topics) come from the episode's random generator; the two global directions are fixed for a given
dimension, the way "personal facts" occupy a stable region of a real sentence-embedding space.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

# Weights of the components an embedding is mixed from. W_FACT (the shared "this states a fact"
# direction) against D decides whether relevance is readable from the item alone: a random
# distractor's projection on it has std 1/sqrt(D). At W_FACT 0.8 and D 64 a linear probe tells
# facts from distractors 99.8% of the time, while two different facts stay far apart for similarity
# merging (cosine ~0.3 vs ~0.75 for two versions of one fact). At 0.6 and D 32 the probe misread
# ~7% and capped observation-only policies near 0.7 on Conflict-Medium
# (`python -m memgym.benchmarks.learnability`); a larger W_FACT makes all facts look alike.
W_KEY, W_VALUE, W_FACT, W_QUERY, W_TOPIC = 1.0, 0.7, 0.8, 0.7, 0.8


def unit(vectors: np.ndarray) -> np.ndarray:
    """Normalise along the last axis (rows of zeros stay zero)."""
    # What `np.linalg.norm(vectors, axis=-1, keepdims=True)` computes, without its overhead.
    norms = np.sqrt(np.add.reduce(vectors * vectors, axis=-1, keepdims=True))
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def random_units(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return unit(rng.standard_normal((n, dim)))


def gaussian_uniforms(count: int) -> int:
    """How many uniforms `gaussians_from` turns into `count` normal numbers."""
    return 2 * ((count + 1) // 2)


def gaussians_from(u: np.ndarray, n: int, dim: int) -> np.ndarray:
    """`[..., n, dim]` standard normal float32 numbers by the Box-Muller transform of uniforms
    already drawn: `u` is `[..., gaussian_uniforms(n * dim)]` float32 (radii from the first half,
    angles from the second). Batched over the leading axes, so many episodes' draws are transformed
    at once; `u` is left unchanged. (Float32 uniforms cut the tails at ~5.8 sigma, a probability
    of ~1e-8 per number.)"""
    h = u.shape[-1] // 2
    radius = np.log1p(-u[..., :h])  # log of a uniform in (0, 1]
    radius *= -2.0
    np.sqrt(radius, out=radius)
    angle = u[..., h:] * np.float32(2.0 * np.pi)
    out = np.empty((*u.shape[:-1], 2 * h), np.float32)
    np.cos(angle, out=out[..., :h])
    np.sin(angle, out=out[..., h:])
    out[..., :h] *= radius
    out[..., h:] *= radius
    return out[..., : n * dim].reshape(*u.shape[:-1], n, dim)


def fixed_direction(name: str, dim: int) -> np.ndarray:
    """A unit vector that depends only on ``name`` and ``dim`` (same in every episode)."""
    return _fixed_direction(name, dim).copy()


@functools.lru_cache(maxsize=64)
def _fixed_direction(name: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()) + dim)
    return random_units(rng, 1, dim)[0]
