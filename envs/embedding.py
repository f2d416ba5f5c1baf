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
import math
import zlib

import numpy as np


def unit(vectors: np.ndarray) -> np.ndarray:
    """Normalise along the last axis (rows of zeros stay zero)."""
    # What `np.linalg.norm(vectors, axis=-1, keepdims=True)` computes, without its overhead.
    norms = np.sqrt(np.add.reduce(vectors * vectors, axis=-1, keepdims=True))
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def unit_vector(v: np.ndarray) -> np.ndarray:
    """`unit` of one float64 vector, which it overwrites: the per-item fast path."""
    v /= max(math.sqrt(v.dot(v)), 1e-12)
    return v.astype(np.float32)


def random_units(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return unit(rng.standard_normal((n, dim)))


def gaussians(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """`[n, dim]` standard normal float32 numbers by the Box-Muller transform of float32
    uniforms: about twice as fast as `rng.standard_normal` here, and the per-item cost of a
    stream is mostly these draws. (Float32 uniforms cut the tails at ~5.8 sigma, a probability
    of ~1e-8 per number.)"""
    return gaussians_from(rng.random(gaussian_uniforms(n * dim), dtype=np.float32), n, dim)


def gaussian_uniforms(count: int) -> int:
    """How many uniforms `gaussians_from` turns into `count` normal numbers."""
    return 2 * ((count + 1) // 2)


def gaussians_from(u: np.ndarray, n: int, dim: int) -> np.ndarray:
    """`gaussians` of uniforms already drawn: `u` is `[..., gaussian_uniforms(n * dim)]` float32
    (radii from the first half, angles from the second), the result `[..., n, dim]`. Batched over
    the leading axes, so many episodes' draws are transformed at once; `u` is left unchanged."""
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


class UnitSource:
    """Random unit vectors (distractors, fresh values of updated facts) drawn in blocks, so a
    million-item stream costs one vector per item on average and a fixed block of memory. The
    block size does not change the vectors drawn (the generator fills blocks in sequence), only
    how much an episode that ends early draws for nothing. Rows are views of a block that is
    replaced, never written, when used up."""

    dtype = np.float32

    def __init__(self, rng: np.random.Generator, dim: int, block: int = 64):
        self._rng = rng
        self._dim = dim
        self._block = block
        self._buffer = np.empty((0, dim), np.float32)
        self._next = 0

    def _fill(self) -> np.ndarray:
        return unit(gaussians(self._rng, self._block, self._dim))

    def draw(self) -> np.ndarray:
        if self._next == len(self._buffer):
            self._buffer = self._fill()
            self._next = 0
        row = self._buffer[self._next]
        self._next += 1
        return row

    def take(self, n: int) -> np.ndarray:
        """The next `n` rows as a new array: the same rows as `n` calls of `draw`."""
        start = self._next
        if start + n <= len(self._buffer):
            self._next = start + n
            return self._buffer[start : start + n].copy()
        out = np.empty((n, self._dim), self.dtype)
        done = 0
        while done < n:
            if self._next == len(self._buffer):
                self._buffer = self._fill()
                self._next = 0
            k = min(n - done, len(self._buffer) - self._next)
            out[done : done + k] = self._buffer[self._next : self._next + k]
            self._next += k
            done += k
        return out


class NoiseSource(UnitSource):
    """Isotropic Gaussian noise vectors (float32, std `scale` per coordinate), in blocks."""

    def __init__(self, rng: np.random.Generator, dim: int, scale: float, block: int = 64):
        super().__init__(rng, dim, block)
        self._scale = scale

    def _fill(self) -> np.ndarray:
        noise = gaussians(self._rng, self._block, self._dim)
        noise *= np.float32(self._scale)
        return noise


DistractorSource = UnitSource  # the name the stream used first
