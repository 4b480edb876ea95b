"""The verdict table of an Aer worker (``_Granted``): a granted job's chunk, from its
submitter, and the session actor's verdict meet there, in either order, and a pair that
misses lapses on both sides. Threads stand for the worker's concurrency groups."""

from __future__ import annotations

import threading

import pytest

from raysession.backends import _aer_worker
from raysession.backends._aer_worker import ChunkDone, GrantLapsedError, _Granted, grant_key


def _in_thread(function, *args):
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = function(*args)
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_a_chunk_that_comes_first_runs_once_the_verdict_says_so_and_its_follower_hears_how():
    granted = _Granted()
    chunk, taken = _in_thread(granted.take, "job")
    follower, followed = _in_thread(granted.follow, "job", 123.0)
    chunk.join(timeout=10)
    assert taken == {"value": (True, 123.0)}  # run it, with the verdict's deadline
    assert follower.is_alive()  # the follower waits for the outcome
    done = ChunkDone("worker", execution_s=0.5)
    granted.ended("job", done)
    follower.join(timeout=10)
    assert followed == {"value": (done, None)}


def test_a_verdict_that_comes_first_waits_for_its_chunk():
    granted = _Granted()
    follower, followed = _in_thread(granted.follow, "job", None)
    assert granted.take("job") == (True, None)
    error = ValueError("the job's own error")
    granted.ended("job", error)
    follower.join(timeout=10)
    assert followed == {"value": (error, None)}


def test_a_refused_chunk_does_not_run_and_a_refusal_names_only_the_copy_sent_ahead():
    granted = _Granted()
    granted.give(grant_key("job", ahead=True), "refuse")
    assert granted.take(grant_key("job", ahead=True)) == (False, None)
    # The same job granted later and sent again is another key: the refusal is not its.
    follower, followed = _in_thread(granted.follow, grant_key("job", ahead=False), None)
    assert granted.take(grant_key("job", ahead=False)) == (True, None)
    granted.ended("job", ChunkDone("worker"))
    follower.join(timeout=10)
    assert followed["value"] == (ChunkDone("worker"), None)


def test_a_chunk_whose_verdict_never_comes_lapses_and_so_does_its_late_follower(monkeypatch):
    monkeypatch.setattr(_aer_worker, "VERDICT_WAIT_S", 0.05)
    granted = _Granted()
    with pytest.raises(GrantLapsedError):
        granted.take("job")
    assert granted.follow("job", None) == (ChunkDone("", refused=True), None)  # at once


def test_a_verdict_whose_chunk_never_comes_is_withdrawn_and_a_late_chunk_lapses(monkeypatch):
    monkeypatch.setattr(_aer_worker, "ARRIVAL_WAIT_S", 0.05)
    granted = _Granted()
    assert granted.follow("job", None) == (ChunkDone("", refused=True), None)
    with pytest.raises(GrantLapsedError):
        granted.take("job")  # at once, not after VERDICT_WAIT_S


def test_the_result_write_goes_to_the_follower_which_makes_it():
    granted = _Granted()
    follower, followed = _in_thread(granted.follow, "job", None)
    assert granted.take("job") == (True, None)
    writes: list[str] = []
    granted.ended("job", ChunkDone("worker"), lambda: writes.append("written"))
    follower.join(timeout=10)
    outcome, store = followed["value"]
    assert outcome == ChunkDone("worker") and writes == []
    store()
    assert writes == ["written"]


def test_the_first_verdict_wins():
    granted = _Granted()
    granted.give("job", "refuse")
    granted.give("job", "run", 1.0)
    assert granted.take("job") == (False, None)
