"""One real local Ray per test module, and a shared Aer worker pool per module."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator

import pytest
import ray

from raysession import AerBackend

# Fast, short-lived sessions in tests; never tune these by sleeping.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Durable results of the test run go to a fresh directory, not the user's
# ~/.raysession/storage; driver subprocesses and Ray's workers inherit it.
os.environ.setdefault("RAYSESSION_STORAGE", tempfile.mkdtemp(prefix="raysession-storage-"))


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """A real local Ray with 2 CPUs for the whole module."""
    if ray.is_initialized():
        ray.shutdown()
    # address="local": never join a cluster another test (ray.cluster_utils) recorded.
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def backend(ray_cluster: None) -> Iterator[AerBackend]:
    """An Aer backend whose two workers are started before the module's tests."""
    pool = AerBackend(max_workers=2)
    assert pool.warm_up(timeout=120) == 2
    try:
        yield pool
    finally:
        pool.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {condition}")


def live_raysession_actors() -> list[str]:
    """Names of the raysession actors that are alive now."""
    return sorted(
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == "raysession"
    )
