"""The worker pool on a real three-node Ray cluster (issue 7: a head and 2 nodes).

The launcher configs (cluster.yaml, deploy/local-cluster.yaml) are checked in tests/test_deploy.py.

The cluster is ``ray.cluster_utils.Cluster`` in this process: a head node (the driver's and
the pool's) and two worker nodes, 2 CPUs each. Session actors land on any node, so a test
removes a node chosen by where its session runs. Slow work is held at a gate the test opens
(``tests.helpers``); the gates live on the head, so they survive the nodes the tests remove.
The placement timeout is short, set in the environment before Ray starts.
"""

from __future__ import annotations

import collections
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import ray
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from ray.cluster_utils import Cluster
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from ray.util.state import list_actors

from raysession import (
    AerBackend,
    BackendUnavailableError,
    EstimatorV2,
    JobTimeoutError,
    SamplerV2,
    Session,
    pool_status,
    shutdown_pool,
)
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import GATE_NAMESPACE, Gate, ansatz, bell, entered, gated, observable, values

HEAD_CPUS = 2
NODE_CPUS = 2
PLACEMENT_S = 5.0
# Every chunk unpickles its circuit, so every chunk of a gated PUB waits at the gate.
GATED = {"default_precision": 0.0, "raysession": {"circuit_cache": False}}


@dataclass
class Nodes:
    """The module's cluster: the head node (this driver's) and two worker nodes."""

    cluster: Cluster
    dashboard: str
    workers: list[Any]
    """The worker nodes, as ``Cluster.add_node`` returned them."""

    @property
    def head_id(self) -> str:
        return self.cluster.head_node.node_id

    @property
    def worker_ids(self) -> list[str]:
        return [node.node_id for node in self.workers]

    @property
    def all_ids(self) -> set[str]:
        return {self.head_id, *self.worker_ids}

    def remove(self, index: int, *, crash: bool) -> str:
        """Remove worker node ``index`` (a crash kills its processes at once); its id."""
        node = self.workers[index]
        self.cluster.remove_node(node, allow_graceful=not crash)
        return node.node_id

    def replace(self, index: int) -> None:
        """Start a fresh worker node in place of a removed one."""
        self.workers[index] = self.cluster.add_node(num_cpus=NODE_CPUS)
        self.cluster.wait_for_nodes()


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[Nodes]:
    """Overrides conftest's single-node Ray: a head and two worker nodes, in this process.

    The short placement timeout is in the environment before Ray starts, so every Ray
    process (and so the pool, whoever creates it) reads it. Node death is noticed after
    about 3 s of missed health checks (15 s by default). The dashboard serves Ray's state
    API, which tells the node of a session actor.
    """
    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYSESSION_PLACEMENT_TIMEOUT_S", str(PLACEMENT_S))
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": HEAD_CPUS,
                "include_dashboard": True,
                "_system_config": {
                    "health_check_period_ms": 1000,
                    "health_check_failure_threshold": 3,
                },
            },
        )
        try:
            workers = [cluster.add_node(num_cpus=NODE_CPUS) for _ in range(2)]
            cluster.wait_for_nodes()
            # Cluster records itself as the current cluster; connect to it by its address.
            context = ray.init(address=cluster.address, logging_level="warning")
            yield Nodes(cluster, f"http://{context.dashboard_url}", workers)
        finally:
            ray.shutdown()
            cluster.shutdown()


@pytest.fixture
def nodes(ray_cluster: Nodes) -> Nodes:
    """The cluster, with the pool stopped so that the test starts with no Aer worker."""
    shutdown_pool()
    wait_for(lambda: not any(n == "pool" or n.startswith("aer-") for n in live_raysession_actors()))
    return ray_cluster


@pytest.fixture
def gate(nodes: Nodes) -> Iterator[tuple[Any, str]]:
    """A fresh gate on the head node (which no test removes), and its name."""
    name = f"gate-{uuid.uuid4().hex[:8]}"
    handle = (
        ray.remote(Gate)
        .options(
            name=name,
            namespace=GATE_NAMESPACE,
            max_concurrency=64,
            num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(nodes.head_id, soft=False),
        )
        .remote()
    )
    try:
        yield handle, name
    finally:
        # Let anything still waiting go before the gate goes.
        ray.get(handle.allow.remote(1000))
        ray.kill(handle)


def node_cpus() -> dict[str, float]:
    """The CPUs of each live node, by node id."""
    return {
        node["NodeID"]: node["Resources"].get("CPU", 0.0)
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node["Alive"]
    }


