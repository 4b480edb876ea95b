"""Recovery times for the README's "What survives what" table (issue 10).

Run: ``python -m benchmarks.recovery`` on an otherwise idle machine. Each row kills one
thing and measures how long until raysession has recovered, on a local Ray (and, for a
node, a ``ray.cluster_utils.Cluster`` with one worker node):

* worker: an Aer worker killed mid-job; the job's extra time over an undisturbed run.
* node: the node of the only worker removed; the next job's extra time (a worker starts
  on another node).
* session actor: killed with jobs queued; until it answers again, and until every
  accepted job is DONE (the one that was running ran again).
* submitting driver: a driver that ran jobs exits; until another driver has the result.
* whole Ray cluster: the cluster that ran the jobs stopped; reading them from storage.

Prints one JSON object; the README's table quotes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import ray
import ray._private.state as ray_state
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

from raysession import AerBackend, EstimatorV2, QiskitRuntimeService, Session, pool_status
from raysession._connect import NAMESPACE, actor_name

# A job of a few seconds on one core: long enough to kill something under it.
QUBITS, POINTS = 16, 100


def _job_pub() -> tuple[Any, ...]:
    circuit = efficient_su2(QUBITS, reps=2)
    values = np.random.default_rng(1).uniform(0, 6, (POINTS, circuit.num_parameters))
    return (circuit, SparsePauliOp("Z" * QUBITS), values)


def _estimator(session: Session) -> EstimatorV2:
    return EstimatorV2(mode=session, options={"default_precision": 0.0})


def _busy_worker() -> str:
    """The one Aer worker of a ``max_workers=1`` backend (found by name: asking the pool
    for its status waits for busy workers' cache reports)."""
    names = [
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == NAMESPACE and entry["name"].startswith("aer-")
    ]
    if len(names) != 1:
        raise RuntimeError(f"expected one Aer worker, found {names}")
    return str(names[0])


def worker_row(backend: AerBackend) -> dict[str, float]:
    with Session(backend=backend) as session:
        estimator = _estimator(session)
        started = time.perf_counter()
        estimator.run([_job_pub()]).result()
        clean = time.perf_counter() - started
        started = time.perf_counter()
        job = estimator.run([_job_pub()])
        time.sleep(clean / 2)
        ray.kill(ray.get_actor(_busy_worker(), namespace=NAMESPACE), no_restart=True)
        job.result()
        hit = time.perf_counter() - started
    return {"job_s": clean, "job_with_worker_killed_s": hit, "extra_s": hit - clean}


def session_actor_row(backend: AerBackend) -> dict[str, float]:
    session = Session(backend=backend)
    estimator = _estimator(session)
    estimator.run([_job_pub()]).result()  # warm
    jobs = [estimator.run([_job_pub()]) for _ in range(3)]
    time.sleep(0.3)
    actor = ray.get_actor(actor_name("session", session.session_id), namespace=NAMESPACE)
    killed = time.perf_counter()
    ray.kill(actor, no_restart=False)
    while True:  # until Ray reports it restarted
        info = ray_state.actors(actor._actor_id.hex())
        if info["NumRestarts"] >= 1 and info["State"] == "ALIVE":
            break
        time.sleep(0.005)
    session.details()
    answered = time.perf_counter() - killed
    for job in jobs:
        job.result()
    done = time.perf_counter() - killed
    session.close()
    return {"answers_again_s": answered, "three_accepted_jobs_done_s": done}


DRIVER = """
    import json, numpy as np
    from qiskit.circuit.library import efficient_su2
    from qiskit.quantum_info import SparsePauliOp
    from raysession import AerBackend, EstimatorV2, Session
    {init}
    session = Session(backend=AerBackend(max_workers=1))
    circuit = efficient_su2(8, reps=1)
    values = np.random.default_rng(1).uniform(0, 6, (20, circuit.num_parameters))
    job = EstimatorV2(mode=session).run([(circuit, SparsePauliOp("Z" * 8), values)])
    job.result()
    {close}
    print(json.dumps({{"job": job.job_id()}}))
"""


def _driver(init: str, close: str, address: str) -> str:
    env = {**os.environ, "RAY_ADDRESS": address}
    script = textwrap.dedent(DRIVER.format(init=init, close=close))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return str(json.loads(done.stdout.strip().splitlines()[-1])["job"])


def driver_row() -> dict[str, float]:
    job_id = _driver("", "", ray.get_runtime_context().gcs_address)
    exited = time.perf_counter()
    QiskitRuntimeService().job(job_id).result()
    return {"result_read_after_exit_s": time.perf_counter() - exited}


def cluster_row() -> dict[str, float]:
    job_id = _driver("import ray; ray.init(num_cpus=2)", "session.close()", "local")
    stopped = time.perf_counter()
    QiskitRuntimeService().job(job_id).result()
    return {"result_read_after_cluster_stopped_s": time.perf_counter() - stopped}


def node_row() -> dict[str, float]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, logging_level="warning")
    try:
        backend = AerBackend(max_workers=1)
        backend.warm_up(timeout=120)
        with Session(backend=backend) as session:
            estimator = _estimator(session)
            started = time.perf_counter()
            estimator.run([_job_pub()]).result()
            clean = time.perf_counter() - started
            # The node of the one worker goes; the next job waits for a worker elsewhere.
            worker = _busy_worker()
            where = next(w.node_id for w in pool_status().workers if w.worker_id == worker)
            victim = next(n for n in cluster.list_all_nodes() if n.node_id == where)
            cluster.remove_node(victim, allow_graceful=False)
            started = time.perf_counter()
            estimator.run([_job_pub()]).result()
            hit = time.perf_counter() - started
        return {"job_s": clean, "job_with_node_lost_s": hit, "extra_s": hit - clean}
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    os.environ.setdefault("RAYSESSION_WORKER_IDLE_S", "3600")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    backend = AerBackend(max_workers=1)
    backend.warm_up(timeout=120)
    rows: dict[str, Any] = {
        "worker": worker_row(backend),
        "session_actor": session_actor_row(backend),
        "submitting_driver": driver_row(),
        "whole_cluster": cluster_row(),
    }
    ray.shutdown()
    rows["node"] = node_row()
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
