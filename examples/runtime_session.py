"""Runtime-style sessions, as in qiskit-ibm-runtime's guide "Run a primitive in a session",
with only the imports changed.

Run: ``python examples/runtime_session.py``. Ray starts on first use. Every
session below runs on the same pool of Aer workers: the service starts one
pool per backend name and process.
"""

from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp

# was: from qiskit_ibm_runtime import Estimator, Options, QiskitRuntimeService, Sampler, Session
from raysession import Estimator, Options, QiskitRuntimeService, Sampler, Session

# Open a session, bind primitives to it explicitly.
service = QiskitRuntimeService()
session = Session(service=service, backend="ibmq_qasm_simulator")
estimator = Estimator(session=session)
sampler = Sampler(session=session)
print(f"Session: {session.session_id} on {session.backend()}, status {session.status()!r}")
session.close()

# Or bind the primitives built inside a `with` block.
with Session(service=service, backend="ibmq_qasm_simulator"):
    estimator = Estimator()
    sampler = Sampler()

# A backend object, and max_time as a string.
backend = service.get_backend("ibmq_qasm_simulator")
with Session(backend=backend, max_time="25m") as session:
    print(f"max_time: {session.max_time} s")

# The guide's full example.
circuit = random_circuit(2, 2, seed=1).decompose(reps=1)
observable = SparsePauliOp("IY")

options = Options()
options.optimization_level = 2
options.resilience_level = 2

service = QiskitRuntimeService()
with Session(service=service, backend="ibmq_qasm_simulator") as session:
    estimator = Estimator(options=options)
    job = estimator.run(circuit, observable)
    result = job.result()

print(f">>> Job ID: {job.job_id()}")
print(f">>> Expectation value: {result.values[0]}")
print(f">>> Metadata: {result.metadata[0]}")
print(result.values[0], result.metadata[0])