def worker_cpus_by_node() -> dict[str, float]:
    """The CPUs the pool's workers use on each node."""
    used: dict[str, float] = collections.defaultdict(float)
    for worker in pool_status().workers:
        used[worker.node_id] += worker.num_cpus
    return dict(used)


def actor_nodes(nodes: Nodes) -> dict[str, str]:
    """The node id of every live raysession actor, by actor name (Ray's state API)."""
    actors = list_actors(
        address=nodes.dashboard,
        filters=[("ray_namespace", "=", "raysession"), ("state", "=", "ALIVE")],
        detail=True,
        raise_on_missing_output=False,
    )
    return {actor.name: actor.node_id for actor in actors}


def session_node(session: Session, nodes: Nodes) -> str | None:
    return actor_nodes(nodes).get(f"session-{session.session_id}")


@ray.remote(num_cpus=0)
def _open_session() -> Session:
    return Session(backend=AerBackend())


def session_off_the_head(nodes: Nodes) -> tuple[Session, int]:
    """A session whose actor runs on a worker node, and that node's index.

    A session actor is pinned to the node of the process that opens it: open it from a
    task pinned to the first worker node.
    """
    index = 0
    pinned = NodeAffinitySchedulingStrategy(nodes.worker_ids[index], soft=False)
    session = ray.get(_open_session.options(scheduling_strategy=pinned).remote(), timeout=120)
    assert session_node(session, nodes) == nodes.worker_ids[index]
    return session, index


def other_worker_node(session: Session, nodes: Nodes) -> int:
    """The index of a worker node that the session's actor does not run on."""
    on = session_node(session, nodes)
    assert on in nodes.all_ids, on
    return next(i for i, node_id in enumerate(nodes.worker_ids) if node_id != on)


def requested_bundles() -> list[dict[str, float]]:
    """The resource bundles last asked of Ray's autoscaler with ``request_resources``."""
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    if is_autoscaler_v2():
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        state = get_cluster_resource_state(ray._private.worker.global_worker.gcs_client)
        return [
            dict(by_count.request.resources_bundle)
            for constraint in state.cluster_resource_constraints
            for by_count in constraint.resource_requests
            for _ in range(by_count.count)
        ]
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return json.loads(raw) if raw else []


def sweep(gate_name: str, num_sets: int) -> tuple[Any, Any, np.ndarray]:
    """A gated estimator PUB of ``num_sets`` parameter sets."""
    circuit = ansatz(4)
    return (gated(circuit, gate_name), observable(4), values(circuit, num_sets))


def check_sweep(result: Any, num_sets: int) -> None:
    """The numbers of :func:`sweep` equal qiskit_aer's own estimator."""
    circuit = ansatz(4)
    expected = AerEstimatorV2().run([(circuit, observable(4), values(circuit, num_sets))]).result()
    assert result.data.evs.shape == (num_sets,)
    np.testing.assert_allclose(result.data.evs, expected[0].data.evs, atol=1e-12)


# ------------------------------------------------------------------ placement


def test_a_job_of_three_chunks_gets_one_worker_on_each_of_the_three_nodes(nodes, gate):
    handle, name = gate
    with Session(backend=AerBackend()) as session:
        job = EstimatorV2(
            mode=session, options={**GATED, "raysession": {"circuit_cache": False, "chunk_size": 2}}
        ).run([sweep(name, 6)])
        wait_for(lambda: entered(handle) == 3, timeout=180)
        workers = pool_status().workers
        # Spread, not packed: two CPUs of the head would have held two of them.
        assert sorted(w.node_id for w in workers) == sorted(nodes.all_ids), workers
        assert {w.state for w in workers} == {"busy"}
        handle.allow.remote(3)
        check_sweep(job.result(timeout=180)[0], 6)
        assert job.metrics()["num_chunks"] == 3


