"""The dot products the streaming envs share (`envs/similarity.py`): cosine-accurate, computed in
one fixed order whatever the caller, and the compiled step kernels built against this version."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from memgym.envs import similarity, slot_observation, streaming_step


@pytest.mark.parametrize("module", [streaming_step, slot_observation])
def test_kernels_record_the_similarity_code_they_were_compiled_against(module):
    with open(similarity.__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    name = module.__name__.rsplit(".", 1)[-1]
    assert module.SIMILARITY_SHA256 == digest, (
        f"similarity.py changed: set SIMILARITY_SHA256 = {digest!r} in {name}.py")


def test_dot_agrees_with_float64_and_does_not_depend_on_memory_layout():
    rng = np.random.default_rng(0)
    for dim in (1, 7, 8, 9, 17, 63, 64, 65, 384):
        a = rng.standard_normal((5, dim)).astype(np.float32)
        b = rng.standard_normal(dim).astype(np.float32)
        exact = a.astype(np.float64) @ b.astype(np.float64)
        out = np.empty(5, np.float32)
        similarity.matvec(a, b, out)
        np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5 * np.sqrt(dim))
        # A strided copy of the same numbers (as the single env's column-major buffers are)
        # gives the same bits: it takes the scalar lanes, contiguous vectors one 8-wide register.
        strided = np.asfortranarray(a)
        column = np.empty((2, 5), np.float32)[0]
        similarity.matvec(strided, b, column)
        np.testing.assert_array_equal(column, out)
        assert all(similarity.dot(a[k], b) == out[k] for k in range(5))


def test_unit32_normalises_and_leaves_zeros():
    out = np.empty(3, np.float32)
    similarity.unit32(np.array([3.0, 0.0, 4.0]), out)
    np.testing.assert_allclose(out, [0.6, 0.0, 0.8], rtol=1e-7)
    similarity.unit32(np.zeros(3), out)
    np.testing.assert_array_equal(out, 0.0)
