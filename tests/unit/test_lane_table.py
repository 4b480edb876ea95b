"""The lane table of a worker (``backends._lanes.Lanes``): order, the worker's lock, drops."""

from __future__ import annotations

import threading
import time

from raysession.backends._lanes import MOVE, Lanes


def _start(lanes: Lanes, lock: threading.Lock, job_id: str, out: dict[str, object]):
    def run() -> None:
        outcome, run_ = lanes.wait_turn(job_id, lock)
        if run_ is None:
            out[job_id] = outcome
            return
        out.setdefault("order", []).append(job_id)  # type: ignore[union-attr]
        lock.release()
        lanes.finish(run_)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _waiting(lanes: Lanes, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(lanes._waiting) < count:
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_jobs_run_one_at_a_time_in_the_order_they_came_once_the_worker_lock_is_free():
    lanes, lock, out = Lanes(), threading.Lock(), {}
    lock.acquire()  # another chunk runs on the worker
    threads = []
    for job_id in ("a", "b", "c"):
        threads.append(_start(lanes, lock, job_id, out))
        _waiting(lanes, len(threads))
    time.sleep(0.05)
    assert "order" not in out  # none runs while the worker's lock is taken
    lock.release()
    lanes.poke()
    for thread in threads:
        thread.join(10)
    assert out["order"] == ["a", "b", "c"]
    assert [run.job_id for run in lanes.report().ended] == ["a", "b", "c"]


def test_a_dropped_waiting_job_returns_its_outcome_and_never_runs():
    lanes, lock, out = Lanes(), threading.Lock(), {}
    lock.acquire()
    first = _start(lanes, lock, "a", out)
    second = _start(lanes, lock, "b", out)
    _waiting(lanes, 2)
    error = RuntimeError("cancelled")
    assert lanes.drop({"b": error, "a": MOVE}) == {"b": "dropped", "a": "dropped"}
    first.join(10)
    second.join(10)
    assert out == {"a": MOVE, "b": error}
    lock.release()
    assert lanes.report().ended == ()


def test_a_running_or_ended_job_is_not_dropped_and_a_job_dropped_early_never_waits():
    lanes, lock, out = Lanes(), threading.Lock(), {}
    outcome, run = lanes.wait_turn("a", lock)
    assert outcome is None and run is not None
    assert lanes.drop({"a": MOVE}) == {"a": "running"}
    assert lanes.report().running.job_id == "a"  # type: ignore[union-attr]
    lock.release()
    lanes.finish(run)
    assert lanes.drop({"a": MOVE}) == {"a": "ended"}
    assert lanes.drop({"late": MOVE}) == {"late": "dropped"}  # its call has not come yet
    late = _start(lanes, lock, "late", out)
    late.join(10)
    assert out == {"late": MOVE}
    assert lanes.report().running is None
