"""Issue 10, the bad-input catalogue: every bad input fails fast in the caller, at
construction or ``run()``, with an error naming the problem and the fix; nothing is
queued, and the same session then runs a good job correctly."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import ray
from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.circuit import Gate, Parameter
from qiskit.quantum_info import SparsePauliOp

from raysession import AerBackend, EstimatorV2, SamplerV2, Session
from raysession.errors import (
    RaySessionWarning,
    ResultUnavailableError,
    SessionClosedError,
    SessionExpiredError,
    SessionNotFoundError,
)
from tests.conftest import wait_for
from tests.helpers import bell, entered, gated, new_gate

EXACT = {"default_precision": 0.0}
NAN, INF = math.nan, math.inf
ESTIMATOR_FIX = r"An estimator PUB is \(circuit, observables"
SAMPLER_FIX = r"A sampler PUB is a circuit or \(circuit"


def rx_circuit() -> QuantumCircuit:
    """Two qubits, one parameter."""
    qc = QuantumCircuit(2)
    qc.rx(Parameter("a"), 0)
    qc.cx(0, 1)
    return qc


def two_parameters() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.rx(Parameter("a"), 0)
    qc.ry(Parameter("b"), 1)
    return qc


def wide(num_qubits: int, clifford: bool = False) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits)
    qc.h(0)
    if not clifford:
        qc.t(0)
    for q in range(1, num_qubits):
        qc.cx(0, q)
    return qc


def undefined_gate(in_control_flow: bool = False) -> QuantumCircuit:
    qc = QuantumCircuit(2, 1)
    if in_control_flow:
        with qc.if_test((qc.clbits[0], 1)):
            qc.append(Gate("mygate", 1, []), [0])
    else:
        qc.append(Gate("mygate", 1, []), [0])
    return qc


def _evs(job: Any) -> np.ndarray:
    return job.result(timeout=120)[0].data.evs


@dataclass(frozen=True)
class Case:
    id: str
    act: Callable[[Session, AerBackend], object]
    error: type[BaseException]
    match: str

    def __str__(self) -> str:
        return self.id


def est(session: Session, **options: Any) -> EstimatorV2:
    return EstimatorV2(mode=session, options={**EXACT, **options})


def smp(session: Session, **options: Any) -> SamplerV2:
    return SamplerV2(mode=session, options=options or None)


def _done_job(session: Session) -> Any:
    job = est(session).run([(bell(False), "ZZ")])
    job.result(timeout=120)
    return job


CASES = [
    # ---------------------------------------------------------- PUB shapes and values
    Case(
        "estimator-pub-too-short",
        lambda s, b: est(s).run([(bell(False),)]),
        ValueError,
        rf"PUB 0 is invalid: The length of pub must be 2, 3 or 4, but length 1.*{ESTIMATOR_FIX}",
    ),
    Case(
        "estimator-pub-too-long",
        lambda s, b: est(s).run([(bell(False), "ZZ", None, 0.0, 5)]),
        ValueError,
        rf"PUB 0 is invalid: .*but length 5 is given.*{ESTIMATOR_FIX}",
    ),
    Case(
        "estimator-no-pubs",
        lambda s, b: est(s).run([]),
        ValueError,
        r"needs at least one PUB; pass a list of PUBs",
    ),
    Case(
        "sampler-no-pubs",
        lambda s, b: smp(s).run([]),
        ValueError,
        r"needs at least one PUB; pass a list of PUBs",
    ),
    Case(
        "missing-parameter-values",
        lambda s, b: est(s).run([(rx_circuit(), "ZZ")]),
        ValueError,
        rf"PUB 0 is invalid: The number of values \(0\) does not match .*{ESTIMATOR_FIX}",
    ),
    Case(
        "too-many-parameter-values",
        lambda s, b: est(s).run([(bell(False), "ZZ"), (two_parameters(), "ZZ", [[0.1, 0.2, 0.3]])]),
        ValueError,
        rf"PUB 1 is invalid: Length of \('a', 'b'\) inconsistent with last dimension .*"
        rf"{ESTIMATOR_FIX}",
    ),
    Case(
        "values-for-a-circuit-without-parameters",
        lambda s, b: est(s).run([(bell(False), "ZZ", [1.0])]),
        ValueError,
        rf"PUB 0 is invalid: Length of \(\) inconsistent .*{ESTIMATOR_FIX}",
    ),
    Case(
        "observables-and-values-do-not-broadcast",
        lambda s, b: est(s).run([(rx_circuit(), ["ZZ", "XX", "YY"], np.zeros((2, 1)))]),
        ValueError,
        rf"PUB 0 is invalid: .*not broadcastable.*{ESTIMATOR_FIX}",
    ),
    Case(
        "sampler-wrong-parameter-count",
        lambda s, b: smp(s).run([(two_parameters().measure_all(inplace=False), [0.1, 0.2, 0.3])]),
        ValueError,
        rf"PUB 0 is invalid: Length of \('a', 'b'\) inconsistent .*{SAMPLER_FIX}",
    ),
    Case(
        "sampler-pub-not-a-circuit",
        lambda s, b: smp(s).run([("not a circuit", None, 10)]),
        TypeError,
        rf"PUB 0 is invalid: circuit must be QuantumCircuit.*{SAMPLER_FIX}",
    ),
    Case(
        "nan-parameter-value",
        lambda s, b: est(s).run([(rx_circuit(), "ZZ", [NAN])]),
        ValueError,
        r"PUB 0 has a parameter value that is NaN or infinite; parameter values must be finite",
    ),
    Case(
        "inf-parameter-value-in-second-pub",
        lambda s, b: est(s).run(
            [(rx_circuit(), "ZZ", [0.1]), (rx_circuit(), "ZZ", [[0.1], [INF]])]
        ),
        ValueError,
        r"PUB 1 has a parameter value that is NaN or infinite; parameter values must be finite",
    ),
    Case(
        "sampler-nan-parameter-value",
        lambda s, b: smp(s).run([(rx_circuit().measure_all(inplace=False), [NAN])]),
        ValueError,
        r"PUB 0 has a parameter value that is NaN .* must be finite",
    ),
    # ---------------------------------------------------------------- precision
    Case(
        "nan-precision-at-run",
        lambda s, b: est(s).run([(bell(False), "ZZ")], precision=NAN),
        ValueError,
        r"PUB 0 has precision=nan; precision must be a finite number >= 0",
    ),
    Case(
        "inf-precision-at-run",
        lambda s, b: est(s).run([(bell(False), "ZZ")], precision=INF),
        ValueError,
        r"PUB 0 has precision=inf; precision must be a finite number >= 0",
    ),
    Case(
        "negative-precision-at-run",
        lambda s, b: est(s).run([(bell(False), "ZZ")], precision=-0.1),
        ValueError,
        rf"PUB 0 is invalid: precision must be non-negative.*{ESTIMATOR_FIX}",
    ),
    Case(
        "nan-precision-in-a-pub",
        lambda s, b: est(s).run([(bell(False), "ZZ", None, NAN)]),
        ValueError,
        r"PUB 0 has precision=nan; precision must be a finite number >= 0",
    ),
    Case(
        "nan-default-precision-option",
        lambda s, b: est(s, default_precision=NAN),
        ValidationError,
        r"default_precision[\s\S]*(finite|greater than or equal to 0)",
    ),
    Case(
        "inf-default-precision-option",
        lambda s, b: est(s, default_precision=INF),
        ValidationError,
        r"default_precision[\s\S]*finite number",
    ),
    # ---------------------------------------------------------------- observables
    Case(
        "observable-on-more-qubits-than-the-circuit",
        lambda s, b: est(s).run([(bell(False), "ZZZ")]),
        ValueError,
        rf"PUB 0 is invalid: The number of qubits of the circuit \(2\) does not match .*"
        rf"{ESTIMATOR_FIX}",
    ),
    Case(
        "non-hermitian-observable",
        lambda s, b: est(s).run([(bell(False), SparsePauliOp(["ZZ"], [1j]))]),
        ValueError,
        r"PUB 0 is invalid: Non-Hermitian input observable.*real coefficients \(Hermitian\)",
    ),
    Case(
        "unknown-pauli-label",
        lambda s, b: est(s).run([(bell(False), "QQ")]),
        ValueError,
        rf"PUB 0 is invalid: labels must only contain letters .*{ESTIMATOR_FIX}",
    ),
    # ---------------------------------------------------------------- shots
    Case(
        "zero-shots-at-run",
        lambda s, b: smp(s).run([bell()], shots=0),
        ValueError,
        r"PUB 0 is invalid: shots must be positive.*shots is a positive int",
    ),
    Case(
        "negative-shots-at-run",
        lambda s, b: smp(s).run([bell()], shots=-5),
        ValueError,
        r"PUB 0 is invalid: shots must be positive.*shots is a positive int",
    ),
    Case(
        "non-integer-shots-at-run",
        lambda s, b: smp(s).run([bell()], shots=1.5),
        TypeError,
        r"PUB 0 is invalid: shots must be an integer.*shots is a positive int",
    ),
    Case(
        "zero-shots-in-a-pub",
        lambda s, b: smp(s).run([(bell(), None, 0)]),
        ValueError,
        rf"PUB 0 is invalid: shots must be positive.*{SAMPLER_FIX}",
    ),
    Case(
        "zero-default-shots-option",
        lambda s, b: smp(s, default_shots=0),
        ValidationError,
        r"default_shots[\s\S]*greater than 0",
    ),
    # ---------------------------------------------------------------- what a worker can run
    Case(
        "40-qubit-statevector-circuit",
        lambda s, b: est(s).run([(wide(40), "Z" * 40)]),
        ValueError,
        r"40 qubits: its statevector state needs 1\.76e\+13 bytes, more than .* Use fewer "
        r'qubits, or method="matrix_product_state"',
    ),
    Case(
        "26-qubit-density-matrix-circuit",
        lambda s, b: est(s, raysession={"backend_options": {"method": "density_matrix"}}).run(
            [(wide(26, clifford=True), "Z" * 26)]
        ),
        ValueError,
        r"26 qubits: its density_matrix state needs .* bytes.*Use fewer qubits",
    ),
    Case(
        "statevector-over-max-memory-mb",
        lambda s, b: est(s, raysession={"backend_options": {"max_memory_mb": 1}}).run(
            [(wide(20), "Z" * 20)]
        ),
        ValueError,
        r"20 qubits: its statevector state needs 1\.68e\+07 bytes, more than the 1\.05e\+06 "
        r"bytes .*matrix_product_state",
    ),
    Case(
        "gate-without-definition",
        lambda s, b: est(s).run([(undefined_gate(), "ZZ")]),
        ValueError,
        r"gate 'mygate', which Aer cannot run and which has no definition; define it .* or "
        r"transpile",
    ),
    Case(
        "gate-without-definition-in-control-flow",
        lambda s, b: smp(s).run([undefined_gate(in_control_flow=True)]),
        ValueError,
        r"gate 'mygate', which Aer cannot run .*define it .* or transpile",
    ),
    # ---------------------------------------------------------------- options and mode
    Case(
        "mistyped-option-name",
        lambda s, b: est(s, defualt_precision=0.1),
        ValidationError,
        r"has no option 'defualt_precision'; valid options: .*default_precision",
    ),
    Case(
        "unknown-nested-option",
        lambda s, b: est(s, simulator={"seed_simulatr": 1}),
        ValidationError,
        r"seed_simulatr.*valid options: .*seed_simulator",
    ),
    Case(
        "option-of-the-wrong-type",
        lambda s, b: smp(s, default_shots="many"),
        ValidationError,
        r"default_shots[\s\S]*valid integer",
    ),
    Case(
        "max-execution-time-at-max-time",
        lambda s, b: est(s, max_execution_time=s.max_time).run([(bell(False), "ZZ")]),
        ValueError,
        r"max_execution_time=.* must be smaller than the session's max_time",
    ),
    Case(
        "mode-of-the-wrong-type",
        lambda s, b: EstimatorV2(mode=42),
        ValueError,
        r"mode=42\) is not accepted: mode must be a raysession Session",
    ),
    Case(
        "mode-a-session-id-string",
        lambda s, b: SamplerV2(mode=s.session_id),  # from_id(...) gives the handle
        ValueError,
        r"is not accepted: mode must be a raysession Session",
    ),
    # ---------------------------------------------------------------- durations
    Case(
        "max-time-repeated-unit",
        lambda s, b: Session(backend=b, max_time="1h 1h"),
        ValueError,
        r"max_time='1h 1h' gives unit 'h' more than once; give each unit at most once",
    ),
    Case(
        "max-time-unknown-unit",
        lambda s, b: Session(backend=b, max_time="2x"),
        ValueError,
        r"max_time='2x' is not a duration; use an int number of seconds, or .* units d, h, m, s",
    ),
    Case(
        "max-time-fractional",
        lambda s, b: Session(backend=b, max_time="1.5h"),
        ValueError,
        r"is not a duration; use an int number of seconds",
    ),
    Case(
        "max-time-zero",
        lambda s, b: Session(backend=b, max_time=0),
        ValueError,
        r"max_time=0 must be greater than zero",
    ),
    Case(
        "max-time-above-the-bound",
        lambda s, b: Session(backend=b, max_time="10d"),
        ValueError,
        r"outside the allowed range .*RAYSESSION_MAX_MAX_TIME",
    ),
    Case(
        "interactive-timeout-zero",
        lambda s, b: Session(backend=b, interactive_timeout=0),
        ValueError,
        r"interactive_timeout must be a positive number of seconds",
    ),
    # ---------------------------------------------------------------- ids and jobs
    Case(
        "unknown-session-id",
        lambda s, b: Session.from_id("0" * 32),
        SessionNotFoundError,
        r"No live session has id 0{32}.*list_sessions\(\)",
    ),
    Case(
        "malformed-session-id",
        lambda s, b: Session.from_id("not an id/!"),
        SessionNotFoundError,
        r"No live session has id not an id/!.*list_sessions\(\)",
    ),
    Case(
        "result-negative-timeout",
        lambda s, b: _done_job(s).result(timeout=-1),
        ValueError,
        r"timeout must be >= 0 or None, not -1; give the seconds to wait",
    ),
    Case(
        "wait-negative-timeout",
        lambda s, b: _done_job(s).wait_for_final_state(timeout=-0.5),
        ValueError,
        r"timeout must be >= 0 or None, not -0\.5",
    ),
]


@pytest.fixture(scope="module")
def session(backend):
    with Session(backend=backend) as session:
        yield session


def _runs_a_good_job(session: Session) -> None:
    assert _evs(est(session).run([(bell(False), "ZZ")])) == pytest.approx(1.0, abs=0)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_bad_input_fails_in_the_caller_and_the_session_goes_on(session, backend, case):
    jobs_before = session.job_ids()
    with pytest.raises(case.error, match=case.match):
        case.act(session, backend)
    # Nothing was queued for the bad input (a case that makes a good job first queues
    # exactly that one).
    grown = len(session.job_ids()) - len(jobs_before)
    assert grown == (1 if case.id.endswith("negative-timeout") else 0)
    assert session.active
    _runs_a_good_job(session)


def test_the_catalogue_has_at_least_40_distinct_kinds():
    assert len({case.id for case in CASES}) == len(CASES) >= 40


def test_an_estimator_circuit_with_measurements_warns_that_they_are_applied(session):
    with pytest.warns(RaySessionWarning, match=r"PUB 0's circuit has measurements: .* remove"):
        job = est(session).run([(bell(True), ["ZZ", "XX"])])
    # As in qiskit_aer.primitives.EstimatorV2, the measurement collapses the Bell state.
    np.testing.assert_allclose(_evs(job), [1.0, 0.0], atol=1e-12)
    _runs_a_good_job(session)


def test_large_stabilizer_and_mps_circuits_are_not_refused(session):
    job = est(session).run([(wide(40, clifford=True), "Z" * 40)])  # automatic: stabilizer
    assert _evs(job) == pytest.approx(1.0)
    mps = est(session, raysession={"backend_options": {"method": "matrix_product_state"}})
    assert _evs(mps.run([(wide(40), "Z" * 40)])) == pytest.approx(1.0)


def test_cancelling_a_finished_job_returns_false(session):
    job = _done_job(session)
    assert job.cancel() is False
    assert job.status() == "DONE"
    _runs_a_good_job(session)


@pytest.mark.parametrize("end", ["close", "cancel"])
def test_submitting_to_a_closed_or_cancelled_session_is_refused(backend, end):
    ended = Session(backend=backend)
    _runs_a_good_job(ended)
    getattr(ended, end)()
    jobs = ended.job_ids()
    with pytest.raises(SessionClosedError, match=r"is closed; create a new Session"):
        est(ended).run([(bell(False), "ZZ")])
    assert ended.job_ids() == jobs


def test_submitting_to_an_expired_session_is_refused(backend):
    gate, name = new_gate()
    expiring = Session(backend=backend, max_time=1)
    held = est(expiring, raysession={"circuit_cache": False}).run(
        [(gated(bell(False), name), "ZZ")]
    )
    wait_for(lambda: entered(gate) == 1)
    wait_for(lambda: expiring.details().state == "expired", timeout=60)
    with pytest.raises(
        SessionExpiredError, match=r"expired \(max_time 1 s\); create a new Session"
    ):
        est(expiring).run([(bell(False), "ZZ")])
    gate.allow.remote(1)
    held.result(timeout=120)  # the running job completes


def test_a_handle_whose_session_is_gone(backend):
    gone = Session(backend=backend)
    job = est(gone).run([(bell(False), "ZZ")])
    assert _evs(job) == pytest.approx(1.0)
    session_id = gone.session_id
    gone.close()
    wait_for(lambda: session_id not in [s.id for s in __import__("raysession").list_sessions()])
    with pytest.raises(SessionClosedError, match=r"is closed; create a new Session"):
        est(gone).run([(bell(False), "ZZ")])
    # What it stored answers for it: its details, its jobs, their records.
    stored = Session.from_id(session_id)
    assert stored.details().state == "closed" and stored.job_ids() == [job.job_id()]
    with pytest.raises(SessionClosedError, match=r"is closed; create a new Session"):
        est(stored).run([(bell(False), "ZZ")])
    assert gone.job_info(job.job_id()).status == "DONE"
    with pytest.raises(SessionNotFoundError, match=r"has ended and job no-such-job is not"):
        gone.job_info("no-such-job")
    assert job.cancel() is False
    assert _evs(job) == pytest.approx(1.0)  # the submitter owns its result


# Last: it ends this module's Ray connection (the module fixture shuts the new one down).
def test_a_handle_from_an_earlier_ray_connection(backend, session):
    job = _done_job(session)
    ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    with pytest.raises(ResultUnavailableError, match=r"earlier Ray connection"):
        job.result()
    assert job.cancel() is False
    session.close()  # its session ended with the connection: nothing to do, no error
    fresh = Session(backend=backend)
    _runs_a_good_job(fresh)
    fresh.close()
