"""Scale-out on a real two-node Ray cluster (``ray.cluster_utils.Cluster``), and cluster.yaml."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import yaml
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from ray.util.state import list_actors

from raysession import (
    AerBackend,
    BackendUnavailableError,
    EstimatorV2,
    SamplerV2,
    Session,
)
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, slow_pub, values

REPO = Path(__file__).resolve().parents[1]

# The head has CPUs to spare, so a worker actor lost with the other node restarts on it.
HEAD_CPUS = 4
WORKER_CPUS = 2


@dataclass
class TwoNodes:
    """The module's cluster: a head node (this driver's) and one worker node."""

    cluster: Cluster
    dashboard: str
    worker: Any
    """The worker node, as ``Cluster.add_node`` returned it."""

    @property
    def head_id(self) -> str:
        return self.cluster.head_node.node_id

    @property
    def worker_id(self) -> str:
        return self.worker.node_id

    def replace_worker(self) -> None:
        """Start a fresh worker node in place of a removed one."""
        self.worker = self.cluster.add_node(num_cpus=WORKER_CPUS)
        self.cluster.wait_for_nodes()


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[TwoNodes]:
    """Overrides conftest's single-node Ray: a head node and a worker node, in this process.

    Node death is noticed after about 3 s of missed health checks (15 s by default). The
    dashboard serves Ray's state API, which tells which node each actor runs on.
    """
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": HEAD_CPUS,
            "include_dashboard": True,
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    try:
        worker = cluster.add_node(num_cpus=WORKER_CPUS)
        cluster.wait_for_nodes()
        # Cluster records itself as the current cluster; connect to it by its address.
        context = ray.init(address=cluster.address, logging_level="warning")
        yield TwoNodes(cluster, f"http://{context.dashboard_url}", worker)
    finally:
        ray.shutdown()
        cluster.shutdown()


def actor_nodes(nodes: TwoNodes) -> dict[str, str]:
    """The node id of every live raysession actor, by actor name."""
    actors = list_actors(
        address=nodes.dashboard,
        filters=[("ray_namespace", "=", "raysession"), ("state", "=", "ALIVE")],
        detail=True,
        raise_on_missing_output=False,
    )
    return {actor.name: actor.node_id for actor in actors}


@ray.remote(num_cpus=0)
def _open_session(backend: AerBackend) -> Session:
    return Session(backend=backend)


def session_on(node_id: str, backend: AerBackend, nodes: TwoNodes) -> Session:
    """A session whose actor runs on ``node_id``: opened by a task pinned there.

    A session actor is placed softly on the node of the process that creates it;
    Ray may still spill it, so try a few times.
    """
    pinned = NodeAffinitySchedulingStrategy(node_id, soft=False)
    placed = []
    for _ in range(10):
        session = ray.get(_open_session.options(scheduling_strategy=pinned).remote(backend))
        placed.append(actor_nodes(nodes).get(f"session-{session.session_id}"))
        if placed[-1] == node_id:
            return session
        session.close()
    raise AssertionError(f"no session actor was placed on node {node_id}; they went to {placed}")


def workers_by_node(pool: AerBackend, nodes: TwoNodes) -> dict[str, str]:
    """The node id of each of the pool's workers ("not alive" while one restarts)."""
    placement = actor_nodes(nodes)
    return {name: placement.get(name, "not alive") for name in pool.worker_ids()}


def wait_for_workers_on(node_ids: set[str], pool: AerBackend, nodes: TwoNodes) -> None:
    """Wait until every worker of the pool is alive, and the nodes they run on are ``node_ids``."""
    wait_for(lambda: set(workers_by_node(pool, nodes).values()) == node_ids, timeout=60)


# ------------------------------------------------------------------ cluster.yaml


def test_cluster_yaml_is_a_valid_launcher_config_that_installs_raysession_everywhere():
    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config = prepare_config(raw)
    validate_config(config)

    # Every mounted path exists in a checkout, and together they make an installable project.
    mounts = config["file_mounts"]
    assert all((REPO / local).exists() for local in mounts.values()), mounts
    project_dir = "~/raysession"
    pyproject = (REPO / mounts[f"{project_dir}/pyproject.toml"]).read_text()
    assert re.search(r'^name = "raysession"$', pyproject, re.MULTILINE)
    readme = re.search(r'^readme = "(.+)"$', pyproject, re.MULTILINE)
    assert readme and (REPO / mounts[f"{project_dir}/{readme.group(1)}"]).is_file()
    assert (REPO / mounts[f"{project_dir}/raysession"] / "__init__.py").is_file()

    # Setup commands run on head and workers alike and install the mounted project.
    for commands in (config["head_setup_commands"], config["worker_setup_commands"]):
        installs = [c for c in commands if "pip install" in c and c.split()[-1] == project_dir]
        assert installs, commands
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address=$RAY_HEAD_IP" in c for c in config["worker_start_ray_commands"])
    # Token authentication stays as Ray sets it.
    assert "RAY_AUTH_MODE" not in (REPO / "cluster.yaml").read_text()


# ------------------------------------------------------------------ two nodes


def test_pool_of_two_workers_spreads_over_both_nodes(ray_cluster):
    with AerBackend(num_workers=2) as pool:
        pool.wait_ready(timeout=120)
        placement = workers_by_node(pool, ray_cluster)
        assert set(placement.values()) == {ray_cluster.head_id, ray_cluster.worker_id}, placement


