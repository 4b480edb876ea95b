"""Unit tests cover the pure modules and need no Ray."""

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """No Ray for unit tests."""
    yield