def test_a_sweep_wider_than_the_cluster_never_runs_more_worker_cpus_on_a_node_than_it_has(
    nodes, gate
):
    handle, name = gate
    cpus = node_cpus()
    capacity = int(sum(cpus.values()))
    with Session(backend=AerBackend()) as session:
        # Two chunks more than the cluster has CPUs: they wait for a worker to finish.
        job = EstimatorV2(
            mode=session, options={**GATED, "raysession": {"circuit_cache": False, "chunk_size": 1}}
        ).run([sweep(name, capacity + 2)])
        wait_for(lambda: entered(handle) == capacity, timeout=240)
        status = pool_status()
        assert len(status.workers) == capacity, status.workers
        assert worker_cpus_by_node() == cpus
        assert status.waiting == {session.session_id: 2}
        # The autoscaler is asked for room for the two; they wait as long as the chunks
        # ahead of them run, the placement timeout being for shapes that cannot run at all.
        wait_for(lambda: requested_bundles() == [{"CPU": 1.0}] * (capacity + 2))
        with pytest.raises(JobTimeoutError):
            job.result(timeout=PLACEMENT_S * 3)
        handle.allow.remote(capacity + 2)
        check_sweep(job.result(timeout=180)[0], capacity + 2)
        assert entered(handle) == capacity + 2
        assert len(pool_status().workers) == capacity
        assert requested_bundles() == []


@pytest.mark.parametrize(
    ("shape", "bundle"),
    [
        ({"num_cpus_per_worker": 64}, {"CPU": 64.0}),
        ({"device": "GPU", "num_gpus_per_worker": 1}, {"CPU": 1.0, "GPU": 1.0}),
    ],
    ids=["64-cpus", "a-gpu"],
)
def test_a_shape_no_node_can_place_asks_the_autoscaler_then_fails_naming_the_resources(
    nodes, shape, bundle
):
    with Session(backend=AerBackend(**shape)) as session:
        job = EstimatorV2(mode=session, options={"default_precision": 0}).run([(bell(False), "ZZ")])
        # While the job waits, the autoscaler is asked for a node that has the shape.
        wait_for(lambda: requested_bundles() == [bundle], timeout=PLACEMENT_S * 6)
        assert not job.in_final_state()
        status = pool_status()
        assert status.config["placement_timeout_s"] == PLACEMENT_S
        assert status.workers == [] and status.waiting == {session.session_id: 1}
        needing = re.escape(f"needing {bundle} within {PLACEMENT_S:g} s")
        with pytest.raises(BackendUnavailableError, match=needing):
            job.result(timeout=PLACEMENT_S * 20)
        assert job.status() == "ERROR"
        # Nothing is asked for once no job waits; the session goes on.
        wait_for(lambda: requested_bundles() == [])
        assert session.status() == "In progress, accepting new jobs"


# ------------------------------------------------------------------ sessions across nodes


@ray.remote(num_cpus=0)
def _bell_zz_in_session(session_id: str) -> tuple[str, float]:
    session = Session.from_id(session_id)
    job = EstimatorV2(mode=session, options={"default_precision": 0}).run([(bell(False), "ZZ")])
    return ray.get_runtime_context().get_node_id(), float(job.result(timeout=120)[0].data.evs)


def test_session_made_by_the_driver_runs_jobs_from_a_task_on_another_node(nodes):
    assert ray.get_runtime_context().get_node_id() == nodes.head_id
    with Session(backend=AerBackend()) as session:
        # A worker node that runs neither this driver nor the session's actor.
        elsewhere = nodes.worker_ids[other_worker_node(session, nodes)]
        task = _bell_zz_in_session.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(elsewhere, soft=False)
        )
        node_id, zz = ray.get(task.remote(session.session_id), timeout=180)
        assert node_id == elsewhere
        assert zz == pytest.approx(1.0)
        assert session.job_ids() and session.status() == "In progress, accepting new jobs"


def test_seeded_job_split_over_the_nodes_gives_the_bits_of_a_one_worker_backend(nodes, gate):
    handle, name = gate
    circuit = ansatz(3)
    circuit.measure_all()
    pub = (gated(circuit, name), values(circuit, 40), 50)
    options = {
        "simulator": {"seed_simulator": 7},
        "raysession": {"chunk_size": 8, "circuit_cache": False},
    }
    with Session(backend=AerBackend()):
        spread = SamplerV2(options=options).run([pub])
        # All five chunks at the gate at once: five workers, over every node.
        wait_for(lambda: entered(handle) == 5, timeout=240)
        placed = {w.worker_id: w.node_id for w in pool_status().workers}
        assert set(placed.values()) == nodes.all_ids, placed
        handle.allow.remote(5)
        split = spread.result(timeout=180)[0]
        assert set(spread.metrics()["workers"]) == set(placed)
    with Session(backend=AerBackend(max_workers=1)):
        handle.allow.remote(5)
        capped = SamplerV2(options=options).run([pub])
        one = capped.result(timeout=180)[0]
        assert capped.metrics()["num_chunks"] == 5
    np.testing.assert_array_equal(split.data.meas.array, one.data.meas.array)
    assert one.data.meas.array.shape == (40, 50, 1)


