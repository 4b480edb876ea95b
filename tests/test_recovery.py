"""A session survives its actor (issue 10): the actor restarts, recovers its journal from
Ray's GCS, and runs every accepted job that had not finished again, once, in FIFO order;
the jobs' handles keep working. Slow work is held at gates the tests open."""

from __future__ import annotations

import numpy as np
import pytest
import ray
import ray._private.state as ray_state
from ray.experimental import internal_kv

from raysession import EstimatorV2, JobStatus, Session
from raysession._connect import NAMESPACE, actor_name
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import bell, entered, gated, new_gate

# Every chunk unpickles its circuit, so every run of a gated job waits at its gate.
GATED = {"default_precision": 0.0, "raysession": {"circuit_cache": False}}


def session_actor(session: Session):
    return ray.get_actor(actor_name("session", session.session_id), namespace=NAMESPACE)


def restarts(session: Session) -> int:
    """How often the session's actor was restarted, once it is alive again (else -1)."""
    info = ray_state.actors(session_actor(session)._actor_id.hex())
    return int(info["NumRestarts"]) if info["State"] == "ALIVE" else -1


def journal_keys(session_id: str, kind: str = "") -> list[bytes]:
    return internal_kv._internal_kv_list(f"journal/{session_id}/{kind}", namespace="raysession")


def test_a_killed_session_actor_restarts_and_reruns_unfinished_jobs_once_in_fifo_order(backend):
    gates = {name: new_gate() for name in "abc"}
    session = Session(backend=backend)
    estimator = EstimatorV2(mode=session, options=GATED)
    jobs = {name: estimator.run([(gated(bell(False), gates[name][1]), "ZZ")]) for name in "abc"}
    done = estimator.run([(bell(False), "XX")])  # runs once a, b and c have
    wait_for(lambda: entered(gates["a"][0]) == 1, timeout=120)  # a runs, b and c wait
    assert [jobs[n].status() for n in "abc"] == ["RUNNING", "QUEUED", "QUEUED"]
    # The queued jobs were journalled before run() returned; a, granted a worker, once it
    # had run for GRANTED_JOURNAL_DELAY_S.
    wait_for(lambda: len(journal_keys(session.session_id, "job/")) == 4)

    ray.kill(session_actor(session), no_restart=False)
    wait_for(lambda: restarts(session) == 1, timeout=120)
    # The handles keep working against the restarted actor.
    assert jobs["c"].status() == "QUEUED"
    for handle, _ in gates.values():
        handle.allow.remote(2)
    for name in "abc":
        assert float(jobs[name].result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    assert float(done.result(timeout=120)[0].data.evs) == pytest.approx(1.0)

    # a was running when the actor died: it ran again, once; b and c ran once each.
    wait_for(lambda: entered(gates["a"][0]) == 2, timeout=60)
    assert [entered(gates[n][0]) for n in "bc"] == [1, 1]
    # FIFO order, as before the restart: a's rerun, then b, then c, then the last job.
    starts = [session.job_info(j.job_id()).metrics.running for j in [*jobs.values(), done]]
    assert starts == sorted(starts)
    sequences = [session.job_info(j.job_id()).metrics.sequence for j in [*jobs.values(), done]]
    assert sequences == [0, 1, 2, 3]
    # The session goes on: a new job gets the next place.
    more = estimator.run([(bell(False), "ZZ")])
    assert float(more.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    assert session.job_info(more.job_id()).metrics.sequence == 4
    assert all(session.job_info(j).status is JobStatus.DONE for j in session.job_ids())
    session.close()
    wait_for(lambda: f"session-{session.session_id}" not in live_raysession_actors(), 60)
    assert journal_keys(session.session_id) == []  # an ended session leaves no journal


def test_a_granted_job_is_journalled_only_if_it_runs_past_the_delay(backend):
    handle, name = new_gate()
    with Session(backend=backend) as session:
        quick = EstimatorV2(mode=session, options={"default_precision": 0.0})
        done = quick.run([(bell(False), "ZZ")])
        done.result(timeout=120)
        held = EstimatorV2(mode=session, options=GATED).run([(gated(bell(False), name), "ZZ")])
        assert done._granted and held._granted  # both ran on a worker granted at once
        wait_for(lambda: entered(handle) == 1, timeout=120)
        # The held job, still running after the delay, gets its entry; the quick one's
        # delay passed before (timers fire in order) and left none.
        key = f"journal/{session.session_id}/job/{held.job_id()}".encode()
        wait_for(lambda: key in journal_keys(session.session_id, "job/"))
        assert journal_keys(session.session_id, "job/") == [key]
        handle.allow.remote(1)
        np.testing.assert_allclose(held.result(timeout=120)[0].data.evs, 1.0)


def test_a_restarted_actor_keeps_finished_records_deadlines_and_state(backend):
    session = Session(backend=backend, max_time=3600)
    estimator = EstimatorV2(mode=session, options={"default_precision": 0.0})
    first = estimator.run([(bell(False), "ZZ")])
    np.testing.assert_allclose(first.result(timeout=120)[0].data.evs, 1.0)
    before = session.details()
    wait_for(lambda: session.job_info(first.job_id()).status is JobStatus.DONE)
    info = session.job_info(first.job_id())

    ray.kill(session_actor(session), no_restart=False)
    wait_for(lambda: restarts(session) == 1, timeout=120)
    after = session.details()
    assert after.state == before.state and after.num_jobs == 1
    assert after.started_at == pytest.approx(before.started_at)  # max_time counts on
    recovered = session.job_info(first.job_id())
    assert recovered.status is JobStatus.DONE
    assert recovered.metrics == info.metrics
    # Its result is read from storage by a handle that did not submit it.
    np.testing.assert_allclose(session.job(first.job_id()).result()[0].data.evs, 1.0)
    session.close()
