"""Circuit keys: a circuit object is pickled once, and again whenever it was edited."""

from __future__ import annotations

import pickle

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2

from raysession._submit import circuit_key


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    return qc


def test_the_same_unchanged_circuit_reuses_its_pickled_bytes():
    circuit = efficient_su2(6, reps=1)
    key, data = circuit_key(circuit)
    again_key, again_data = circuit_key(circuit)
    assert again_key == key and again_data is data  # the very bytes: not pickled again
    assert pickle.loads(data) == circuit


def test_appending_a_gate_in_place_gives_a_new_key_and_the_edited_bytes():
    circuit = bell()
    key, _ = circuit_key(circuit)
    circuit.x(1)
    new_key, data = circuit_key(circuit)
    assert new_key != key
    assert pickle.loads(data) == circuit


def test_assigning_parameters_in_place_and_changing_the_phase_give_new_keys():
    theta = Parameter("theta")
    circuit = QuantumCircuit(1)
    circuit.rx(theta, 0)
    keys = {circuit_key(circuit)[0]}
    circuit.assign_parameters({theta: 0.5}, inplace=True)
    keys.add(circuit_key(circuit)[0])
    circuit.global_phase = 0.25
    keys.add(circuit_key(circuit)[0])
    assert len(keys) == 3
    assert pickle.loads(circuit_key(circuit)[1]) == circuit


def test_a_new_object_at_a_recycled_address_is_not_taken_for_the_old_one():
    first = bell()
    key, _ = circuit_key(first)
    del first
    other = bell()
    other.x(0)
    # Whatever id() the new circuit has, its key is its own content's.
    assert circuit_key(other)[0] != key
    assert pickle.loads(circuit_key(other)[1]) == other
