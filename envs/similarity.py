"""Dot products of the streaming family's embeddings, compiled, shared by the single env and the
native vector env so that both compute every similarity with the same arithmetic.

Why not BLAS: `np.dot` hands float32 products to whichever BLAS numpy was built with, which sums
in an order of its own (blocked, vectorised, sometimes dependent on the CPU), so a similarity
computed per env and the same similarity computed in a compiled batch loop can differ in the last
bit, and "vector env == N single envs, bit for bit" would hang on the BLAS build. Here each product
of two float32 numbers is exact in float64, and the sum runs in index order in float64 (numba
keeps the order: no fastmath), so the result depends only on the inputs; it is then rounded once
to float32, which is also a little more accurate than a float32 accumulation.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def dot32(a, b) -> np.float32:
    """`a . b` of two float32 vectors, summed in float64 in index order."""
    acc = 0.0
    for d in range(a.shape[0]):
        acc += np.float64(a[d]) * np.float64(b[d])
    return np.float32(acc)


@njit(cache=True, inline="always")
def matvec32(mat, vec, out) -> None:
    """`out[k] = mat[k] . vec` for the rows of a `[K, D]` float32 matrix (`out` may be strided)."""
    for k in range(mat.shape[0]):
        out[k] = dot32(mat[k], vec)


@njit(cache=True, inline="always")
def unit32_of(v, out) -> None:
    """`out` = the float64 vector `v` scaled to unit length, as float32 (zeros if `v` is 0)."""
    acc = 0.0
    for d in range(v.shape[0]):
        acc += v[d] * v[d]
    n = np.sqrt(acc)
    if n > 0.0:
        for d in range(v.shape[0]):
            out[d] = np.float32(v[d] / n)
    else:
        out[:] = 0.0


# Entry points for the single env (not inlined into a caller, so each is one compiled call).

@njit(cache=True)
def dot(a, b) -> np.float32:
    return dot32(a, b)


@njit(cache=True)
def matvec(mat, vec, out) -> None:
    matvec32(mat, vec, out)


@njit(cache=True)
def unit32(v, out) -> None:
    unit32_of(v, out)
