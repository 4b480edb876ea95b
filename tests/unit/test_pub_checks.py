"""has_measurements: the estimator's warning about measurements it applies."""

from __future__ import annotations

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from raysession._pub_checks import has_measurements


def _bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    return circuit


def test_a_circuit_without_measurements_has_none() -> None:
    assert has_measurements(_bell()) is False


def test_a_measurement_at_the_top_level_is_found() -> None:
    circuit = _bell()
    circuit.measure(1, 1)
    assert has_measurements(circuit) is True


def test_a_measurement_inside_a_control_flow_block_is_found() -> None:
    qubits, clbits = QuantumRegister(2), ClassicalRegister(2)
    circuit = QuantumCircuit(qubits, clbits)
    circuit.h(0)
    with circuit.if_test((clbits[0], 1)):
        circuit.measure(1, 1)
    assert "measure" not in circuit.count_ops()  # only in the block: a walk finds it
    assert has_measurements(circuit) is True


def test_control_flow_without_measurements_has_none() -> None:
    qubits, clbits = QuantumRegister(2), ClassicalRegister(2)
    circuit = QuantumCircuit(qubits, clbits)
    with circuit.if_test((clbits[0], 1)):
        circuit.x(1)
    assert has_measurements(circuit) is False


def test_a_measurement_appended_after_a_first_answer_is_found() -> None:
    circuit = _bell()
    assert has_measurements(circuit) is False
    circuit.measure(0, 0)
    assert has_measurements(circuit) is True
