"""Operating sessions: list_sessions, session.jobs(), close_all_sessions, owners, the
service's sessions()/jobs(), pool_status, and the ``raysession`` command run as a real
subprocess against this module's Ray."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import ray

import raysession._admin
from raysession import (
    AerBackend,
    Batch,
    EstimatorV2,
    JobStatus,
    QiskitRuntimeService,
    SamplerV2,
    Session,
    SessionState,
    close_all_sessions,
    list_sessions,
    pool_status,
    shutdown_pool,
)
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import bell, entered, gated, new_gate, run_driver

REPO = Path(__file__).resolve().parents[1]
EXACT = {"default_precision": 0.0}
OTHER_USER = "someone-else"


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``raysession ARGS``, as a separate process (with ``env`` added to its environment)."""
    return subprocess.run(
        [sys.executable, "-m", "raysession", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def ray_address() -> str:
    return ray.get_runtime_context().gcs_address


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``raysession ARGS --address <this module's Ray>``, as a separate process."""
    return run_cli(*args, "--address", ray_address())


def ok(*args: str) -> str:
    """The standard output of a CLI command that must succeed."""
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def open_as_other_user() -> str:
    """A session opened by a second driver whose OS user is OTHER_USER; it outlives the driver."""
    script = """
        import ray, raysession
        ray.init()
        print(raysession.Session(backend=raysession.AerBackend()).session_id)
    """
    done = run_driver(script, USER=OTHER_USER, LOGNAME=OTHER_USER)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def pool_actors() -> list[str]:
    return [n for n in live_raysession_actors() if n == "pool" or n.startswith("aer-")]


def ids(sessions) -> list[str]:
    return [s.id for s in sessions]


# ------------------------------------------------------------------ reading starts nothing


def test_list_show_and_pool_start_no_workers_and_no_pool():
    shutdown_pool()
    wait_for(lambda: not pool_actors())
    session = Session(backend=AerBackend())
    try:
        assert session.session_id in ok("list")
        assert session.session_id in ok("show", session.session_id)
        assert "No worker pool is running" in ok("pool")
        assert json.loads(ok("pool", "--json"))["running"] is False
        assert pool_actors() == []
    finally:
        session.close()


def test_cli_never_starts_ray_and_says_when_it_cannot_connect():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = run_cli("list", "--address", f"127.0.0.1:{port}")
    assert done.returncode == 3
    assert f"Cannot reach a Ray cluster at 127.0.0.1:{port}" in done.stderr
    assert done.stdout == ""
    local = run_cli("list", "--address", "local")
    assert local.returncode == 3 and "would start a new Ray" in local.stderr
    # Without --address, RAY_ADDRESS says where the cluster is.
    from_env = run_cli("list", RAY_ADDRESS=f"127.0.0.1:{port}")
    assert from_env.returncode == 3
    assert f"Cannot reach a Ray cluster at 127.0.0.1:{port}" in from_env.stderr
    listed = run_cli("list", "--json", "--state", "active", RAY_ADDRESS=ray_address())
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


# ------------------------------------------------------------------ owners and listing


def test_a_session_records_who_opened_it():
    with Session(backend=AerBackend()) as session:
        owner = session.details().owner
        assert owner is not None
        assert owner.user == getpass.getuser()
        assert owner.host == socket.gethostname()
        assert owner.ray_job_id == ray.get_runtime_context().get_job_id()
        (listed,) = [s for s in list_sessions() if s.id == session.session_id]
        assert listed.owner == owner


def test_list_sessions_gives_records_with_counts_and_filters_by_state(backend):
    gate, name = new_gate()
    session = Session(backend=backend)
    batch = Batch(backend=backend)
    try:
        estimator = EstimatorV2(mode=session, options=EXACT)
        first = estimator.run([(bell(False), "ZZ")])
        first.result()
        held = estimator.run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1)
        queued = [estimator.run([(bell(False), "ZZ")]) for _ in range(2)]
        submitted = [first, held, *queued]

        records = {s.id: s for s in list_sessions()}
        mine = records[session.session_id]
        assert (mine.mode, mine.backend_name, mine.state) == ("dedicated", backend.name, "active")
        assert (mine.num_queued, mine.num_running, mine.num_finished) == (2, 1, 1)
        assert mine.num_jobs == 4 and mine.started_at is not None
        assert mine.created_at is not None and mine.created_at <= mine.started_at
        other = records[batch.session_id]
        assert (other.mode, other.state, other.num_jobs) == ("batch", "pending", 0)
        assert other.started_at is None

        assert ids(list_sessions(state="active")) == [session.session_id]
        assert ids(list_sessions(state=SessionState.PENDING)) == [batch.session_id]
        with pytest.raises(ValueError, match="not_a_state"):
            list_sessions(state="not_a_state")

        # session.jobs(): records in submission order, as they stand now.
        jobs = session.jobs()
        assert [j.job_id for j in jobs] == [j.job_id() for j in submitted]
        assert [j.status for j in jobs] == ["DONE", "RUNNING", "QUEUED", "QUEUED"]
        assert [j.metrics.sequence for j in jobs] == [0, 1, 2, 3]
        gate.allow.remote(1)
        for job in (held, *queued):
            job.result(timeout=120)
        assert [j.status for j in session.jobs()] == [JobStatus.DONE] * 4
    finally:
        gate.allow.remote(10)
        session.close()
        batch.close()


class _Impostor:
    """A real actor under a session's name that never answers, or dies when asked."""

    def __init__(self, dies: bool) -> None:
        self._dies = dies

    async def details(self, seen_done=None):
        if self._dies:
            os._exit(1)
        await asyncio.Event().wait()


def test_listing_skips_sessions_that_die_or_do_not_answer(backend, monkeypatch):
    monkeypatch.setattr(raysession._admin, "WAIT_S", 2.0)
    impostors = [
        ray.remote(_Impostor)
        .options(name=f"session-{kind}", namespace="raysession", num_cpus=0)
        .remote(kind == "dies")
        for kind in ("hangs", "dies")
    ]
    try:
        with Session(backend=backend) as session:
            assert ids(list_sessions()) == [session.session_id]
    finally:
        for impostor in impostors:
            ray.kill(impostor)


def test_close_all_sessions_closes_only_your_own_unless_all_users(backend):
    other = open_as_other_user()
    mine = [Session(backend=backend), Batch(backend=backend)]
    try:
        owners = {s.id: s.owner.user for s in list_sessions()}
        assert owners[other] == OTHER_USER
        assert ids(list_sessions(all_users=False)) == [s.session_id for s in mine]
        closed = close_all_sessions()
        assert sorted(ids(closed)) == sorted(s.session_id for s in mine)
        assert all(s.state is SessionState.CLOSED for s in closed)
        assert [s.status() for s in mine] == ["Closed", "Closed"]
        assert Session.from_id(other).status() == "Pending"
        assert close_all_sessions() == []  # nothing of this user is open any more
        (theirs,) = close_all_sessions(all_users=True)
        assert (theirs.id, theirs.state) == (other, SessionState.CLOSED)
        wait_for(lambda: other not in ids(list_sessions()))
    finally:
        close_all_sessions(all_users=True)


def test_service_sessions_and_jobs_answer_from_the_same_records(backend):
    service = QiskitRuntimeService()
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        first = estimator.run([(bell(False), "ZZ")])
        second = SamplerV2(mode=session).run([bell()], shots=10)
        second.result(timeout=120)
        assert ids(service.sessions()) == ids(list_sessions()) == [session.session_id]
        assert ids(service.sessions(state="active")) == [session.session_id]
        listed = service.jobs(session_id=session.session_id, descending=False)
        assert [j.job_id() for j in listed] == [j.job_id for j in session.jobs()]
        assert [j.job_id() for j in listed] == [first.job_id(), second.job_id()]
        assert service.job(second.job_id()).status() == "DONE"


# ------------------------------------------------------------------ the command


def test_cli_list_shows_own_sessions_as_a_table_and_as_json(backend):
    other = open_as_other_user()
    with Session(backend=backend) as session, Batch(backend=backend) as batch:
        EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")]).result()
        text = ok("list")
        header, *rows = text.splitlines()
        assert header.split() == [
            "ID", "MODE", "BACKEND", "STATE", "OWNER", "CREATED", "STARTED",
            "QUEUED", "RUNNING", "FINISHED",
        ]  # fmt: skip
        assert len(rows) == 2 and other not in text
        by_id = {row.split()[0]: row for row in rows}
        assert by_id[session.session_id].split()[1:4] == ["dedicated", backend.name, "active"]
        assert by_id[batch.session_id].split()[1:4] == ["batch", backend.name, "pending"]
        assert f"{getpass.getuser()}@{socket.gethostname()}" in by_id[session.session_id]
        # Columns are aligned: every header starts where its cells start.
        start = header.index("STATE")
        assert all(row[start:].startswith(("active", "pending")) for row in rows)

        listed = json.loads(ok("list", "--json"))
        assert [s["id"] for s in listed] == [session.session_id, batch.session_id]
        assert listed[0]["num_finished"] == 1 and listed[0]["owner"]["user"] == getpass.getuser()

        everyone = json.loads(ok("list", "--json", "--all-users"))
        assert {s["id"] for s in everyone} == {other, session.session_id, batch.session_id}
        assert ok("list", "--state", "pending", "--all-users").count("\n") == 3  # header + 2
    close_all_sessions(all_users=True)


def test_cli_show_gives_details_and_a_jobs_table(backend):
    with Session(backend=backend) as session:
        first = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
        sampler = SamplerV2(mode=session)
        sampler.options.environment.job_tags = ["sweep-7"]
        second = sampler.run([bell()], shots=10)
        second.result(timeout=120)
        text = ok("show", session.session_id)
        assert f"Session:   {session.session_id}" in text
        assert "State:     active (In progress, accepting new jobs)" in text
        assert "Jobs:      2 accepted: 0 queued, 0 running, 2 finished" in text
        table = text.split("\n\n", 1)[1].splitlines()
        assert table[0].split()[:4] == ["JOB", "SEQ", "PRIMITIVE", "STATUS"]
        assert [row.split()[:4] for row in table[1:]] == [
            [first.job_id(), "0", "estimator", "DONE"],
            [second.job_id(), "1", "sampler", "DONE"],
        ]
        assert "sweep-7" in table[2]
        shown = json.loads(ok("show", session.session_id, "--json"))
        assert shown["session"]["id"] == session.session_id
        assert [j["job_id"] for j in shown["jobs"]] == [first.job_id(), second.job_id()]


def test_cli_close_and_cancel_change_the_session_state(backend):
    gate, name = new_gate()
    closing = Session(backend=backend)
    cancelling = Session(backend=backend)
    try:
        assert ok("close", closing.session_id).strip() == (
            f"Closed session {closing.session_id}: now closed."
        )
        assert closing.details().state is SessionState.CLOSED
        estimator = EstimatorV2(mode=cancelling, options=EXACT)
        held = estimator.run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1)
        queued = estimator.run([(bell(False), "ZZ")])
        shown = json.loads(ok("cancel", cancelling.session_id, "--json"))
        assert shown["state"] == "cancelled"
        assert cancelling.details().state is SessionState.CANCELLED
        assert queued.status() == "CANCELLED" and held.status() == "RUNNING"
        gate.allow.remote(1)
        held.result(timeout=120)
    finally:
        gate.allow.remote(10)
        closing.close()
        cancelling.close()


