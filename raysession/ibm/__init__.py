"""The compatibility front-ends: code written for qiskit-ibm-runtime (V2 and V1),
qiskit-ibm-provider sessions and IBM's backend names runs here with its imports changed.

No core module imports this package; it builds on the core's public pieces (Session,
the V2 primitives, job handles, AerBackend) and registers its local
:class:`QiskitRuntimeService` as the resolver of backend names given to ``Session``
without ``service=``, and the circuit runner of ``AerBackend.run`` (Qiskit ``Result``
and V1 job are its business).
"""

from ..backends.aer import set_circuit_runner
from ..session import set_default_backend_source
from .primitive_v1 import Estimator, Sampler
from .provider import RayBackend, RayProvider, run_on_aer_backend
from .provider_session import ProviderSession
from .runtime_job import RuntimeJob
from .runtime_options import Options
from .service import QiskitRuntimeService

set_default_backend_source(QiskitRuntimeService)
set_circuit_runner(run_on_aer_backend)

__all__ = [
    "Estimator",
    "Options",
    "ProviderSession",
    "QiskitRuntimeService",
    "RayBackend",
    "RayProvider",
    "RuntimeJob",
    "Sampler",
]
