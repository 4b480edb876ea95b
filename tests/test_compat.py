"""Issue #3: the seed documents' code runs on raysession with only the imports changed.

Covers the provider-style flow (``RayProvider``, ``backend.open_session``,
``backend.run``), the runtime-style flow (``QiskitRuntimeService``,
``Session(service=..., backend=name)``, V1 ``Estimator``/``Sampler`` with
``Options``), and runs ``examples/provider_session.py`` and
``examples/runtime_session.py`` as subprocesses with their own Ray.
"""

from __future__ import annotations

import ast
import math
import os
import pickle
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import ray
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit.library import real_amplitudes
from qiskit.circuit.random import random_circuit
from qiskit.primitives import BaseEstimatorV1, BaseSamplerV1, EstimatorResult, SamplerResult
from qiskit.providers import BackendV2, JobV1
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit.result import Result
from qiskit_aer import AerSimulator

from raysession import (
    AerBackend,
    Estimator,
    EstimatorV2,
    JobCancelledError,
    JobStatus,
    Options,
    ProviderSession,
    QiskitRuntimeService,
    RayBackend,
    RayProvider,
    RaySessionWarning,
    RuntimeJob,
    RuntimeJobV2,
    Sampler,
    Session,
    SessionNotFoundError,
)
from tests.conftest import live_raysession_actors, wait_for

ROOT = Path(__file__).resolve().parents[1]
QASM = "ibmq_qasm_simulator"
EXAMPLE_TIMEOUT_S = 240


def bell_with_registers() -> QuantumCircuit:
    """The provider document's circuit."""
    qr = QuantumRegister(2, name="qr")
    cr = ClassicalRegister(2, name="cr")
    qc = QuantumCircuit(qr, cr, name="bell")
    qc.h(qr[0])
    qc.cx(qr[0], qr[1])
    qc.measure(qr, cr)
    return qc


def slow_circuit() -> QuantumCircuit:
    """A circuit Aer simulates shot by shot (a mid-circuit measurement), so a job of it with
    many shots keeps its worker busy for a while."""
    qc = real_amplitudes(12, reps=2)
    qc = qc.assign_parameters(np.linspace(0.1, 2.0, qc.num_parameters))
    qc.add_register(ClassicalRegister(1, "mid"))
    qc.measure(0, qc.cregs[0][0])
    qc.h(0)
    qc.measure_all()
    return qc


def guide_circuit() -> QuantumCircuit:
    return random_circuit(2, 2, seed=1).decompose(reps=1)


def exact(circuit: QuantumCircuit, observable: SparsePauliOp) -> float:
    return float(Statevector(circuit).expectation_value(observable).real)


def example_env() -> dict[str, str]:
    env = dict(os.environ)
    # Their own Ray, never this module's (and never a cluster RAY_ADDRESS points to).
    env["RAY_ADDRESS"] = "local"
    env["RAYSESSION_BACKEND_NUM_WORKERS"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return env


# Each example script and the test that checks its output.
EXAMPLE_TESTS = {
    "provider_session": "test_provider_example_prints_bell_counts",
    "runtime_session": "test_runtime_example_prints_the_exact_value_within_its_precision",
}


@dataclass
class ExampleRun:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path


@pytest.fixture(scope="module", autouse=True)
def example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ExampleRun]]:
    """The example scripts whose tests are selected, started when the module starts so that
    their Ray start-up overlaps with the other tests; the example tests wait for them."""
    selected = {item.name for item in request.session.items}
    logs = tmp_path_factory.mktemp("examples")
    runs = {}
    for name, test in EXAMPLE_TESTS.items():
        if test not in selected:
            continue
        stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "examples" / f"{name}.py")],
                cwd=ROOT,
                env=example_env(),
                stdout=out,
                stderr=err,
            )
        runs[name] = ExampleRun(process, stdout, stderr)
    try:
        yield runs
    finally:
        for run in runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


