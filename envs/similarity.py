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
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

LANES = 8  # partial sums of a dot: coordinate d goes to sum d % LANES


def dot32(a, b) -> np.float32:
    """`a . b` of two float32 vectors, for compiled callers: `LANES` float32 partial sums, sum
    `k` over the coordinates `d = k, k + 8, ...` in that order (the coordinates past the last
    whole group of 8 go to sum 0 after it), the eight added in a fixed tree. One running sum
    would wait on each addition in turn; eight independent ones are one 8-wide vector register
    (`_dot_lanes`), and already err less than one running float32 sum. (Summing in float64
    instead cost 2-3x more here, for accuracy the similarities do not need.)"""
    raise TypeError("dot32 is for compiled code; call `dot`")


@overload(dot32, inline="always")
def _dot32_overload(a, b):
    if _contiguous_f32(a) and _contiguous_f32(b):
        return lambda a, b: _dot_lanes(a, b)
    return _dot_strided


def _contiguous_f32(x) -> bool:
    return (isinstance(x, types.Array) and x.ndim == 1 and x.dtype == types.float32
            and x.layout == "C")


def _dot_strided(a, b):
    """`dot32` of vectors of any layout: the same sums in the same order, lane by lane."""
    n = a.shape[0]
    z = np.float32(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    m = n - n % LANES
    for d in range(0, m, LANES):
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


@intrinsic
def _dot_lanes(typingctx, a, b):
    """`dot32` of two contiguous vectors with the eight partial sums in one `<8 x float>`
    register: lane k of a vector multiply and add is the float32 multiply and add of sum k, so
    the result is `_dot_strided`'s bit for bit, ~6x faster. (LLVM does not vectorise the scalar
    loop itself: with the order fixed, and numba's wrap-around of negative indices, it does not
    see eight lanes there.)"""
    if not (_contiguous_f32(a) and _contiguous_f32(b)):
        return None

    def codegen(context, builder, sig, args):
        x = context.make_array(sig.args[0])(context, builder, args[0])
        y = context.make_array(sig.args[1])(context, builder, args[1])
        n = builder.extract_value(x.shape, 0)
        intp, f32x8 = n.type, ir.VectorType(ir.FloatType(), LANES)
        lanes = cgutils.alloca_once_value(builder, ir.Constant(f32x8, None))  # zeros
        whole = builder.and_(n, ir.Constant(intp, -LANES))  # n - n % 8
        step = ir.Constant(intp, LANES)
        with cgutils.for_range_slice(builder, ir.Constant(intp, 0), whole, step, intp) as (d, _):
            xs = builder.load(builder.bitcast(builder.gep(x.data, [d]), f32x8.as_pointer()),
                              align=4)
            ys = builder.load(builder.bitcast(builder.gep(y.data, [d]), f32x8.as_pointer()),
                              align=4)
            builder.store(builder.fadd(builder.load(lanes), builder.fmul(xs, ys)), lanes)
        acc = builder.load(lanes)
        sums = [builder.extract_element(acc, ir.Constant(ir.IntType(32), k)) for k in range(LANES)]
        first = cgutils.alloca_once_value(builder, sums[0])
        one = ir.Constant(intp, 1)
        with cgutils.for_range_slice(builder, whole, n, one, intp) as (d, _):
            term = builder.fmul(builder.load(builder.gep(x.data, [d])),
                                builder.load(builder.gep(y.data, [d])))
            builder.store(builder.fadd(builder.load(first), term), first)
        sums[0] = builder.load(first)
        add = builder.fadd
        return add(add(add(sums[0], sums[1]), add(sums[2], sums[3])),
                   add(add(sums[4], sums[5]), add(sums[6], sums[7])))

    return types.float32(a, b), codegen


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
