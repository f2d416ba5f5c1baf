"""Dot products of the streaming family's embeddings, compiled, shared by the single env and the
native vector env so that both compute every similarity with the same arithmetic.

Why not BLAS: `np.dot` hands float32 products to whichever BLAS numpy was built with, which sums
in an order of its own (blocked, vectorised, sometimes dependent on the CPU), so a similarity
computed per env and the same similarity computed in a compiled batch loop can differ in the last
bit, and "vector env == N single envs, bit for bit" would hang on the BLAS build. Here the sums
run in an order fixed by the code (numba keeps it: no fastmath), so the result depends only on
the inputs, whichever env computes it.

The kernels of `streaming_step.py` inline these. numba's on-disk cache only notices edits of a
kernel's own file, so `streaming_step.py` records this file's hash (`SIMILARITY_SHA256`): an edit
here must come with the new hash there, and that edit is what recompiles the kernels (a test
checks the hash).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def dot32(a, b) -> np.float32:
    """`a . b` of two float32 vectors: eight float32 partial sums over the coordinates by their
    index modulo 8, added in a fixed tree. One running sum would wait on each addition in turn
    (the order may not change); eight independent ones keep the vector units busy. (Summing in
    float64 instead cost 2-3x more here, for accuracy the similarities do not need: eight partial
    sums of eight terms each already err less than one running float32 sum.)"""
    n = a.shape[0]
    z = np.float32(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    m = n - n % 8
    for d in range(0, m, 8):
        s0 += a[d] * b[d]
        s1 += a[d + 1] * b[d + 1]
        s2 += a[d + 2] * b[d + 2]
        s3 += a[d + 3] * b[d + 3]
        s4 += a[d + 4] * b[d + 4]
        s5 += a[d + 5] * b[d + 5]
        s6 += a[d + 6] * b[d + 6]
        s7 += a[d + 7] * b[d + 7]
    for d in range(m, n):
        s0 += a[d] * b[d]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


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
