"""Durable job records and results (issue 10): read from another driver after the
submitter exited and after the session ended; bounds and cleanup.

The submitters are real driver subprocesses connected to this module's Ray; they share
its ``RAYSESSION_STORAGE`` (set for the test run in conftest).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from raysession import (
    EstimatorV2,
    JobFailedError,
    QiskitRuntimeService,
    ResultUnavailableError,
    Session,
    SessionClosedError,
    SessionNotFoundError,
)
from raysession._storage import cleanup_storage, read_job
from raysession.backends._store import storage_uri
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import bell, run_driver

REPO = Path(__file__).resolve().parents[1]


def submitted(script: str, **env: str) -> dict:
    """Run a submitting driver; the JSON it prints last."""
    done = run_driver(script, timeout=240, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SUBMIT = """
    import json
    import numpy as np
    from qiskit.circuit.library import efficient_su2
    from qiskit.quantum_info import SparsePauliOp
    from raysession import AerBackend, EstimatorV2, SamplerV2, Session
    from tests.helpers import bell, failing

    circuit = efficient_su2(3, reps=1)
    values = np.random.default_rng(3).uniform(0, 6, (10, circuit.num_parameters))
    session = Session(backend=AerBackend(max_workers=2), idle_timeout={idle})
    estimator = EstimatorV2(mode=session, options={{"default_precision": 0.0}})
    split = EstimatorV2(
        mode=session, options={{"default_precision": 0.0, "raysession": {{"chunk_size": 3}}}}
    )
    sampler = SamplerV2(
        mode=session, options={{"default_shots": 500, "simulator": {{"seed_simulator": 11}}}}
    )
    jobs = {{
        "whole": estimator.run([(circuit, SparsePauliOp("ZZI"), values)]),
        "split": split.run([(circuit, SparsePauliOp("XIZ"), values)]),
        "counts": sampler.run([bell()]),
    }}
    out = {{"session": session.session_id, "jobs": {{k: j.job_id() for k, j in jobs.items()}}}}
    out["evs_whole"] = jobs["whole"].result()[0].data.evs.tolist()
    out["evs_split"] = jobs["split"].result()[0].data.evs.tolist()
    out["counts"] = jobs["counts"].result()[0].data.meas.get_counts()
    out["chunks"] = jobs["split"].metrics()["num_chunks"]
    bad = EstimatorV2(mode=session).run([(failing(bell(False)), "ZZ")])
    out["jobs"]["bad"] = bad.job_id()
    try:
        bad.result()
    except Exception as exc:
        out["bad_error"] = type(exc).__name__
    if {close}:
        session.close()
    print(json.dumps(out))