def test_cli_close_all_closes_own_sessions_unless_all_users(backend):
    other = open_as_other_user()
    mine = Session(backend=backend)
    try:
        assert mine.session_id in ok("close", "--all")
        assert mine.status() == "Closed"
        assert Session.from_id(other).status() == "Pending"
        assert ok("close", "--all").strip() == "No open sessions to close."
        closed = json.loads(ok("close", "--all", "--all-users", "--json"))
        assert [(s["id"], s["state"]) for s in closed] == [(other, "closed")]
        # Closed with no job to hand over, its actor exits.
        wait_for(lambda: other not in ids(list_sessions()))
        usage = cli("close", "--all-users")
        assert usage.returncode == 2 and "--all-users goes with --all" in usage.stderr
    finally:
        close_all_sessions(all_users=True)


def test_cli_job_shows_one_job(backend):
    with Session(backend=backend) as session:
        job = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
        job.result(timeout=120)
        text = ok("job", job.job_id())
        assert f"Job:        {job.job_id()}" in text
        assert f"Session:    {session.session_id}" in text
        assert "Status:     DONE" in text and "Primitive:  estimator" in text
        shown = json.loads(ok("job", job.job_id(), "--json"))
        assert (shown["status"], shown["metrics"]["num_chunks"]) == ("DONE", 1)


