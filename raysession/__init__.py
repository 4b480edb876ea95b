"""raysession: Qiskit Runtime sessions, batches and V2 primitives on Ray, with Aer simulating."""

from ._lifecycle import SessionState
from ._messages import JobAttempt, JobInfo, JobMetrics, JobStatus, SessionDetails, SessionOwner
from ._storage import CleanupReport, cleanup_storage
from .backends import AerBackend, PoolStatus, WorkerStatus, pool_status, shutdown_pool
from .errors import (
    BackendUnavailableError,
    ExecutionTimeoutError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    QueueFullError,
    RaySessionError,
    RaySessionWarning,
    ResultUnavailableError,
    SessionClosedError,
    SessionExpiredError,
    SessionNotFoundError,
    WorkerLostError,
)
from .estimator import EstimatorV2

# The compatibility front-ends last: they build on the core above.
from .ibm import (
    Estimator,
    Options,
    ProviderSession,
    QiskitRuntimeService,
    RayBackend,
    RayProvider,
    RuntimeJob,
    Sampler,
)
from .job import RuntimeJobV2
from .options import EstimatorOptions, SamplerOptions, SessionLimits
from .sampler import SamplerV2
from .session import Batch, Session, close_all_sessions, current_session, list_sessions

__version__ = "0.1.0"

__all__ = [
    "AerBackend",
    "BackendUnavailableError",
    "Batch",
    "CleanupReport",
    "Estimator",
    "EstimatorOptions",
    "EstimatorV2",
    "ExecutionTimeoutError",
    "JobAttempt",
    "JobCancelledError",
    "JobFailedError",
    "JobInfo",
    "JobMetrics",
    "JobStatus",
    "JobTimeoutError",
    "Options",
    "PoolStatus",
    "ProviderSession",
    "QiskitRuntimeService",
    "QueueFullError",
    "RayBackend",
    "RayProvider",
    "RaySessionError",
    "RaySessionWarning",
    "ResultUnavailableError",
    "RuntimeJob",
    "RuntimeJobV2",
    "Sampler",
    "SamplerOptions",
    "SamplerV2",
    "Session",
    "SessionClosedError",
    "SessionDetails",
    "SessionExpiredError",
    "SessionLimits",
    "SessionNotFoundError",
    "SessionOwner",
    "SessionState",
    "WorkerLostError",
    "WorkerStatus",
    "cleanup_storage",
    "close_all_sessions",
    "current_session",
    "list_sessions",
    "pool_status",
    "shutdown_pool",
]
