"""Watching raysession (issue 11): Ray metrics read back from Ray's Prometheus export,
job progress and its bar, log records with session and job ids, worker tracebacks."""

from __future__ import annotations

import logging
import os
import pty
import re
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from raysession import AerBackend, EstimatorV2, JobFailedError, SamplerV2, Session
from raysession._log import get_logger, ids
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, entered, failing, gated, new_gate, observable, values

REPO = Path(__file__).resolve().parents[1]
GATED = {"default_precision": 0.0, "raysession": {"circuit_cache": False, "chunk_size": 2}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[int]:
    """Overrides conftest's Ray: the same, with a known metrics port reported every 0.5 s."""
    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level="warning",
        _metrics_export_port=port,
        _system_config={"metrics_report_interval_ms": 500},
    )
    try:
        yield port
    finally:
        ray.shutdown()


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def sample(text: str, name: str, **tags: str) -> float | None:
    """The value of metric ``name`` whose labels include ``tags`` (summed), or None."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if all(labels.get(k) == v for k, v in tags.items()):
            total, found = total + float(line.rsplit(" ", 1)[1]), True
    return total if found else None


def test_session_pool_and_worker_metrics_reach_rays_prometheus_export(ray_cluster, backend):
    port = ray_cluster
    handle, name = new_gate()
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options={"default_precision": 0.0})
        estimator.run([(bell(False), "ZZ")]).result()
        estimator.run([(bell(False), "XX")]).result()  # the same circuit: a cache hit
        with pytest.raises(JobFailedError):
            estimator.run([(failing(bell(False)), "ZZ")]).result()
        held = EstimatorV2(mode=session, options=GATED).run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(handle) == 1)
        queued = estimator.run([(bell(False), "YY")])
        assert queued.cancel()
        handle.allow.remote(1)
        held.result()
    tags = {"session": session.session_id, "backend": backend.name, "mode": "dedicated"}

    def counted() -> bool:
        text = scrape(port)
        return (
            sample(text, "ray_raysession_jobs_submitted_total", **tags) == 5
            and sample(text, "ray_raysession_jobs_completed_total", **tags) == 3
            and sample(text, "ray_raysession_jobs_failed_total", **tags) == 1
            and sample(text, "ray_raysession_jobs_cancelled_total", **tags) == 1
            # Workers export their own counters, on their own schedule.
            and (sample(text, "ray_raysession_circuit_cache_hits_total") or 0) >= 1
            and (sample(text, "ray_raysession_circuit_cache_misses_total") or 0) >= 1
        )

    wait_for(counted, timeout=60)
    text = scrape(port)
    # Four jobs ran, the cancelled one never started.
    assert sample(text, "ray_raysession_job_run_seconds_count", **tags) == 4
    assert sample(text, "ray_raysession_job_queue_seconds_count", **tags) == 4
    assert sample(text, "ray_raysession_queue_depth", **tags) is not None
    assert sample(text, "ray_raysession_worker_busy_fraction", shape="cpu=1,gpu=0") is not None
    assert (sample(text, "ray_raysession_circuit_cache_hits_total") or 0) >= 1
    assert (sample(text, "ray_raysession_circuit_cache_misses_total") or 0) >= 1


def test_progress_counts_the_chunks_as_they_finish(backend):
    handle, name = new_gate()
    circuit = ansatz(4)
    with Session(backend=AerBackend(max_workers=1)) as session:
        job = EstimatorV2(mode=session, options=GATED).run(
            [(gated(circuit, name), observable(4), values(circuit, 6))]
        )
        wait_for(lambda: entered(handle) == 1)  # one worker: one chunk at a time
        assert (job.progress().done, job.progress().total) == (0, 3)
        handle.allow.remote(1)
        wait_for(lambda: job.progress().done == 1)
        handle.allow.remote(2)
        job.result(timeout=120)
        assert job.progress().done == job.progress().total == 3
        assert job.progress().fraction == 1.0


SWEEP = """
    import sys
    from qiskit.circuit.library import efficient_su2
    from qiskit.quantum_info import SparsePauliOp
    import numpy as np
    from raysession import AerBackend, EstimatorV2, Session
    circuit = efficient_su2(3, reps=1)
    vals = np.random.default_rng(0).uniform(0, 6, (8, circuit.num_parameters))
    with Session(backend=AerBackend(max_workers=1)) as session:
        options = {"default_precision": 0.0, "raysession": {"chunk_size": 2}}
        job = EstimatorV2(mode=session, options=options).run([(circuit, "ZZZ", vals)])
        job.result(progress=True)
    print("done", job.progress().done, job.progress().total)
"""


def _sweep(stderr: int | None) -> tuple[str, bytes]:
    env = {**os.environ, "RAY_ADDRESS": "local", "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SWEEP)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
    )
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, (out, err)
    return out.decode(), err or b""


def test_result_with_progress_draws_a_bar_in_a_terminal_and_nothing_in_a_pipe():
    leader, follower = pty.openpty()
    try:
        out, _ = _sweep(follower)
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert "done 4 4" in out
    assert re.search(rb"4/4 \[", drawn), drawn[-2000:]
    out, err = _sweep(None)
    assert "done 4 4" in out
    assert b"4/4 [" not in err and b"chunk/s" not in err


def test_every_raysession_log_record_carries_session_and_job_ids(caplog):
    logger = get_logger("raysession.test_module")
    with caplog.at_level(logging.INFO, logger="raysession"):
        logger.info("no ids given")
        logger.info("a job", **ids("s1", "j1"))
        Session(backend=AerBackend(max_workers=1)).close()
    records = [r for r in caplog.records if r.name.startswith("raysession")]
    assert len(records) >= 3
    assert all(hasattr(r, "session_id") and hasattr(r, "job_id") for r in records)
    assert (records[0].session_id, records[0].job_id) == ("-", "-")
    assert (records[1].session_id, records[1].job_id) == ("s1", "j1")
    created = [r for r in records if r.getMessage().startswith("created dedicated")]
    assert created and created[0].session_id != "-"


def test_a_workers_error_reaches_the_caller_with_its_traceback(backend):
    with Session(backend=backend) as session:
        job = SamplerV2(mode=session).run([failing(bell())])
        with pytest.raises(JobFailedError):
            job.result()
        message = job.error_message()
    assert "not_a_gate" in message
    assert "Traceback (most recent call last)" in message
    assert re.search(r'File ".*aer_exec\.py", line \d+', message), message
