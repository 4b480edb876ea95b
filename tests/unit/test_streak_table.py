"""The table of streaks at one worker (raysession.backends._streaks), without Ray: which
jobs a streak takes, what its reports say, and how it ends."""

from __future__ import annotations

import threading
import time

import pytest

from raysession.backends import _streaks
from raysession.backends._streaks import StreakRun, Streaks, StreakTerms


def _run(job_id: str = "j1") -> StreakRun:
    return StreakRun(job_id, created=time.time(), tags=("t",), kind="estimator", seed=7)


def _opened(expires_at: float | None = None) -> Streaks:
    table = Streaks()
    table.open(StreakTerms("s1", expires_at), "sim-key")
    return table


def test_an_open_streak_takes_one_job_at_a_time_and_reports_it_once():
    table = _opened()
    first = _run("j1")
    assert table.begin("s1", first) == "sim-key"
    assert table.begin("s1", _run("j2")) is None  # one at a time
    report = table.report("s1", end=False, wait=False)
    assert report.open and report.running is not None and report.running.job_id == "j1"
    assert report.runs == ()
    first.place, first.worker_id, first.execution_s = "segment:0:10", "aer-1", 0.5
    table.end("s1", first)
    report = table.report("s1", end=False, wait=False)
    assert [run.job_id for run in report.runs] == ["j1"]
    ran = report.runs[0]
    assert ran.place == "segment:0:10" and ran.finished is not None
    assert ran.started <= ran.finished and ran.worker_id == "aer-1"
    assert report.running is None and report.open
    assert table.report("s1", end=False, wait=False).runs == ()  # reported once
    assert table.begin("s1", _run("j2")) == "sim-key"


def test_a_job_that_did_not_run_is_not_reported():
    table = _opened()
    assert table.begin("s1", _run()) == "sim-key"
    table.end("s1", None)
    report = table.report("s1", end=False, wait=False)
    assert report.runs == () and report.running is None


def test_an_ended_streak_takes_no_job_and_its_last_report_waits_for_the_running_one():
    table = _opened()
    running = _run("j1")
    assert table.begin("s1", running) == "sim-key"
    ending = table.report("s1", end=True, wait=False)
    assert not ending.open and ending.running is not None and ending.running.job_id == "j1"
    assert table.begin("s1", _run("j2")) is None
    last: list[_streaks.StreakReport] = []
    waiter = threading.Thread(target=lambda: last.append(table.report("s1", end=True, wait=True)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # it waits for the running job
    table.end("s1", running)
    waiter.join(5)
    assert [run.job_id for run in last[0].runs] == ["j1"] and last[0].running is None
    # Gone for good: a late opening (its verdict overtaken) does not bring it back.
    table.open(StreakTerms("s1", None), "sim-key")
    assert table.begin("s1", _run("j3")) is None


def test_a_streak_ended_before_its_opening_arrived_never_opens():
    table = Streaks()
    assert table.report("s1", end=False, wait=False).open  # not opened yet: still to come
    assert not table.report("s1", end=True, wait=False).open
    table.open(StreakTerms("s1", None), "sim-key")
    assert table.begin("s1", _run()) is None


def test_an_unknown_streak_takes_no_job():
    assert Streaks().begin("nope", _run()) is None


def test_a_streak_past_its_sessions_max_time_takes_no_job_and_reports_it_ended():
    table = _opened(expires_at=time.time() - 1)
    assert table.begin("s1", _run()) is None
    assert not table.report("s1", end=False, wait=False).open


@pytest.mark.parametrize("limit", ["STREAK_IDLE_S", "STREAK_UNPULLED_S"])
def test_an_idle_or_unasked_streak_ends(monkeypatch, limit):
    table = _opened()
    monkeypatch.setattr(_streaks, limit, -1.0)  # any time since is past the limit
    assert table.begin("s1", _run()) is None
    monkeypatch.undo()
    assert table.begin("s1", _run()) is None  # ended, not paused
    assert not table.report("s1", end=False, wait=False).open


def test_a_jobs_stored_copy_is_written_off_its_path_and_its_report_waits_for_it():
    table = _opened()
    written = threading.Event()
    release = threading.Event()

    def store() -> str:
        release.wait(5)
        written.set()
        return "segment:3:4"

    run = _run("j1")
    assert table.begin("s1", run) == "sim-key"
    table.end("s1", run, store)  # returns at once: the write is another thread's
    assert not written.is_set()
    assert table.begin("s1", _run("j2")) == "sim-key"  # the next job need not wait
    table.end("s1", None)
    release.set()
    report = table.report("s1", end=False, wait=False)
    assert written.is_set() and [r.place for r in report.runs] == ["segment:3:4"]


def test_a_failed_write_leaves_the_job_reported_without_a_place():
    table = _opened()
    run = _run("j1")
    table.begin("s1", run)

    def store() -> str:
        raise OSError("disk full")

    table.end("s1", run, store)
    report = table.report("s1", end=False, wait=False)
    assert [(r.job_id, r.place) for r in report.runs] == [("j1", "")]
