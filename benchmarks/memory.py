"""Memory of raysession's processes: growth over many jobs, and the cost of one more session.

Finding the processes: Ray sets each actor process's title to ``ray::<ClassName>`` (with
``.method()`` appended while a call runs), and the Ray this run starts with ``ray.init`` is a
tree of child processes of the driver (GCS server and raylet, whose children are the worker
processes). So the session actors and Aer workers of *this* run are the driver's descendants
titled ``ray::SessionActor`` and ``ray::AerWorker``; another Ray on the same machine (a test
run, say) is not counted. This needs neither the dashboard nor Ray's state API.

RSS counts shared library pages once per process, so it overstates what one more process
costs; USS (pages only that process holds) understates it a little. Both are reported.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil

from raysession import AerBackend, EstimatorV2, RuntimeJobV2, Session

from .workload import bell_circuit, bell_observable

__all__ = ["memory_growth", "ray_processes", "sessions_per_machine"]

_MB = 1e6
_WINDOW = 100
"""Tiny jobs submitted before their results are gathered (the session still runs them FIFO)."""


def ray_processes(title: str, *, exclude: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This run's processes whose title starts with ``ray::<title>``, e.g. ``SessionActor``."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in exclude:
            continue
        try:
            cmdline = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if cmdline and cmdline[0].startswith(f"ray::{title}"):
            found.append(proc)
    return found


def _memory_mb(procs: list[psutil.Process]) -> dict[str, float]:
    """Summed RSS and USS of ``procs`` in MB; a process that has gone counts as zero."""
    rss = uss = 0.0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss / _MB
        uss += info.uss / _MB
    return {"rss_mb": rss, "uss_mb": uss}


def _tree_memory_mb(exclude: frozenset[int]) -> dict[str, float]:
    """RSS and USS of the driver and every process of its Ray, leaving out ``exclude``."""
    me = psutil.Process()
    procs = [p for p in [me, *me.children(recursive=True)] if p.pid not in exclude]
    return _memory_mb(procs)


def _run_tiny_jobs(estimator: EstimatorV2, num_jobs: int) -> None:
    pub = (bell_circuit(), bell_observable())
    done = 0
    while done < num_jobs:
        window = min(_WINDOW, num_jobs - done)
        jobs: list[RuntimeJobV2] = [estimator.run([pub]) for _ in range(window)]
        for job in jobs:
            job.result()
        done += window


def _wait_for_new(title: str, before: set[int], expected: int, timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        new = [p for p in ray_processes(title) if p.pid not in before]
        if len(new) >= expected or time.monotonic() > deadline:
            return new
        time.sleep(0.05)


def memory_growth(backend: AerBackend, first: int, last: int) -> dict[str, Any]:
    """RSS/USS of the session actor, the Aer workers and the driver after ``first`` and after
    ``last`` tiny jobs in one session.

    Returns:
        ``readings`` (one per job count) and the growth between them, in MB.
    """
    before = {p.pid for p in ray_processes("SessionActor")}
    readings: list[dict[str, Any]] = []
    with Session(backend) as session:
        actor = _wait_for_new("SessionActor", before, expected=1)
        if len(actor) != 1:
            raise RuntimeError(f"expected one new session actor process, found {len(actor)}")
        workers = ray_processes("AerWorker")
        estimator = EstimatorV2(mode=session, options={"default_precision": 0.0})
        started = time.perf_counter()
        done = 0
        for target in (first, last):
            _run_tiny_jobs(estimator, target - done)
            done = target
            readings.append(
                {
                    "jobs": done,
                    "elapsed_s": time.perf_counter() - started,
                    "session_actor": _memory_mb(actor),
                    "workers": [_memory_mb([w]) for w in workers],
                    "driver": _memory_mb([psutil.Process()]),
                }
            )
    one, two = readings
    return {
        "session_actor_pid": actor[0].pid,
        "worker_pids": [w.pid for w in workers],
        "readings": readings,
        "session_actor_growth_mb": two["session_actor"]["rss_mb"] - one["session_actor"]["rss_mb"],
        "worker_growth_mb": [
            b["rss_mb"] - a["rss_mb"] for a, b in zip(one["workers"], two["workers"], strict=True)
        ],
        "driver_growth_mb": two["driver"]["rss_mb"] - one["driver"]["rss_mb"],
        "jobs_per_s": (last - first) / max(1e-9, two["elapsed_s"] - one["elapsed_s"]),
    }


def sessions_per_machine(
    backend: AerBackend, num_sessions: int, *, exclude: frozenset[int] = frozenset()
) -> dict[str, Any]:
    """Open ``num_sessions`` sessions on one backend, run a tiny job in each, and measure what
    they cost in memory.

    Args:
        backend: The shared backend.
        num_sessions: Sessions to hold open at once.
        exclude: Pids not to count (the baseline process).

    Returns:
        Per-session RSS/USS of the session actor processes, the increase of the whole Ray
        process tree per session, the memory available before, and the projected number of
        sessions that fit in it.
    """
    before_actors = {p.pid for p in ray_processes("SessionActor")}
    tree_before = _tree_memory_mb(exclude)
    available = psutil.virtual_memory().available / _MB
    started = time.perf_counter()
    # Session() blocks until its actor has started; start them side by side as many clients would.
    with ThreadPoolExecutor(max_workers=8) as pool:
        sessions = list(pool.map(lambda _: Session(backend), range(num_sessions)))
    created_s = time.perf_counter() - started
    try:
        pub = (bell_circuit(), bell_observable())
        jobs = [
            EstimatorV2(mode=s, options={"default_precision": 0.0}).run([pub]) for s in sessions
        ]
        for job in jobs:
            job.result()
        actors = _wait_for_new("SessionActor", before_actors, expected=num_sessions)
        actor_memory = _memory_mb(actors)
        tree_after = _tree_memory_mb(exclude)
    finally:
        for session in sessions:
            session.close()
    per_session_rss = actor_memory["rss_mb"] / max(1, len(actors))
    tree_per_session = (tree_after["rss_mb"] - tree_before["rss_mb"]) / num_sessions
    return {
        "num_sessions": num_sessions,
        "session_actor_processes": len(actors),
        "create_s": created_s,
        "per_session_rss_mb": per_session_rss,
        "per_session_uss_mb": actor_memory["uss_mb"] / max(1, len(actors)),
        "tree_rss_increase_per_session_mb": tree_per_session,
        "tree_uss_increase_per_session_mb": (tree_after["uss_mb"] - tree_before["uss_mb"])
        / num_sessions,
        "available_mb": available,
        "total_mb": psutil.virtual_memory().total / _MB,
        "projected_sessions": available / max(per_session_rss, tree_per_session, 1e-9),
    }