"""


def check_stored(out: dict, get) -> None:
    """The jobs of a SUBMIT run, read through ``get(job_id)``, give what the submitter saw."""
    whole = get(out["jobs"]["whole"])
    assert whole.status() == "DONE"
    np.testing.assert_allclose(whole.result()[0].data.evs, out["evs_whole"], atol=1e-12)
    split = get(out["jobs"]["split"])
    np.testing.assert_allclose(split.result()[0].data.evs, out["evs_split"], atol=1e-12)
    assert split.metrics()["num_chunks"] == out["chunks"] > 1
    assert get(out["jobs"]["counts"]).result()[0].data.meas.get_counts() == out["counts"]
    bad = get(out["jobs"]["bad"])
    assert bad.status() == "ERROR" and out["bad_error"] == "JobFailedError"
    with pytest.raises(JobFailedError, match="failed"):
        bad.result()


def test_results_are_read_by_another_driver_after_the_submitter_exited_and_the_session_ended():
    out = submitted(SUBMIT.format(idle=1800, close=True))
    # The session ended: its actor is gone.
    wait_for(lambda: not any(out["session"] in name for name in live_raysession_actors()), 60)

    service = QiskitRuntimeService()
    check_stored(out, service.job)

    session = Session.from_id(out["session"])
    details = session.details()
    assert details.state == "closed" and details.num_jobs == 4
    assert session.job_ids() == list(out["jobs"].values())
    check_stored(out, session.job)
    # An ended session takes no jobs.
    with pytest.raises(SessionClosedError):
        EstimatorV2(mode=session).run([(bell(False), "ZZ")])


def test_a_live_sessions_jobs_are_read_after_their_submitter_exited():
    # The submitter leaves its session open: the granted jobs' results belonged to it.
    out = submitted(SUBMIT.format(idle=1800, close=False))
    session = Session.from_id(out["session"])
    assert session.details().state.is_accepting
    check_stored(out, session.job)
    check_stored(out, QiskitRuntimeService().job)
    # The live session still runs jobs.
    job = EstimatorV2(mode=session, options={"default_precision": 0.0}).run([(bell(False), "ZZ")])
    assert float(job.result()[0].data.evs) == pytest.approx(1.0)
    session.close()


def test_an_unknown_job_or_session_is_reported_as_not_found():
    with pytest.raises(SessionNotFoundError, match="not in storage"):
        QiskitRuntimeService().job("0" * 32)
    with pytest.raises(
        SessionNotFoundError, match=r"No live session has id f+, and none is stored"
    ):
        Session.from_id("f" * 32)


def test_cleanup_removes_jobs_past_retention_then_the_oldest_past_the_size_bound(tmp_path, backend):
    uri = str(tmp_path / "store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYSESSION_STORAGE", uri)
        assert storage_uri() == uri
        with Session(backend=backend) as session:
            estimator = EstimatorV2(mode=session, options={"default_precision": 0.0})
            ids = [estimator.run([(bell(False), "ZZ")]).job_id() for _ in range(4)]
            for job_id in ids:
                session.job(job_id).result()
        wait_for(lambda: all(read_job(j, uri) is not None for j in ids), 30)
    # Tiny results went to the workers' segments; each job has its record, nothing else.
    stored = {j: read_job(j, uri) for j in ids}
    assert all(s is not None and s.places and s.places[0] for s in stored.values())
    jobs, segments = Path(uri, "jobs"), list(Path(uri, "segments").iterdir())
    assert sorted(p.name for p in jobs.iterdir()) == sorted(f"{j}.json" for j in ids)
    sizes = {j: (jobs / f"{j}.json").stat().st_size for j in ids}
    segment_bytes = sum(f.stat().st_size for f in segments)
    # Ages the test controls: job i was last written i+1 days ago (the oldest first);
    # the segments are new.
    now = time.time()
    for age, job_id in enumerate(reversed(ids), start=1):
        os.utime(jobs / f"{job_id}.json", (now - age * 86_400, now - age * 86_400))
    # Retention 2.5 days: the two jobs older than that go.
    report = cleanup_storage(retention="2d 12h", max_bytes_kept=10**9, storage=uri)
    assert report.jobs_removed == 2 and report.segments_removed == 0
    assert sorted(p.name for p in jobs.iterdir()) == sorted(f"{j}.json" for j in ids[2:])
    # A size bound of one job and the segments: the older of the two remaining goes.
    report = cleanup_storage(
        retention="30d", max_bytes_kept=sizes[ids[3]] + segment_bytes, storage=uri
    )
    assert report.jobs_removed == 1 and report.bytes_kept == sizes[ids[3]] + segment_bytes
    assert [p.name for p in jobs.iterdir()] == [f"{ids[3]}.json"]
    assert report.bytes_freed == sizes[ids[2]]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYSESSION_STORAGE", uri)
        assert QiskitRuntimeService().job(ids[3]).status() == "DONE"
        evs = QiskitRuntimeService().job(ids[3]).result()[0].data.evs
        np.testing.assert_allclose(evs, 1.0, atol=1e-12)
        # Segments past the retention go as a whole; the record stays, its result is gone.
        for segment in segments:
            os.utime(segment, (now - 40 * 86_400, now - 40 * 86_400))
        report = cleanup_storage(retention="30d", max_bytes_kept=10**9, storage=uri)
        assert report.segments_removed == len(segments) and report.bytes_freed == segment_bytes
        with pytest.raises(ResultUnavailableError, match=r"segment .* was removed"):
            QiskitRuntimeService().job(ids[3]).result()


def test_results_outlive_the_whole_ray_cluster_that_ran_them():
    # The submitter starts (and, exiting, stops) a Ray cluster of its own.
    start_ray = "    import ray\n    ray.init(num_cpus=2)\n    from raysession import"
    script = SUBMIT.format(idle=1800, close=True).replace(
        "    from raysession import", start_ray, 1
    )
    out = submitted(script, RAY_ADDRESS="local")
    # That cluster is gone; this module's Ray never knew the session.
    check_stored(out, QiskitRuntimeService().job)
    session = Session.from_id(out["session"])
    assert session.details().state == "closed"
    check_stored(out, session.job)