# ------------------------------------------------------------------ nodes that die


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "crash"])
def test_workers_lost_with_a_node_are_replaced_on_the_others_and_their_chunks_run_again(
    nodes, gate, crash
):
    handle, name = gate
    with Session(backend=AerBackend()) as session:
        job = EstimatorV2(
            mode=session, options={**GATED, "raysession": {"circuit_cache": False, "chunk_size": 2}}
        ).run([sweep(name, 6)])
        wait_for(lambda: entered(handle) == 3, timeout=180)
        first = {w.worker_id: w.node_id for w in pool_status().workers}
        assert set(first.values()) == nodes.all_ids, first
        # A node that holds a chunk's worker but not the session: only workers die.
        index = other_worker_node(session, nodes)
        # Every chunk is held at the gate: the one on that node is lost unfinished.
        assert ray.get(handle.counts.remote()) == (3, 0)
        try:
            lost = nodes.remove(index, crash=crash)
            # The lost chunk runs again on a worker the pool starts where there is room.
            wait_for(lambda: entered(handle) == 4, timeout=180)
            assert job.status() == "RUNNING"
            status = pool_status()
            assert status.replaced >= 1
            placed = {w.worker_id: w.node_id for w in status.workers}
            assert lost not in placed.values(), placed
            assert len(placed) == 3 and set(placed) - set(first), (first, placed)
            cpus = node_cpus()
            assert all(used <= cpus[node] for node, used in worker_cpus_by_node().items())
            # Four permits: the lost worker's call still waits at the gate and may take one.
            handle.allow.remote(4)
            check_sweep(job.result(timeout=180)[0], 6)
        finally:
            nodes.replace(index)
        assert job.status() == "DONE"
        assert job.metrics()["retries"] >= 1
        assert entered(handle) == 4  # three chunks, one of them run twice
        assert session.status() == "In progress, accepting new jobs"


def test_job_fails_with_backend_unavailable_when_its_session_actors_node_dies(nodes, gate):
    handle, name = gate
    session, index = session_off_the_head(nodes)
    job = EstimatorV2(
        mode=session, options={**GATED, "raysession": {"circuit_cache": False, "chunk_size": 2}}
    ).run([sweep(name, 6)])
    wait_for(lambda: entered(handle) == 3, timeout=180)
    try:
        lost = nodes.remove(index, crash=True)
        with pytest.raises(BackendUnavailableError, match="its session or workers died"):
            job.result(timeout=120)
        # Three permits, for the dead session's two chunks still held on the other nodes
        # (they finish and go nowhere) and the lost worker's call, which still waits.
        handle.allow.remote(3)
    finally:
        nodes.replace(index)
    assert job.status() == "ERROR"
    assert session.status() == "Closed"
    # The pool, on the head, serves the next session, on the nodes alive.
    with Session(backend=AerBackend()):
        ev = EstimatorV2(options={"default_precision": 0}).run([(bell(False), "ZZ")])
        assert float(ev.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    assert lost not in {w.node_id for w in pool_status().workers}


def test_a_killed_session_actor_restarts_and_reruns_its_job_split_over_the_nodes(nodes, gate):
    handle, name = gate
    with Session(backend=AerBackend()) as session:
        job = EstimatorV2(
            mode=session, options={**GATED, "raysession": {"circuit_cache": False, "chunk_size": 2}}
        ).run([sweep(name, 6)])
        wait_for(lambda: entered(handle) == 3, timeout=180)  # a chunk on each node
        actor = ray.get_actor(f"session-{session.session_id}", namespace="raysession")
        ray.kill(actor, no_restart=False)
        # The restarted actor runs the whole job again: three more chunks reach the gate,
        # on the workers the dead incarnation held (the pool freed them) or new ones.
        handle.allow.remote(3)  # the first run's chunks finish and go nowhere
        wait_for(lambda: entered(handle) >= 6, timeout=180)
        handle.allow.remote(3)
        check_sweep(job.result(timeout=180)[0], 6)
        assert job.status() == "DONE" and job.metrics()["num_chunks"] == 3
        assert session.status() == "In progress, accepting new jobs"
    assert ray.get(handle.counts.remote()) == (6, 6)  # the job ran twice, not three times
