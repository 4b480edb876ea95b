"""Simulated devices (issue 9): AerBackend as a BackendV2, from_backend, any BackendV2 as
mode=, the local service's devices, the ISA check, backend.run options, qiskit-experiments."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import ray
from qiskit import QuantumCircuit, transpile
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import CouplingMap, generate_preset_pass_manager
from qiskit_aer import AerSimulator

from raysession import AerBackend, EstimatorV2, SamplerV2, Session
from raysession.ibm import QiskitRuntimeService

from .helpers import bell


@pytest.fixture(scope="module")
def device() -> GenericBackendV2:
    """A noisy 5-qubit line: not all-to-all, so routing and the ISA check matter."""
    return GenericBackendV2(5, coupling_map=CouplingMap.from_line(5), seed=11)


def isa(circuit: QuantumCircuit, backend: object) -> QuantumCircuit:
    manager = generate_preset_pass_manager(backend=backend, optimization_level=1, seed_transpiler=1)
    return manager.run(circuit)


# ------------------------------------------------------------------ AerBackend is a BackendV2


def test_aer_backend_is_a_backend_v2_that_starts_no_ray(device):
    ray.shutdown()  # the module's Ray comes back with the next test's fixture use
    try:
        plain = AerBackend(method="stabilizer")
        assert plain.num_qubits == AerSimulator(method="stabilizer").num_qubits
        assert plain.coupling_map is None and plain.max_circuits is None
        assert "h" in plain.target and "t" not in plain.target
        simulated = AerBackend.from_backend(device)
        assert simulated.num_qubits == 5 and simulated.is_device
        assert sorted(simulated.coupling_map.get_edges()) == sorted(device.coupling_map.get_edges())
        assert simulated.operation_names == device.operation_names
        assert not ray.is_initialized()
    finally:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")


def test_from_backend_pickles_with_its_target_and_noise(device):
    simulated = AerBackend.from_backend(device)
    copy = pickle.loads(pickle.dumps(simulated))
    assert copy.backend_id == simulated.backend_id and copy.is_device
    assert copy.coupling_map.get_edges() == simulated.coupling_map.get_edges()
    noise = copy.aer_options["noise_model"]
    assert noise == simulated.aer_options["noise_model"] and not noise.is_ideal()


def test_transpile_against_the_simulator_decomposes_what_aer_cannot_run():
    inner = QuantumCircuit(2, name="entangle")
    inner.h(0)
    inner.cx(0, 1)
    custom = inner.to_gate()  # a gate with a definition, unknown to Aer
    qc = QuantumCircuit(3)
    qc.append(custom, [0, 1])
    qc.ccx(0, 1, 2)
    qc.measure_all()
    ops = transpile(qc, AerBackend(method="statevector"), optimization_level=0).count_ops()
    assert "entangle" not in ops and ops["ccx"] == 1  # Aer runs ccx natively: kept
    assert ops["h"] == 1 and ops["cx"] == 1

    stabilizer = AerBackend(method="stabilizer")  # runs Clifford gates only
    ops = transpile(qc.decompose("entangle"), stabilizer, optimization_level=0).count_ops()
    assert "ccx" not in ops
    assert set(ops) <= set(stabilizer.target.operation_names) | {"barrier"}


# ------------------------------------------------------------------ from_backend agrees with Aer


def test_from_backend_counts_equal_aer_simulator_from_backend(device):
    """A job run as one chunk runs the circuit on AerSimulator(noise_model=device's noise)
    with the job's seed, exactly what AerSimulator.from_backend(device).run does."""
    circuit = isa(bell(), device)
    ours = SamplerV2(
        mode=AerBackend.from_backend(device), options={"simulator": {"seed_simulator": 5}}
    )
    counts = ours.run([circuit], shots=2000).result()[0].data.meas.get_counts()
    expected = AerSimulator.from_backend(device).run(circuit, shots=2000, seed_simulator=5)
    assert counts == expected.result().get_counts()
    assert {"01", "10"} & set(counts)  # noisy: the ideal Bell state never gives these


def test_any_backend_v2_is_a_mode_and_is_simulated_once_per_object(device):
    circuit = isa(bell(), device)
    first = SamplerV2(mode=device, options={"simulator": {"seed_simulator": 3}})
    assert first.mode is SamplerV2(mode=device).mode  # one AerBackend per device object
    counts = first.run([circuit], shots=1000).result()[0].data.meas.get_counts()
    assert {"01", "10"} & set(counts)
    with Session(backend=device) as session:
        assert session.backend() == device.name
        assert session.isa_target is not None
        result = SamplerV2(mode=session, options={"simulator": {"seed_simulator": 3}}).run(
            [circuit], shots=1000
        )
        assert result.result()[0].data.meas.get_counts() == counts


# ------------------------------------------------------------------ the V2 hello world on a device


def test_hello_world_estimator_on_least_busy_device():
    service = QiskitRuntimeService()
    backend = service.least_busy(simulator=False, operational=True)
    assert backend.coupling_map is not None and backend.name == "generic_line_5q"
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    isa_circuit = isa(circuit, backend)
    observable = SparsePauliOp("ZZ").apply_layout(isa_circuit.layout)
    estimator = EstimatorV2(
        mode=backend, options={"default_shots": 4000, "simulator": {"seed_simulator": 1}}
    )
    assert estimator.options.default_shots == 4000
    pub = estimator.run([(isa_circuit, observable)]).result()[0]
    assert 0.5 < abs(float(pub.data.evs)) < 1.0  # the device's noise shows
    assert 0 < float(pub.data.stds) < 0.05
    assert service.backend("generic_heavy_hex_19q").num_qubits == 19


# ------------------------------------------------------------------ the ISA check


def test_non_isa_circuit_is_refused_before_queueing(device):
    backend = AerBackend.from_backend(device)
    with pytest.raises(ValueError, match=r"instruction 'h' on qubits \(0,\).*generate_preset"):
        SamplerV2(mode=backend).run([bell()])
    routed = QuantumCircuit(5)
    routed.cx(0, 2)  # cx exists, but not between these qubits of a line
    with pytest.raises(ValueError, match=r"'cx' on qubits \(0, 2\)"):
        EstimatorV2(mode=backend).run([(routed, SparsePauliOp("IIIII"))])
    service_backend = QiskitRuntimeService().backend("generic_line_5q")
    with pytest.raises(ValueError, match="not ISA for backend 'generic_line_5q'"):
        service_backend.run(bell())
    # A handle found by id, as another process would, checks too.
    with Session(backend=service_backend) as session:
        found = Session.from_id(session.session_id)
        with pytest.raises(ValueError, match="not ISA for backend 'generic_line_5q'"):
            SamplerV2(mode=found).run([bell()])


def test_perfect_simulator_accepts_any_circuit_aer_runs(backend):
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.ccx(0, 1, 2)
    qc.cx(0, 2)
    qc.measure_all()
    counts = SamplerV2(mode=backend).run([qc], shots=100).result()[0].data.meas.get_counts()
    assert set(counts) <= {"000", "101"}


# ------------------------------------------------------------------ backend.run and libraries


def test_backend_run_takes_aer_run_options():
    backend = QiskitRuntimeService().backend("generic_line_5q")
    circuit = isa(bell(), backend)
    result = backend.run(
        circuit,
        shots=200,
        meas_level=2,
        meas_return="single",
        memory=True,
        seed_simulator=4,
        init_qubits=True,
    ).result()
    assert sum(result.get_counts().values()) == 200 and len(result.get_memory()) == 200

    plain = QiskitRuntimeService().backend("aer_simulator")
    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1)
    qc.rx(theta, 0)
    qc.measure(0, 0)
    bound = plain.run(qc, shots=50, parameter_binds=[{theta: [0.0, np.pi]}]).result()
    assert [bound.get_counts(i) for i in range(2)] == [{"0": 50}, {"1": 50}]


