"""Random numbers inside numba kernels: one small generator state per row of a batch.

Each row (an env's episode) owns a `uint64[4]` xoshiro256** state, seeded by splitmix64 from one
integer, so rows draw independently of each other and of how rows are grouped into kernel calls:
a row's numbers depend only on its seed and on how many it has drawn. The functions take the
row's state (`state[i]`, a view) and advance it in place.

Normals come from a ziggurat (Marsaglia and Tsang's method, 256 layers, tables built below at
import): one 64-bit draw gives the layer (8 bits), the sign (1 bit) and a 52-bit uniform, and
~99% of numbers are accepted on that draw with one compare and one multiply; the rest (a
layer's wedge, or the tail beyond `_R`) take a few more uniforms and an exp or logs. At 0.18 us
per 64 numbers it was 2x faster than the polar form of Box-Muller and 5.5x faster than its
sin/cos form here, and a stream's cost per item is mostly these draws. How many draws a vector
takes varies, but only with the state: a row stays deterministic.

The per-number functions are inlined into their callers by numba itself (`inline="always"`):
leaving it to LLVM made a stream item cost 0.49 instead of 0.27 us, for ~1 s more compile time.

numba's cache keys a compiled function on the source of its own file only: an edit here does not
recompile the cached kernels of stream_kernel.py that call these. So stream_kernel.py records
this file's hash (`KERNEL_RANDOM_SHA256`); update it with any edit here (a test checks it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

STATE_WORDS = 4

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW8 = np.uint64(0xFF)
_INV_2_52 = 1.0 / 4503599627370496.0
_INV_2_53 = 1.0 / 9007199254740992.0


def _ziggurat_tables(layers: int = 256, r: float = 3.6541528853610088):
    """Layer `i` is the box `[0, X[i]] x [f(X[i]), f(X[i + 1])]` under `f(x) = exp(-x^2 / 2)`,
    every box of the same area `v`; the base layer's box (`X[0] = v / f(r)`) stands for the
    strip under `f(r)` plus the tail beyond `r` (`r` is the value for which 256 boxes close at
    the top, `f(X[256]) = 1`). A point of box `i` left of `X[i + 1]` is under the curve."""
    f = lambda x: math.exp(-0.5 * x * x)  # noqa: E731
    v = r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = np.zeros(layers + 1)
    x[0], x[1] = v / f(r), r
    for i in range(1, layers - 1):
        x[i + 1] = math.sqrt(-2.0 * math.log(f(x[i]) + v / x[i]))
    fx = np.exp(-0.5 * x * x)
    fx[layers] = 1.0
    return x, x[1:] / x[:-1], fx


_R = 3.6541528853610088
_X, _INNER, _FX = _ziggurat_tables(r=_R)


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def seed_row(state, seed) -> None:
    """Fill one row's state from `seed` (any int64) by splitmix64, as xoshiro's authors advise:
    nearby seeds give unrelated states, and the state is never all zeros."""
    z = np.uint64(seed)
    for w in range(STATE_WORDS):
        z = z + _GOLDEN
        x = z
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        state[w] = x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def next_u64(state):
    """xoshiro256**: the next 64 random bits of this row."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return result


@njit(cache=True, inline="always")
def uniform(state) -> float:
    """Uniform in [0, 1) with 53 random bits."""
    return float(next_u64(state) >> np.uint64(11)) * _INV_2_53


@njit(cache=True, inline="always")
def below(state, n) -> int:
    """Uniform integer in [0, n) (n small against 2**53, so the bias is negligible)."""
    return int(uniform(state) * n)


@njit(cache=True)
def normals(state, out) -> None:
    """Fill the float64 vector `out` with standard normal numbers."""
    for d in range(out.shape[0]):
        out[d] = normal(state)


@njit(cache=True, inline="always")
def normal(state) -> float:
    """One standard normal number (the ziggurat; see the module docstring)."""
    while True:
        bits = next_u64(state)
        i = int(bits & _LOW8)
        negative = (bits >> np.uint64(8)) & np.uint64(1)
        u = float(bits >> np.uint64(12)) * _INV_2_52
        z = u * _X[i]
        if u < _INNER[i]:
            break
        if i == 0:  # the tail beyond _R, by Marsaglia's exponential rejection
            while True:
                a = -math.log(1.0 - uniform(state)) / _R
                b = -math.log(1.0 - uniform(state))
                if 2.0 * b > a * a:
                    break
            z = _R + a
            break
        if _FX[i] + uniform(state) * (_FX[i + 1] - _FX[i]) < math.exp(-0.5 * z * z):
            break  # in the wedge of layer i, under the curve
    return -z if negative else z


@njit(cache=True)
def shuffle(state, a) -> None:
    """Fisher-Yates shuffle of the int64 vector `a` in place."""
    for i in range(a.shape[0] - 1, 0, -1):
        j = below(state, i + 1)
        a[i], a[j] = a[j], a[i]
