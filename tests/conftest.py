"""Fixtures shared by the tests (helper functions live in `helpers.py`)."""

from __future__ import annotations

import pytest
from helpers import ALL_IDS, STREAMING_IDS


@pytest.fixture(params=ALL_IDS)
def env_id(request) -> str:
    return request.param


@pytest.fixture(params=STREAMING_IDS)
def streaming_id(request) -> str:
    return request.param