def test_aer_backend_run_is_aer_simulators_run():
    # BackendV2.run on a bare AerBackend: a Qiskit Result with Aer's counts for the seed.
    device = GenericBackendV2(num_qubits=3, seed=9)
    backend = AerBackend.from_backend(device)
    circuit = isa(bell(), backend)
    job = backend.run(circuit, shots=300, seed_simulator=12, memory=True, meas_level=2)
    result = job.result()
    expected = AerSimulator.from_backend(device).run(circuit, shots=300, seed_simulator=12)
    assert result.get_counts() == expected.result().get_counts()
    assert len(result.get_memory()) == 300 and job.backend() is backend
    assert backend.options.shots == 1024  # Aer's default
    assert sum(AerBackend().run(bell()).result().get_counts().values()) == 1024


@pytest.mark.parametrize(
    ("where", "backend_run"),
    [("service backend", True), ("AerBackend", True), ("AerBackend", False)],
    ids=["service-backend-run", "aer-backend-run", "aer-default-sampler"],
)
def test_qiskit_experiments_t1_runs_to_done_on_a_device(where, backend_run):
    # backend_run=False is qiskit-experiments' default: qiskit-ibm-runtime's SamplerV2
    # (installed with qiskit-experiments) in local mode, which calls backend.run.
    from qiskit_experiments.library import T1

    service_backend = QiskitRuntimeService().backend("generic_line_5q")
    backend = (
        service_backend
        if where == "service backend"
        # The same device as the service's generic_line_5q, simulated by a bare AerBackend.
        else AerBackend.from_backend(
            GenericBackendV2(5, coupling_map=CouplingMap.from_line(5), seed=5)
        )
    )
    t1 = backend.target.qubit_properties[0].t1
    experiment = T1((0,), delays=np.linspace(0, 3 * t1, 12))
    data = experiment.run(backend, backend_run=backend_run, shots=500, seed_simulator=7)
    data.block_for_results(timeout=240)
    assert str(data.status()) == "ExperimentStatus.DONE", data.errors()
    fitted = data.analysis_results("T1", dataframe=True).iloc[0]
    assert fitted.quality == "good"
    assert fitted.value.nominal_value == pytest.approx(t1, rel=0.2)