def test_cli_show_and_job_read_an_ended_session_from_storage(backend):
    with Session(backend=backend) as session:
        job = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
        job.result(timeout=120)
    wait_for(lambda: f"session-{session.session_id}" not in live_raysession_actors(), 60)
    shown = json.loads(ok("show", session.session_id, "--json"))
    assert shown["session"]["state"] == "closed"
    assert [j["job_id"] for j in shown["jobs"]] == [job.job_id()]
    assert json.loads(ok("job", job.job_id(), "--json"))["status"] == "DONE"


def test_cli_cleanup_removes_stored_jobs_past_the_retention(tmp_path):
    store = tmp_path / "store"
    jobs = store / "jobs"
    (jobs / "old-job").mkdir(parents=True)  # a job with a large result: a record and a directory
    for old in [jobs / "old-job.json", jobs / "old-job" / "chunk-0.pkl"]:
        old.write_text("{}")
        os.utime(old, (0, 0))  # 1970: past any retention
    (jobs / "fresh-job.json").write_text("{}")
    done = run_cli("cleanup", "--retention", "1d", "--storage", str(store), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["jobs_removed"] == 1 and report["bytes_kept"] == 2
    assert report["bytes_freed"] == 4
    assert sorted(p.name for p in jobs.iterdir()) == ["fresh-job.json"]
    bad = run_cli("cleanup", "--retention", "1h 1h", "--storage", str(store))
    assert bad.returncode == 2 and "more than once" in bad.stderr


def test_cli_unknown_ids_exit_1_with_a_message():
    missing = "0" * 32
    for args in (("show", missing), ("close", missing), ("cancel", missing)):
        done = cli(*args)
        assert done.returncode == 1, args
        assert f"No live session has id {missing}" in done.stderr and done.stdout == ""
    done = cli("job", "no-such-job")
    assert done.returncode == 1 and "No live session has job no-such-job" in done.stderr


def _hold_both_workers(backend, gate_name):
    """A batch whose two jobs each hold one of the backend's two workers at the gate."""
    batch = Batch(backend=backend)
    estimator = EstimatorV2(mode=batch, options=EXACT)
    return batch, [estimator.run([(gated(bell(False), gate_name), "ZZ")]) for _ in range(2)]


def test_pool_status_reports_shapes_queue_and_circuit_caches(backend):
    gate, name = new_gate()
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        estimator.run([(bell(False), "ZZ")]).result()  # one circuit in a worker's cache
        batch, held = _hold_both_workers(backend, name)
        try:
            wait_for(lambda: entered(gate) == 2)
            waiting = estimator.run([(bell(False), "ZZ")])  # no worker free: it waits
            wait_for(lambda: pool_status().num_waiting == 1)
            status = pool_status()
        finally:
            gate.allow.remote(2)
            batch.close()
        waiting.result(timeout=120)
        for job in held:
            job.result(timeout=120)
    assert status.running and status.waiting == {session.session_id: 1}
    assert status.by_shape() == {"1 CPU": {"busy": 2, "idle": 0, "starting": 0}}
    assert [w.client for w in status.workers] == [batch.session_id] * 2
    # Busy workers answer with their caches (their chunks wait at the gate meanwhile).
    assert all(w.cached_circuits is not None for w in status.workers)
    assert status.num_cached_circuits >= 1 and status.cache_bytes > 0


def test_cli_pool_shows_workers_and_pool_shutdown_stops_them(backend):
    gate, name = new_gate()
    batch, held = _hold_both_workers(backend, name)
    try:
        wait_for(lambda: entered(gate) == 2)
        status = pool_status()
        text = ok("pool")
        shown = json.loads(ok("pool", "--json"))
    finally:
        gate.allow.remote(2)
        batch.close()
    for job in held:
        job.result(timeout=120)
    assert "Workers: 2 (1 CPU: 2 busy, 0 idle, 0 starting)" in text
    assert "Waiting leases: 0" in text
    assert f"Circuit cache: {status.num_cached_circuits} circuits" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("aer-")}
    assert set(rows) == {w.worker_id for w in status.workers}
    assert all(row[1:5] == ["1", "CPU", "busy", batch.session_id] for row in rows.values())
    assert shown["by_shape"] == {"1 CPU": {"busy": 2, "idle": 0, "starting": 0}}
    assert {w["worker_id"] for w in shown["workers"]} == set(rows)

    assert ok("pool", "shutdown").strip() == "Stopped the worker pool and its 2 worker(s)."
    wait_for(lambda: not pool_actors())
    assert pool_status().running is False
    assert ok("pool", "shutdown").strip() == "No worker pool is running."
