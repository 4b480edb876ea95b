"""QiskitRuntimeService: a local, account-free stand-in for qiskit-ibm-runtime's service."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .._admin import (
    find_job,
    gather_jobs,
    list_sessions,
    live_sessions,
    session_actor,
    session_details,
)
from .._courier import deliver
from .._lifecycle import SessionState
from .._messages import JobInfo, SessionDetails
from .._storage import read_job
from ..backends._store import storage_uri
from ..errors import SessionNotFoundError
from ..job import RuntimeJobV2, check_tags, stored_job
from . import _catalog
from .provider import RayBackend, select_backends

__all__ = ["QiskitRuntimeService"]


class QiskitRuntimeService:
    """The backends, sessions and jobs of this Ray cluster, with qiskit-ibm-runtime's API.

    No account and no network are involved. The backends are Aer simulators
    (``"ibmq_qasm_simulator"``, ``"aer_simulator"``, ``"aer_simulator_<method>"``)
    and, when ``qiskit_ibm_runtime.fake_provider`` is importable, its fake
    devices. Every name runs on the Ray cluster's one shared pool of Aer
    workers, which start when jobs need them. Jobs are looked up in the live sessions of the cluster
    (their session actors keep the records); the jobs of a session that ended
    cannot be looked up any more.

    Args:
        channel, token, url, filename, name, instance, proxies, verify, channel_strategy:
            qiskit-ibm-runtime's account arguments; accepted so that account code
            runs unchanged, and ignored.
        default_backend: The backend ``backend()`` and ``Session(service=...)``
            use when none is named. Default: the least busy backend.

    Raises:
        ValueError: ``default_backend`` is not a known name.

    Example:
        >>> service = QiskitRuntimeService()
        >>> with Session(service=service, backend="ibmq_qasm_simulator"):  # doctest: +SKIP
        ...     job = Estimator().run(circuit, observable)
    """

    def __init__(
        self,
        channel: str | None = None,
        token: str | None = None,
        url: str | None = None,
        filename: str | None = None,
        name: str | None = None,
        instance: str | None = None,
        proxies: Any = None,
        verify: bool | None = None,
        channel_strategy: str | None = None,
        *,
        default_backend: str | None = None,
    ) -> None:
        self._default = None if default_backend is None else _catalog.entry(default_backend).name
        self._backends: dict[str, RayBackend] = {}
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_service, (self._default,))

    def __repr__(self) -> str:
        return "<QiskitRuntimeService channel='local'>"

    @property
    def channel(self) -> str:
        """Always ``"local"``: the service is this Ray cluster."""
        return "local"

    # ---------------------------------------------------------------- backends

    def backend(self, name: str | None = None, instance: str | None = None) -> RayBackend:
        """The backend called ``name``; without a name, the default (or least busy) one.

        Raises:
            ValueError: no backend has that name.
        """
        if name is None:
            name = self._default or _catalog.default_name()
        return self._backend(_catalog.entry(name).name)

    def get_backend(self, name: str | None = None, instance: str | None = None) -> RayBackend:
        """The same as :meth:`backend`."""
        return self.backend(name, instance)

    def backends(
        self,
        name: str | None = None,
        min_num_qubits: int | None = None,
        instance: str | None = None,
        filters: Callable[[RayBackend], bool] | None = None,
        *,
        simulator: bool | None = None,
        operational: bool | None = None,
    ) -> list[RayBackend]:
        """The backends matching every criterion given.

        Args:
            name: Only the backend with this name.
            min_num_qubits: Only backends with at least this many qubits.
            instance: Ignored (there are no instances).
            filters: Only backends for which this returns True.
            simulator: Only Aer simulators (True) or only device-like backends (False): the
                generic devices, and qiskit-ibm-runtime's fake devices if it is installed.
            operational: Every backend here is operational; False selects none.

        Raises:
            ValueError: ``name`` is given and no backend has it.
        """
        selected = select_backends(self._backend, name, min_num_qubits, filters)
        if simulator is not None:
            devices = {n for n, e in _catalog.entries().items() if e.device is not None}
            selected = [b for b in selected if (b.name not in devices) == simulator]
        if operational is False:
            selected = []
        return selected

    def least_busy(
        self,
        min_num_qubits: int | None = None,
        instance: str | None = None,
        filters: Callable[[RayBackend], bool] | None = None,
        *,
        simulator: bool | None = None,
        operational: bool | None = None,
    ) -> RayBackend:
        """The matching backend first used in this process (its workers are likely warm),
        else the first matching one.

        Raises:
            ValueError: no backend matches.
        """
        candidates = self.backends(
            min_num_qubits=min_num_qubits,
            filters=filters,
            simulator=simulator,
            operational=operational,
        )
        if not candidates:
            raise ValueError(
                f"No backend matches the criteria. This service has: "
                f"{', '.join(_catalog.entries())}."
            )
        running = _catalog.running_pools()
        return min(
            candidates,
            key=lambda b: running.index(b.name) if b.name in running else len(running),
        )

    def _backend(self, name: str) -> RayBackend:
        with self._lock:
            if name not in self._backends:
                self._backends[name] = RayBackend(name, provider=self)
            return self._backends[name]

    # ---------------------------------------------------------------- jobs

    def sessions(
        self, state: SessionState | str | None = None, *, all_users: bool = True
    ) -> list[SessionDetails]:
        """The sessions (and batches) on the cluster, oldest first: the same records as
        :func:`raysession.list_sessions`, which this calls.

        Use :meth:`Session.from_id` with a record's ``id`` for a handle.

        Args:
            state: Only sessions in this state (``"active"``, ``"closed"``, ...).
            all_users: Every user's sessions (the default), or only this OS user's.

        Raises:
            ValueError: ``state`` is not a session state.
        """
        return list_sessions(state, all_users=all_users)

    def job(self, job_id: str) -> RuntimeJobV2:
        """The job with this id: from the live session that has it, else from storage
        (``RAYSESSION_STORAGE``), where finished jobs are kept after their submitter
        exited and their session ended, until their retention passes.

        Raises:
            SessionNotFoundError: no live session has the job and it is not stored.
        """
        try:
            actor, info = find_job(job_id)
        except SessionNotFoundError as exc:
            stored = read_job(job_id)
            if stored is None:
                raise SessionNotFoundError(
                    f"No live session has job {job_id} and it is not in storage "
                    f"({storage_uri()}). Use service.jobs() to list the jobs of the live "
                    "sessions.",
                    job_id=job_id,
                ) from exc
            return stored_job(stored)
        stored = read_job(job_id) if info.status.is_final else None
        if stored is not None:
            return stored_job(stored, actor, info)
        return _job_handle(actor, info.session_id, info)

    def jobs(
        self,
        limit: int | None = 10,
        skip: int = 0,
        backend_name: str | None = None,
        pending: bool | None = None,
        program_id: str | None = None,
        instance: str | None = None,
        job_tags: list[str] | None = None,
        session_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        descending: bool = True,
    ) -> list[RuntimeJobV2]:
        """Jobs of the live sessions on the cluster, newest first, as qiskit-ibm-runtime's
        ``jobs()`` lists them; every filter given must match.

        Only live sessions keep job records (the last 2,000 of each): the jobs of a
        session that ended are not listed.

        Args:
            limit: Most jobs returned; ``None`` for all.
            skip: Jobs to skip from the start of the order.
            backend_name: Only jobs that ran on this backend.
            pending: Only queued or running jobs (True), or only finished ones (False).
            program_id: Only ``"estimator"`` or only ``"sampler"`` jobs.
            instance: Ignored (there are no instances).
            job_tags: Only jobs that have every one of these tags.
            session_id: Only the jobs of this session.
            created_after: Only jobs created at or after this time (naive: local time).
            created_before: Only jobs created at or before this time (naive: local time).
            descending: Newest first (True) or oldest first (False).

        Raises:
            TypeError: ``job_tags`` is not a list of strings.
            SessionNotFoundError: ``session_id`` is not a live session.
        """
        wanted_tags = set(check_tags(job_tags)) if job_tags is not None else set()
        after = None if created_after is None else created_after.timestamp()
        before = None if created_before is None else created_before.timestamp()
        if session_id is not None:
            actor = session_actor(session_id)
            sessions = [(actor, session_details(session_id))]
        else:
            sessions = live_sessions()

        def matches(info: JobInfo) -> bool:
            created = info.metrics.created
            return (
                (pending is None or pending != info.status.is_final)
                and (program_id is None or info.primitive_id == program_id)
                and wanted_tags <= set(info.tags)
                and (after is None or created >= after)
                and (before is None or created <= before)
            )

        wanted = [
            actor
            for actor, details in sessions
            if backend_name is None or details.backend_name == backend_name
        ]
        found: list[tuple[Any, str, JobInfo]] = []
        for actor, infos in gather_jobs(wanted):
            found += [(actor, info.session_id, info) for info in infos if matches(info)]
        # The sequence breaks ties between jobs of one session accepted in the same instant.
        found.sort(
            key=lambda item: (item[2].metrics.created, item[2].metrics.sequence),
            reverse=descending,
        )
        stop = None if limit is None else skip + limit
        return [_job_handle(actor, sid, info) for actor, sid, info in found[skip:stop]]


def _service(default_backend: str | None) -> QiskitRuntimeService:
    return QiskitRuntimeService(default_backend=default_backend)


def _job_handle(actor: Any, session_id: str, info: JobInfo) -> RuntimeJobV2:
    """A handle of a job already in a session; its result comes through the courier."""
    return RuntimeJobV2(
        deliver(session_id, info.job_id),
        job_id=info.job_id,
        session_id=session_id,
        actor=actor,
        created=info.metrics.created,
        tags=info.tags,
    )