@pytest.fixture(scope="module", autouse=True)
def small_pools() -> Iterator[None]:
    """Cap each backend name at one worker (RAYSESSION_BACKEND_NUM_WORKERS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYSESSION_BACKEND_NUM_WORKERS", "1")
        yield


@pytest.fixture(scope="module")
def provider(ray_cluster: None, small_pools: None) -> RayProvider:
    return RayProvider()


@pytest.fixture(scope="module")
def qasm(provider: RayProvider) -> RayBackend:
    backend = provider.get_backend(QASM)
    backend.aer_backend.warm_up(timeout=120)
    return backend


@pytest.fixture(scope="module")
def service(qasm: RayBackend) -> QiskitRuntimeService:
    return QiskitRuntimeService()


def assert_bell_counts(counts: dict[str, int], shots: int) -> None:
    assert set(counts) <= {"00", "11"}
    assert sum(counts.values()) == shots
    assert min(counts.get("00", 0), counts.get("11", 0)) > shots // 4


# ---------------------------------------------------------------------------- provider


def test_provider_names_resolve_to_aer_backed_backendv2_backends(provider):
    names = [backend.name for backend in provider.backends()]
    for name in (
        QASM,
        "aer_simulator",
        "aer_simulator_statevector",
        "aer_simulator_density_matrix",
        "aer_simulator_stabilizer",
        "aer_simulator_matrix_product_state",
        "aer_simulator_extended_stabilizer",
    ):
        assert name in names
        backend = provider.get_backend(name)
        assert isinstance(backend, BackendV2) and backend.name == name
        assert provider.get_backend(name) is backend
    statevector = provider.get_backend("aer_simulator_statevector")
    assert statevector.target.num_qubits == AerSimulator(method="statevector").target.num_qubits
    assert set(statevector.operation_names) == set(
        AerSimulator(method="statevector").target.operation_names
    )
    assert provider.backends(name=QASM) == [provider.get_backend(QASM)]
    with pytest.raises(ValueError, match="No backend is called 'ibmq_nowhere'"):
        provider.get_backend("ibmq_nowhere")


def test_backend_run_in_job_mode_returns_a_result_with_bell_counts(qasm):
    assert qasm.session is None
    job = qasm.run(bell_with_registers())
    assert isinstance(job, RuntimeJob) and isinstance(job, JobV1)
    result = job.result()
    assert isinstance(result, Result) and result.success
    assert result.job_id == job.job_id() and result.backend_name == QASM
    assert_bell_counts(result.get_counts(), 4000)
    assert_bell_counts(result.get_counts("bell"), 4000)
    assert job.status() == JobStatus.DONE and job.done() and job.in_final_state()
    assert job.backend() is qasm
    assert job.job_v2.session_id == job.session_id


def test_ray_get_of_a_backend_job_returns_the_same_result(qasm):
    job = qasm.run([bell_with_registers(), bell_with_registers()], shots=500, seed_simulator=11)
    fetched = ray.get(job)
    assert isinstance(fetched, Result)
    assert fetched.get_counts() == job.result().get_counts()
    assert len(fetched.get_counts()) == 2
    for counts in fetched.get_counts():
        assert_bell_counts(counts, 500)


def test_backend_job_pickles_into_a_ray_task(qasm):
    job = qasm.run(bell_with_registers(), shots=300)

    @ray.remote(num_cpus=0)
    def counts_in_task(handles: list[RuntimeJob]) -> dict[str, int]:
        # Nested in a list, the handle itself travels (a top-level ref arrives resolved).
        return handles[0].result().get_counts()

    assert_bell_counts(ray.get(counts_in_task.remote([job])), 300)
    assert pickle.loads(pickle.dumps(job)).job_id() == job.job_id()


def test_seeded_run_counts_are_reproducible_and_keyed_like_aer(qasm):
    registers = (QuantumRegister(3, "q"), ClassicalRegister(1, "a"), ClassicalRegister(2, "b"))
    qc = QuantumCircuit(*registers)
    qc.x(0)
    qc.x(2)
    qc.measure(0, qc.cregs[0][0])
    qc.measure([1, 2], list(qc.cregs[1]))
    expected = AerSimulator().run(qc, shots=50).result().get_counts()
    first = qasm.run(qc, shots=50, seed_simulator=5, memory=True).result()
    assert first.get_counts() == expected == {"10 1": 50}
    assert first.get_memory() == ["10 1"] * 50
    again = qasm.run(qc, shots=50, seed_simulator=5).result()
    assert again.get_counts() == first.get_counts()


def test_backend_run_result_reports_its_seed_and_aers_metadata_issue_9(qasm):
    seeded = qasm.run(bell_with_registers(), shots=20, seed_simulator=5).result()
    assert seeded.results[0].seed_simulator == 5
    assert set(seeded.results[0].metadata) == {"shots", "circuit_metadata", "simulator_metadata"}
    # A job without a seed reports the one drawn for it, which reproduces it.
    drawn = qasm.run(bell_with_registers(), shots=200).result()
    seed = drawn.results[0].seed_simulator
    assert isinstance(seed, int)
    again = qasm.run(bell_with_registers(), shots=200, seed_simulator=seed).result()
    assert again.get_counts() == drawn.get_counts()


def test_backend_run_rejects_bad_input_before_queueing(qasm):
    no_clbits = QuantumCircuit(1)
    no_clbits.h(0)
    with pytest.raises(ValueError, match="no classical bits"):
        qasm.run(no_clbits)
    # Options Aer does not use are ignored, as AerSimulator.run ignores them (test_devices).
    with pytest.raises(TypeError, match="QuantumCircuit"):
        qasm.run("bell")


def test_open_session_id_is_none_until_the_first_job_whose_id_it_takes(qasm, service):
    session = qasm.open_session(max_time="2h 30m 40s")
    try:
        assert isinstance(session, ProviderSession) and qasm.session is session
        assert session.session_id is None and session.active
        assert session.status() == "Pending" and session.max_time == 2 * 3600 + 30 * 60 + 40
        first = qasm.run(bell_with_registers())
        assert first.job_id() == session.session_id
        assert_bell_counts(first.result().get_counts(), 4000)
        second = qasm.run(bell_with_registers(), shots=100)
        assert second.job_id() != first.job_id()
        assert second.session_id == first.session_id == session.session_id
        assert session.runtime_session is not None
        assert session.runtime_session.job_ids() == [first.job_id(), second.job_id()]
        assert session.status() == "In progress, accepting new jobs"
        # The service finds the first job by the session's id.
        assert service.job(session.session_id).job_id() == first.job_id()
        second.result()
    finally:
        qasm.cancel_session()
    assert qasm.session is None and not session.active and session.status() == "Closed"
    after = qasm.run(bell_with_registers(), shots=100)
    assert after.session_id != session.session_id
    assert_bell_counts(after.result().get_counts(), 100)


def test_leaving_the_with_block_closes_the_session_and_returns_to_job_mode(qasm):
    with qasm.open_session() as session:
        job = qasm.run(bell_with_registers())
        assert job.job_id() == session.session_id
    assert session.closed and not session.active
    assert qasm.session is None
    assert job.result().get_counts()
    later = qasm.run(bell_with_registers(), shots=100)
    assert later.session_id != session.session_id
    later.result()


def test_close_session_lets_queued_jobs_finish(qasm):
    session = qasm.open_session()
    jobs = [qasm.run(bell_with_registers(), shots=200) for _ in range(3)]
    qasm.close_session()
    assert qasm.session is None and not session.active
    for job in jobs:
        assert_bell_counts(job.result().get_counts(), 200)
        assert job.session_id == session.session_id


def test_cancel_session_cancels_queued_jobs_and_the_running_one_finishes(qasm):
    session = qasm.open_session()
    running = qasm.run(slow_circuit(), shots=2000)
    queued = qasm.run(bell_with_registers(), shots=100)
    qasm.cancel_session()
    assert qasm.session is None and session.status() == "Closed"
    assert sum(running.result().get_counts().values()) == 2000
    wait_for(queued.in_final_state, timeout=60)
    assert queued.status() == JobStatus.CANCELLED and queued.cancelled()
    with pytest.raises(JobCancelledError, match="cancelled"):
        queued.result()


def test_open_session_max_time_bounds(qasm, monkeypatch):
    for bad in (299, "4m", "9h", 0, -5, "soon", "2h 30x"):
        with pytest.raises(ValueError, match="max_time"):
            qasm.open_session(max_time=bad)
    assert qasm.session is None
    monkeypatch.setenv("RAYSESSION_MAX_MAX_TIME", "400")
    with pytest.raises(ValueError, match="between 300 s and the system maximum of 400 s"):
        qasm.open_session(max_time=401)
    monkeypatch.setenv("RAYSESSION_PROVIDER_MIN_MAX_TIME", "2")
    session = qasm.open_session(max_time=3)
    try:
        assert session.max_time == 3
        with pytest.raises(RuntimeError, match="already has an open session"):
            qasm.open_session()
    finally:
        qasm.close_session()


def test_another_method_name_runs_its_own_aer_options_on_the_shared_pool(provider, qasm):
    statevector = provider.get_backend("aer_simulator_statevector")
    assert statevector.aer_backend.backend_id != qasm.aer_backend.backend_id
    assert statevector.aer_backend.aer_options == {"method": "statevector"}
    result = statevector.run(bell_with_registers(), shots=200).result()
    assert result.backend_name == "aer_simulator_statevector"
    assert_bell_counts(result.get_counts(), 200)


def test_provider_objects_pickle(provider, qasm):
    copy = pickle.loads(pickle.dumps(qasm))
    assert isinstance(copy, RayBackend) and copy.name == QASM
    assert copy.aer_backend.backend_id == qasm.aer_backend.backend_id
    assert isinstance(pickle.loads(pickle.dumps(provider)), RayProvider)
    session = ProviderSession(qasm, 600)
    assert pickle.loads(pickle.dumps(session)).max_time == 600


# ---------------------------------------------------------------------------- service


def test_service_lists_the_aer_backends_and_only_installed_fake_devices(service):
    names = [backend.name for backend in service.backends()]
    assert names[:2] == ["aer_simulator", QASM]
    assert "aer_simulator_statevector" in names
    assert service.backend(QASM) is service.get_backend(QASM)
    assert service.backends(min_num_qubits=100, simulator=True) == [
        service.backend("aer_simulator_stabilizer")
    ]
    assert service.backends(operational=False) == []
    # The least busy backend is one whose pool already runs.
    assert service.least_busy().name == QASM
    devices = [b.name for b in service.backends(simulator=False)]
    assert devices[:2] == ["generic_line_5q", "generic_heavy_hex_19q"]
    try:
        import qiskit_ibm_runtime  # noqa: F401
    except ImportError:
        assert len(devices) == 2
    else:
        assert all(name.startswith("fake_") for name in devices[2:]) and len(devices) > 2


def test_sessions_by_name_share_the_service_pool(service, qasm):
    actors_before = live_raysession_actors()
    first = Session(service=service, backend=QASM)
    second = Session(backend=QASM)  # no service: raysession's default catalog
    third = Session(backend=service.get_backend(QASM), max_time="25m")
    try:
        assert first.backend() == second.backend() == third.backend() == QASM
        assert third.max_time == 25 * 60
        workers = [n for n in live_raysession_actors() if n.startswith("aer-")]
        assert workers == [n for n in actors_before if n.startswith("aer-")]
        assert service.backend(QASM).aer_backend.backend_id == qasm.aer_backend.backend_id
    finally:
        for session in (first, second, third):
            session.close()


def test_session_without_a_backend_uses_the_service_default(qasm):
    service = QiskitRuntimeService(default_backend=QASM)
    session = Session(service=service)
    try:
        assert session.backend() == QASM
    finally:
        session.close()
    with pytest.raises(ValueError, match="needs backend="):
        Session()
    with pytest.raises(ValueError, match=r"(?i)no backend is called 'nowhere'"):
        Session(service=service, backend="nowhere")
    with pytest.raises(ValueError, match=r"(?i)no backend is called 'not a backend object'"):
        Session(backend="not a backend object")
    with pytest.raises(ValueError, match="backend must be a raysession backend"):
        Session(backend=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must be a raysession backend"):
        Session(backend=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="No backend is called"):
        QiskitRuntimeService(default_backend="nowhere")


def test_service_accepts_account_arguments_without_an_account():
    service = QiskitRuntimeService(channel="ibm_quantum", token="unused", instance="h/g/p")
    assert service.channel == "local"
    assert pickle.loads(pickle.dumps(service)).channel == "local"


def test_service_job_and_jobs_find_the_jobs_of_live_sessions(service):
    with Session(service=service, backend=QASM) as session:
        first = Sampler().run(bell_with_registers(), shots=100)
        second = Sampler().run(bell_with_registers(), shots=100)
        first.result()
        second.result()
        found = service.job(second.job_id())
        assert isinstance(found, RuntimeJobV2) and found.session_id == session.session_id
        assert found.status() == JobStatus.DONE
        assert found.result()[0].data.cr.num_shots == 100
        listed = service.jobs(session_id=session.session_id)
        assert [job.job_id() for job in listed] == [second.job_id(), first.job_id()]
        oldest_first = service.jobs(session_id=session.session_id, descending=False)
        assert [job.job_id() for job in oldest_first] == [first.job_id(), second.job_id()]
        assert service.jobs(session_id=session.session_id, limit=1, skip=1)[0].job_id() == (
            first.job_id()
        )
        assert service.jobs(session_id=session.session_id, pending=True) == []
        assert second.job_id() in [j.job_id() for j in service.jobs(limit=None, backend_name=QASM)]
    with pytest.raises(SessionNotFoundError, match="No live session has job nope"):
        service.job("nope")


# ---------------------------------------------------------------------------- V1 primitives


def test_guide_example_estimator_value_is_the_exact_value_within_its_precision(service):
    circuit = guide_circuit()
    observable = SparsePauliOp("IY")
    options = Options()
    options.optimization_level = 2
    options.resilience_level = 2
    with Session(service=service, backend=QASM) as session:
        with pytest.warns(RaySessionWarning, match="resilience_level=2 asks for zero-noise"):
            estimator = Estimator(options=options)
        assert estimator.session == session
        job = estimator.run(circuit, observable)
        result = job.result()
    assert isinstance(estimator, BaseEstimatorV1) and isinstance(job, RuntimeJob)
    assert isinstance(result, EstimatorResult)
    precision = 1 / math.sqrt(4000)
    assert result.metadata[0]["shots"] == 4000
    assert result.metadata[0]["precision"] == pytest.approx(precision)
    assert abs(result.values[0] - exact(circuit, observable)) <= 5 * precision
    assert job.session_id == session.session_id


def test_estimator_binds_to_the_session_given_or_the_enclosing_with_block(service):
    session = Session(service=service, backend=QASM)
    try:
        assert Estimator(session=session).session == session
        assert Sampler(session=session).session == session
        with Session(service=service, backend=QASM) as inner:
            assert Estimator().session == inner and Sampler().session == inner
        assert Estimator(backend=QASM).session is None
        assert Estimator(backend=QASM).backend_name == QASM
    finally:
        session.close()


def test_estimator_v1_lists_parameters_and_exact_values(service):
    ansatz = real_amplitudes(3, reps=1)
    values = np.random.default_rng(3).uniform(0, np.pi, (2, ansatz.num_parameters))
    observables = [SparsePauliOp("ZZI"), SparsePauliOp.from_list([("XII", 0.5), ("IIY", 1.0)])]
    with Session(service=service, backend=QASM):
        estimator = Estimator(options={"execution": {"shots": None}, "optimization_level": 3})
        result = estimator.run([ansatz, ansatz], observables, values).result()
        again = estimator.run([ansatz], [observables[0]], [values[1]], shots=100).result()
    expected = [
        exact(ansatz.assign_parameters(v), obs) for v, obs in zip(values, observables, strict=True)
    ]
    np.testing.assert_allclose(result.values, expected, atol=1e-8)
    assert result.metadata[0]["shots"] is None and result.metadata[0]["std_error"] == 0.0
    assert again.metadata[0]["shots"] == 100
    assert abs(again.values[0] - exact(ansatz.assign_parameters(values[1]), observables[0])) <= 0.5


def test_sampler_v1_returns_quasi_distributions(service):
    with Session(service=service, backend=QASM):
        sampler = Sampler(options={"simulator": {"seed_simulator": 3}})
        job = sampler.run([bell_with_registers(), bell_with_registers()], shots=1000)
        result = job.result()
        assert ray.get(job).quasi_dists == result.quasi_dists
    assert isinstance(sampler, BaseSamplerV1) and isinstance(result, SamplerResult)
    for quasi in result.quasi_dists:
        assert set(quasi) <= {0, 3} and sum(quasi.values()) == pytest.approx(1.0)
        assert quasi.shots == 1000
    assert result.metadata[0]["shots"] == 1000
    with pytest.raises(ValueError, match="Sampler needs shots"):
        Sampler(backend=QASM).run(bell_with_registers(), shots=None)


def test_resilience_warning_is_given_once_per_primitive(service):
    with Session(service=service, backend=QASM):
        with pytest.warns(RaySessionWarning, match="resilience_level=1 asks for measurement"):
            estimator = Estimator(options={"resilience_level": 1, "execution": {"shots": None}})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            estimator.run(guide_circuit(), "IY").result()
            Estimator(options={"resilience_level": 0}).run(guide_circuit(), "IY").result()
        with pytest.warns(RaySessionWarning, match="resilience_level=3"):
            estimator.set_options(resilience_level=3)


def test_options_validate_every_assignment_and_reject_unknown_fields():
    options = Options()
    with pytest.raises(ValueError, match="optimization_level"):
        options.optimization_level = 4
    with pytest.raises(ValueError, match="shots"):
        options.execution.shots = 0
    with pytest.raises(ValueError, match="Unknown option 'shot'"):
        options.merged({"shot": 10})
    assert options.merged({"shots": 10}).execution.shots == 10
    assert options.merged({"execution": {"shots": 10}}).execution.shots == 10
    assert options.execution.shots == 4000 and options.precision == pytest.approx(1 / 4000**0.5)
    with pytest.raises(ValueError, match="Unknown option"):
        Estimator(backend=QASM, options={"environment": {"log_level": "INFO"}})


def test_max_execution_time_must_be_smaller_than_the_session_max_time(service):
    with Session(service=service, backend=QASM, max_time=600):
        estimator = Estimator(options={"max_execution_time": 600})
        with pytest.raises(ValueError, match=r"max_execution_time=600.* smaller than .* 600 s"):
            estimator.run(guide_circuit(), "IY")
        job = estimator.run(guide_circuit(), "IY", max_execution_time=599)
        assert job.result().values.shape == (1,)


def test_v1_primitives_work_in_job_mode_on_an_aer_backend(qasm):
    estimator = Estimator(backend=qasm.aer_backend, options={"execution": {"shots": None}})
    assert isinstance(estimator.mode, AerBackend)
    value = estimator.run(guide_circuit(), SparsePauliOp("IY")).result().values[0]
    assert value == pytest.approx(exact(guide_circuit(), SparsePauliOp("IY")), abs=1e-8)
    copy = pickle.loads(pickle.dumps(estimator))
    assert copy.run(guide_circuit(), "IY").result().values[0] == pytest.approx(value, abs=1e-8)


# ---------------------------------------------------------------------------- examples


def finished(run: ExampleRun) -> tuple[str, str]:
    try:
        run.process.wait(timeout=EXAMPLE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()
    stdout, stderr = run.stdout.read_text(), run.stderr.read_text()
    assert run.process.returncode == 0, f"exit {run.process.returncode}:\n{stdout}\n{stderr}"
    return stdout, stderr


def printed(stdout: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}: (.*)$", stdout, flags=re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


def test_provider_example_prints_bell_counts(example_runs):
    stdout, _ = finished(example_runs["provider_session"])
    assert printed(stdout, "Result").startswith("Result(backend_name='ibmq_qasm_simulator'")
    assert_bell_counts(ast.literal_eval(printed(stdout, "Counts")), 4000)
    assert printed(stdout, "Session ID before the first job") == "None"
    assert re.fullmatch(r"[0-9a-f]{32}", printed(stdout, "Session ID"))
    assert_bell_counts(ast.literal_eval(printed(stdout, "Session counts")), 4000)
    assert_bell_counts(ast.literal_eval(printed(stdout, "Job mode counts")), 1000)


def test_runtime_example_prints_the_exact_value_within_its_precision(example_runs):
    stdout, stderr = finished(example_runs["runtime_session"])
    value = float(printed(stdout, ">>> Expectation value"))
    metadata = ast.literal_eval(printed(stdout, ">>> Metadata"))
    precision = 1 / math.sqrt(4000)
    assert metadata["shots"] == 4000 and metadata["precision"] == pytest.approx(precision)
    assert abs(value - exact(guide_circuit(), SparsePauliOp("IY"))) <= 5 * precision
    assert printed(stdout, "max_time") == "1500 s"
    assert stderr.count("resilience_level=2 asks for zero-noise extrapolation") == 1


def test_v2_primitive_takes_a_service_backend_as_mode(service):
    backend = service.backend("ibmq_qasm_simulator")
    estimator = EstimatorV2(mode=backend, options={"default_precision": 0})
    assert estimator.mode is backend.aer_backend
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    assert float(estimator.run([(bell, "ZZ")]).result()[0].data.evs) == pytest.approx(1.0)