@ray.remote(num_cpus=0)
def _bell_zz_in_session(session_id: str) -> tuple[str, float]:
    session = Session.from_id(session_id)
    job = EstimatorV2(mode=session, options={"default_precision": 0}).run([(bell(False), "ZZ")])
    return ray.get_runtime_context().get_node_id(), float(job.result(timeout=120)[0].data.evs)


def test_session_made_by_the_driver_runs_jobs_from_a_task_on_the_other_node(ray_cluster):
    on_worker_node = NodeAffinitySchedulingStrategy(ray_cluster.worker_id, soft=False)
    with AerBackend(num_workers=2) as pool, Session(backend=pool) as session:
        task = _bell_zz_in_session.options(scheduling_strategy=on_worker_node)
        node_id, zz = ray.get(task.remote(session.session_id), timeout=180)
        assert node_id == ray_cluster.worker_id
        assert zz == pytest.approx(1.0)
        assert session.job_ids() and session.status() == "In progress, accepting new jobs"


def test_seeded_job_split_over_both_nodes_gives_the_bits_of_a_one_worker_pool(ray_cluster):
    circuit = ansatz(3)
    circuit.measure_all()
    pub = (circuit, values(circuit, 40), 50)
    options = {"seed_simulator": 7, "chunk_size": 8}
    results = {}
    for num_workers in (1, 2):
        with AerBackend(num_workers=num_workers) as pool, Session(backend=pool):
            results[num_workers] = SamplerV2(options=options).run([pub]).result(timeout=180)[0]
            placement = workers_by_node(pool, ray_cluster)
        used = results[num_workers].metadata["raysession"]["workers"]
        assert len(used) == 5 and set(used) == set(pool.worker_ids())
    assert set(placement.values()) == {ray_cluster.head_id, ray_cluster.worker_id}, placement
    np.testing.assert_array_equal(results[1].data.meas.array, results[2].data.meas.array)
    assert results[1].data.meas.array.shape == (40, 50, 1)


def _run_slow_job_and_remove_the_worker_node(nodes: TwoNodes, *, crash: bool):
    """Run a 12-chunk job on a pool spread over both nodes and remove the worker node mid-job.

    Returns:
        The job's PUB, the job (final), and what its ``result()`` raised, or ``None``.
    """
    pub = slow_pub(1200)
    options = {"default_precision": 0, "chunk_size": 100}
    error = None
    with AerBackend(num_workers=2) as pool:
        pool.wait_ready(timeout=120)
        # The session itself must outlive the node (see the last test for the other case).
        with session_on(nodes.head_id, pool, nodes) as session:
            assert set(workers_by_node(pool, nodes).values()) == {nodes.head_id, nodes.worker_id}
            job = EstimatorV2(mode=session, options=options).run([pub])
            wait_for(lambda: job.status() != "QUEUED")
            assert job.status() == "RUNNING"
            try:
                # A crash kills the node's processes: Ray notices when its health checks fail.
                nodes.cluster.remove_node(nodes.worker, allow_graceful=not crash)
                try:
                    job.result(timeout=180)
                except Exception as exc:  # the caller asserts on it
                    error = exc
                # The lost worker restarts on the head, the only node left.
                wait_for_workers_on({nodes.head_id}, pool, nodes)
            finally:
                nodes.replace_worker()
            assert job.in_final_state()
            assert session.status() == "In progress, accepting new jobs"
    return pub, job, error


def _check_slow_job_result(pub, job):
    circuit, observable, parameter_values = pub
    result = job.result()[0]
    assert job.status() == "DONE"
    assert result.data.evs.shape == (1200,)
    assert len(result.metadata["raysession"]["chunks"]) == 12
    rows = slice(None, None, 97)  # a sample of rows from every chunk
    expected = AerEstimatorV2().run([(circuit, observable, parameter_values[rows])]).result()
    np.testing.assert_allclose(result.data.evs[rows], expected[0].data.evs, atol=1e-12)


def test_job_completes_when_a_worker_node_shuts_down_mid_job(ray_cluster):
    pub, job, error = _run_slow_job_and_remove_the_worker_node(ray_cluster, crash=False)
    assert error is None
    _check_slow_job_result(pub, job)


def test_job_completes_when_a_worker_node_crashes_mid_job(
    ray_cluster,
):
    # Chunks are retried until their worker is back (on the head): the job completes.
    pub, job, error = _run_slow_job_and_remove_the_worker_node(ray_cluster, crash=True)
    assert error is None
    _check_slow_job_result(pub, job)


def test_job_fails_with_backend_unavailable_when_its_session_actors_node_dies(ray_cluster):
    with AerBackend(num_workers=2) as pool:
        pool.wait_ready(timeout=120)
        session = session_on(ray_cluster.worker_id, pool, ray_cluster)
        job = EstimatorV2(mode=session, options={"default_precision": 0, "chunk_size": 100}).run(
            [slow_pub(600)]
        )
        wait_for(lambda: job.status() != "QUEUED")
        assert job.status() == "RUNNING"
        try:
            ray_cluster.cluster.remove_node(ray_cluster.worker, allow_graceful=False)
            with pytest.raises(BackendUnavailableError, match="its session or workers died"):
                job.result(timeout=120)
            # The pool recovers: its lost worker restarts on the head.
            wait_for_workers_on({ray_cluster.head_id}, pool, ray_cluster)
        finally:
            ray_cluster.replace_worker()
        assert job.status() == "ERROR"
        assert session.status() == "Closed"
        with Session(backend=pool):
            ev = EstimatorV2(options={"default_precision": 0}).run([(bell(False), "ZZ")])
            assert float(ev.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
