"""Provider-style sessions, as in qiskit-ibm-provider's documentation; only the imports changed.

Run: ``python examples/provider_session.py``. Ray starts on first use; the
session id is ``None`` until the first job runs, and that job's id is the
session's id.
"""

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

from raysession import RayProvider  # was: from qiskit_ibm_provider import IBMProvider

qr = QuantumRegister(2, name="qr")
cr = ClassicalRegister(2, name="cr")
qc = QuantumCircuit(qr, cr, name="bell")
qc.h(qr[0])
qc.cx(qr[0], qr[1])
qc.measure(qr, cr)

backend = RayProvider().get_backend("ibmq_qasm_simulator")  # was: IBMProvider().get_backend(...)
backend.open_session(max_time="2h 30m 40s")
job = backend.run(qc)
print(f"Job ID: {job.job_id()}")
print(f"Result: {job.result()}")
print(f"Counts: {job.result().get_counts()}")
backend.cancel_session()

with backend.open_session() as session:
    print(f"Session ID before the first job: {session.session_id}")
    job = backend.run(qc)
    assert job.job_id() == session.session_id
    print(f"Session ID: {session.session_id}")
    print(f"Session counts: {job.result().get_counts()}")

job = backend.run(qc, shots=1000)  # the session is closed: job mode again
print(f"Job mode counts: {job.result().get_counts()}")
