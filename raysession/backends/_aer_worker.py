"""AerWorker: a pool worker; simulators per Aer option set, circuits by key, one chunk at a time."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from qiskit import QuantumCircuit
from qiskit.primitives import PrimitiveResult, PubResult
from ray.exceptions import RayError

from .._metrics import circuit_cache
from ..errors import ExecutionTimeoutError, JobFailedError
from ._aer_exec import AerExecutor
from ._blob import as_blob
from ._lanes import MOVE, LaneJob, LaneReport, Lanes
from ._partition import Kind, PubSpec, chunk_seed, join, whole_job
from ._store import write_chunk
from ._streaks import StreakJob, StreakReport, StreakRun, Streaks, StreakTerms

DEFAULT_CACHE_BYTES = 256 * 2**20
# Simulators (one per Aer option set) a worker keeps; a noise model is a few MB at most.
_SIMULATORS = 16


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk of one job, as sent to a worker."""

    kind: Kind
    pubs: list[PubSpec]
    seed: int
    run_options: dict[str, Any]
    job_id: str
    chunk_index: int
    sim_key: str
    """Content key of the pickled Aer options the chunk runs with."""
    sim_options: bytes | None = None
    """The pickled Aer options, sent when the caller has not sent them to this worker yet."""
    circuits: dict[str, bytes] = field(default_factory=dict)
    """Circuit key -> pickled circuit, for the keys this worker was not sent before
    (every key when ``use_cache`` is false); other keys are looked up by key."""
    use_cache: bool = True
    """False: unpickle the circuits of this request, bypassing the cache."""
    deadline: float | None = None
    """UNIX time after which the chunk is not started (the job ran out of time)."""
    whole: bool = False
    """The chunk is the whole job: the worker returns the job's ``PrimitiveResult``."""
    storage: str | None = None
    """Where to store the chunk's result as well (see :mod:`._store`), or ``None``."""
    ahead: bool = False
    """A granted job's chunk sent ahead of its admission (see :meth:`AerWorker.run_granted`)."""

    @property
    def grant_key(self) -> str:
        """What the session's verdict on a granted job's chunk names (see :func:`grant_key`)."""
        return grant_key(self.job_id, self.ahead)

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)  # see ._blob: Ray's cloudpickle is slow on Qiskit's containers


@dataclass(frozen=True)
class ChunkDone:
    """The small first return of :meth:`AerWorker.run_chunk`: whether the chunk ran.

    The caller awaits this and never the (possibly large) result to learn that a
    chunk finished; it is also how the chunk's seed, worker and seconds reach the job's
    metrics (the results carry exactly Aer's metadata, nothing of raysession's).
    ``missing`` lists the keys (circuits or Aer options) the worker does not hold; the
    chunk did not run and must be sent again with their bytes.
    """

    worker_id: str
    missing: tuple[str, ...] = ()
    execution_s: float = 0.0
    """Seconds the chunk ran on the worker."""
    chunk_index: int = 0
    seed: int = 0
    """The seed the chunk ran with."""
    refused: bool = False
    """A granted job that never reached the worker (its submitter did not send it)."""
    place: str = ""
    """Where storage holds the chunk's result, if not in its chunk file (see ``._store``)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)  # see ._blob


def whole_request(
    spec: Any, sim_key: str, sim_options: bytes | None = None, *, ahead: bool = False
) -> ChunkRequest:
    """A whole job (a one-chunk ``JobSpec``) as its one chunk, to run with the Aer options
    of ``sim_key`` (sent as ``sim_options``, if given); every circuit travels with it."""
    return ChunkRequest(
        kind=spec.kind,
        pubs=list(spec.pubs),
        seed=chunk_seed(spec.seed, 0, 1),
        run_options=spec.run_options,
        job_id=spec.job_id,
        chunk_index=0,
        sim_key=sim_key,
        sim_options=sim_options,
        circuits=spec.circuits,
        use_cache=spec.circuit_cache,
        whole=True,
        storage=spec.storage,
        ahead=ahead,
    )


def grant_key(job_id: str, ahead: bool) -> str:
    """The name of a granted job at its worker: a chunk sent ahead of its admission has
    its own, so a refusal never meets the same job sent again once granted."""
    return f"{job_id}/ahead" if ahead else job_id


class KeysMissingError(RayError):
    """A granted job's worker lacks an Aer option set it was not sent: the session runs
    the job again through its backend (a Ray error: the job's own code did not fail)."""


class GrantLapsedError(RayError):
    """A granted job's chunk and its session's verdict did not meet at the worker in
    time (see :class:`_Granted`); the session runs the job again through its backend."""


Store = Callable[[], str]
"""A chunk result's write to storage, made later by another thread; returns its place."""

# How long a granted job's chunk waits at its worker for the session's verdict, and the
# session's verdict for the chunk. The verdict comes as the session actor handles the
# submit, within milliseconds; the chunk when the submitter sends it. These bound the
# waits when one never comes (the actor died for good; the submitter exited).
VERDICT_WAIT_S = 10.0
ARRIVAL_WAIT_S = 30.0
# How long an unclaimed verdict or outcome is kept.
_KEEP_S = 60.0
_RUN, _REFUSE, _LAPSED = "run", "refuse", "lapsed"


class _Granted:
    """Granted jobs at one worker: the session actor's verdict on each (run it here, with
    a deadline, or not), whether its chunk started, and how it ended.

    A granted job's chunk comes from its submitter and the verdict from the session
    actor, in either order; whichever comes first waits for the other, for a bounded
    time. A chunk sent ahead of its admission may be refused. The first verdict for a
    job wins. If the two miss each other, the job *lapses* on both sides: the chunk
    raises :class:`GrantLapsedError` and the verdict's follower hears ``refused``."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._verdicts: dict[str, tuple[str, float | None, float]] = {}
        self._started: set[str] = set()
        self._outcomes: dict[str, tuple[ChunkDone | BaseException, Store | None, float]] = {}

    def give(self, job_id: str, verdict: str, deadline: float | None = None) -> None:
        now = time.monotonic()
        with self._changed:
            self._verdicts.setdefault(job_id, (verdict, deadline, now))
            _drop_old(self._verdicts, now, 2)
            self._changed.notify_all()

    def take(self, job_id: str) -> tuple[bool, float | None]:
        """The chunk's side: (run it?, its deadline); (False, None): refused.

        Raises:
            GrantLapsedError: no verdict came in time, or the follower gave up.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: job_id in self._verdicts, VERDICT_WAIT_S):
                self._verdicts[job_id] = (_LAPSED, None, time.monotonic())
            verdict, deadline, _ = self._verdicts[job_id]
            if verdict != _LAPSED:
                del self._verdicts[job_id]
            if verdict == _RUN:
                self._started.add(job_id)
                self._changed.notify_all()
        if verdict == _LAPSED:
            raise GrantLapsedError(f"job {job_id}: its grant lapsed at the worker")
        return verdict == _RUN, deadline

    def ended(
        self, job_id: str, outcome: ChunkDone | BaseException, store: Store | None = None
    ) -> None:
        """The chunk ran: how it ended, and the write of its result its follower makes."""
        now = time.monotonic()
        with self._changed:
            self._outcomes[job_id] = (outcome, store, now)
            _drop_old(self._outcomes, now, 2)
            self._changed.notify_all()

    def follow(
        self, job_id: str, deadline: float | None
    ) -> tuple[ChunkDone | BaseException, Store | None]:
        """Give the verdict "run", then wait for the chunk's outcome; a ``refused``
        record if the job lapsed (its chunk gave up waiting, or did not come within
        ``ARRIVAL_WAIT_S``)."""
        with self._changed:
            self._verdicts.setdefault(job_id, (_RUN, deadline, time.monotonic()))
            self._changed.notify_all()
            if (
                not self._changed.wait_for(
                    lambda: (
                        job_id in self._started
                        or job_id not in self._verdicts
                        or self._verdicts[job_id][0] == _LAPSED
                    ),
                    ARRIVAL_WAIT_S,
                )
                or job_id not in self._started
            ):
                self._verdicts[job_id] = (_LAPSED, None, time.monotonic())
                return ChunkDone("", refused=True), None
            self._changed.wait_for(lambda: job_id in self._outcomes)
            self._started.discard(job_id)
            outcome, store, _ = self._outcomes.pop(job_id)
            return outcome, store


def _drop_old(entries: dict[str, Any], now: float, at: int) -> None:
    """Drop the entries older than ``_KEEP_S`` (their ``at`` item is when they came)."""
    for key in [k for k, v in entries.items() if now - v[at] > _KEEP_S]:
        del entries[key]


class AerWorker:
    """Runs chunks on Aer simulators, with the simulators and circuits it has seen cached.

    Owns: one :class:`AerExecutor` per Aer option set (by content key, LRU) and an LRU
    cache of unpickled circuits by content key, bounded by their pickled size. A
    circuit or option set travels with the first chunk that needs it and is named by
    key afterwards; a worker that does not hold a key answers with the keys it lacks
    (:class:`ChunkDone`) instead of running, and the caller resends them, so nothing
    is lost when a worker is replaced or evicts an entry.

    Concurrency: a threaded actor. Chunks run one at a time (a lock): those of the
    default group, and a streak's jobs (:meth:`run_streak`, group ``"streak"``, whose
    threads may also wait for a job submitted to its session from here). Granted jobs
    (:meth:`run_granted`) wait in the default group for the session's verdict, which
    :meth:`follow` and :meth:`refuse` give in groups ``"follow"`` and ``"grant"``;
    :meth:`streak_report` answers in ``"follow"``. :meth:`watch` parks a thread in group
    ``"watch"`` so the pool learns at once when the process dies, and
    :meth:`cache_info` answers in group ``"info"`` while a chunk runs.
    Aer uses ``num_cpus`` OpenMP threads (``max_parallel_threads``), whatever Ray's
    accounting says. Called by: the pool (start, watch) and by the backend code that
    leased the worker (chunks, joins).

    Its numbers are exactly those of ``qiskit_aer.primitives`` run with the chunk's seed.
    """

    def __init__(
        self, worker_id: str, num_cpus: float, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        self._id = worker_id
        self._threads = max(1, int(num_cpus))
        self._executors: collections.OrderedDict[str, AerExecutor] = collections.OrderedDict()
        self._cache: collections.OrderedDict[str, tuple[QuantumCircuit, int]] = (
            collections.OrderedDict()
        )
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._misses = 0
        self._simulator_builds = 0
        self._stopped = threading.Event()
        self._granted = _Granted()
        self._streaks = Streaks()
        self._lanes = Lanes()
        self._runner: concurrent.futures.ThreadPoolExecutor | None = None
        self._runner_lock = threading.Lock()
        # Chunks run one at a time: those of the default group, and jobs of a streak.
        self._one_at_a_time = threading.Lock()

    def worker_id(self) -> str:
        """This worker's id (its Ray actor name); answers once the worker has started."""
        return self._id

    @ray.method(concurrency_group="watch")  # type: ignore[misc]
    def watch(self) -> None:
        """Never returns while the worker lives: the pool awaits it to learn of its death."""
        self._stopped.wait()

    @ray.method(concurrency_group="info")  # type: ignore[misc]
    def cache_info(self) -> dict[str, int]:
        """Circuits cached, their pickled bytes, circuits unpickled since start (misses),
        simulators held and simulators built since start (one per Aer option set received).

        Answered in its own thread, so a busy worker answers at once (the counts are read
        without a lock: a moment old at worst)."""
        return {
            "circuits": len(self._cache),
            "bytes": self._cache_bytes,
            "misses": self._misses,
            "simulators": len(self._executors),
            "simulator_builds": self._simulator_builds,
        }

    @ray.method(concurrency_group="grant")  # type: ignore[misc]
    def refuse(self, key: str) -> None:
        """The session did not grant this worker to a job sent here ahead of its
        admission (``key``, see :func:`grant_key`): return it unrun."""
        self._granted.give(key, _REFUSE)

    @ray.method(concurrency_group="follow")  # type: ignore[misc]
    def follow(
        self,
        key: str,
        deadline: float | None,
        streak: StreakTerms | None = None,
        sim_key: str = "",
    ) -> ChunkDone:
        """Run the granted job ``key`` (see :func:`grant_key`) here (its chunk comes from
        its submitter, see :meth:`run_granted`) and return its :class:`ChunkDone` once it
        ran: the session actor's way to follow it. ``refused`` if the chunk never came.
        ``streak``: open a streak here for the job's submitter (see :mod:`._streaks`),
        whose jobs run with the Aer options of ``sim_key`` (the granted job's).

        Raises:
            JobFailedError, ExecutionTimeoutError: as the chunk raised them.
        """
        if streak is not None:  # before the job runs: its submitter's next one may come
            self._streaks.open(streak, sim_key)
        outcome, store = self._granted.follow(key, deadline)
        if store is not None:  # before the session hears of it: its record says where
            place = store()
            if place and isinstance(outcome, ChunkDone):
                outcome = dataclasses.replace(outcome, place=place)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @ray.method(concurrency_group="follow")  # type: ignore[misc]
    def streak_report(self, streak_id: str, end: bool, wait: bool) -> StreakReport:
        """The jobs the streak ran since the session last asked (see
        :meth:`._streaks.Streaks.report`): the session actor's way to follow a streak."""
        return self._streaks.report(streak_id, end=end, wait=wait)

    @ray.method(concurrency_group="streak", num_returns=2)  # type: ignore[misc]
    def run_streak(self, job: StreakJob) -> tuple[bool, PrimitiveResult[PubResult]]:
        """Run a job of a streak (see :mod:`._streaks`) here at once, and return its
        result; a job whose streak ended is submitted to its session from here instead
        (it then runs as any job of the session, and this returns that run's result).

        Returns:
            Whether the job ran in the streak, and its result.

        Raises:
            JobFailedError: as :meth:`run_chunk`; and whatever the session raises for a
                job submitted from here (``SessionClosedError``, say).
        """
        spec, streak_id = job.spec, job.streak_id
        run = StreakRun(spec.job_id, job.created, spec.tags, spec.kind, spec.seed)
        sim_key = self._streaks.begin(streak_id, run)
        if sim_key is not None:
            request = whole_request(spec, sim_key)
            try:
                done, value = self._run(request, None, store=False)
            except BaseException as exc:
                run.error = exc
                self._streaks.end(streak_id, run)
                raise
            if not done.missing:
                run.worker_id, run.execution_s = self._id, done.execution_s
                store = None
                if spec.storage is not None:
                    store = functools.partial(write_chunk, spec.storage, spec.job_id, 0, value)
                self._streaks.end(streak_id, run, store)
                assert isinstance(value, PrimitiveResult)
                return True, value
            self._streaks.end(streak_id, None)  # not run: it goes to the session
        from ..session import run_in_session  # the session's client, as a submitter's

        return False, run_in_session(spec)

    @ray.method(concurrency_group="lane")  # type: ignore[misc]
    def run_lane(self, job: LaneJob) -> PrimitiveResult[PubResult]:
        """Run a Batch job its session queued in this worker's lane (see :mod:`._lanes`)
        once the jobs that came before it here ran, and return its result; a job its
        session took back returns that run's result (moved) or raises why (cancelled,
        expired).

        Raises:
            JobFailedError: as :meth:`run_chunk`.
            KeysMissingError: the worker lacks the job's Aer options.
            The session's error for a job it took back.
        """
        request = job.request
        outcome, run = self._lanes.wait_turn(request.job_id, self._one_at_a_time)
        if run is None:
            if outcome == MOVE:  # its session runs it: this thread waits for the result
                from .._courier import deliver

                value: PrimitiveResult[PubResult] = ray.get(deliver(job.session_id, request.job_id))
                return value
            raise outcome
        try:
            try:  # wait_turn took the worker's lock for this job
                # On one thread for every lane job: Aer's allocations then stay in one
                # malloc arena, not one per lane thread (a worker that ran 3 of W3's
                # 200-job Batches: 88 MB more than with lanes off, 55 MB with this).
                done, value = self._lane_runner().submit(self._run_now, request, False).result()
            finally:
                self._one_at_a_time.release()
            if done.missing:
                raise KeysMissingError(f"worker {self._id} lacks keys {done.missing}")
            if request.storage is not None:
                run.place = write_chunk(request.storage, request.job_id, 0, value)
            run.worker_id, run.execution_s = self._id, done.execution_s
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            self._lanes.finish(run)
        assert isinstance(value, PrimitiveResult)
        return value

    def _lane_runner(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._runner_lock:
            if self._runner is None:
                self._runner = concurrent.futures.ThreadPoolExecutor(1, "lane-runner")
            return self._runner

    @ray.method(concurrency_group="grant")  # type: ignore[misc]
    def lane_drop(self, outcomes: dict[str, Any]) -> dict[str, str]:
        """Take lane jobs back before they start (see :meth:`._lanes.Lanes.drop`)."""
        return self._lanes.drop(outcomes)

    @ray.method(concurrency_group="follow")  # type: ignore[misc]
    def lane_report(self) -> LaneReport:
        """What started and ended in this worker's lanes since the last report."""
        return self._lanes.report()

    def run_granted(self, request: ChunkRequest) -> PrimitiveResult[PubResult] | None:
        """Run a whole job its session granted this worker, once the session's verdict
        is here (:meth:`follow`); ``None`` if it was refused (it was sent ahead of its
        admission, and granted another worker or none).

        Raises:
            KeysMissingError: the worker lacks the job's Aer options.
            GrantLapsedError: no verdict came in time.
            JobFailedError, ExecutionTimeoutError: as :meth:`run_chunk`.
        """
        run, deadline = self._granted.take(request.grant_key)
        if not run:
            return None
        try:
            done, value = self._run(request, deadline, store=False)
        except BaseException as exc:
            self._granted.ended(request.grant_key, exc)
            raise
        # The result's durable copy is written by the follower's thread while this one
        # returns the result: the submitter does not wait for the write.
        store = None
        if request.storage is not None and not done.missing:
            store = functools.partial(
                write_chunk, request.storage, request.job_id, request.chunk_index, value
            )
        self._granted.ended(request.grant_key, done, store)
        if done.missing:
            raise KeysMissingError(f"worker {self._id} lacks keys {done.missing}")
        assert isinstance(value, PrimitiveResult)
        return value

    def _executor(self, request: ChunkRequest) -> AerExecutor | None:
        executor = self._executors.get(request.sim_key)
        if executor is not None:
            self._executors.move_to_end(request.sim_key)
            return executor
        if request.sim_options is None:
            return None
        options: dict[str, Any] = pickle.loads(request.sim_options)
        self._simulator_builds += 1
        options.setdefault("max_parallel_threads", self._threads)
        executor = AerExecutor(options)
        self._executors[request.sim_key] = executor
        while len(self._executors) > _SIMULATORS:
            self._executors.popitem(last=False)
        return executor

    def _circuit(self, key: str, request: ChunkRequest) -> QuantumCircuit | None:
        data = request.circuits.get(key)
        if not request.use_cache and data is not None:
            uncached: QuantumCircuit = pickle.loads(data)
            return uncached
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            circuit_cache(self._id, hit=True)
            return found[0]
        if data is None:
            return None
        self._misses += 1
        circuit_cache(self._id, hit=False)
        circuit: QuantumCircuit = pickle.loads(data)
        self._cache[key] = (circuit, len(data))
        self._cache_bytes += len(data)
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, (_, size) = self._cache.popitem(last=False)
            self._cache_bytes -= size
        return circuit

    @ray.method(num_returns=2)  # type: ignore[misc]
    def run_chunk(
        self, request: ChunkRequest
    ) -> tuple[ChunkDone, list[PubResult] | PrimitiveResult[PubResult] | None]:
        """Run one chunk.

        Returns:
            A :class:`ChunkDone`, and one result per PUB of the chunk (with exactly the
            metadata of Aer's primitives), or the job's ``PrimitiveResult`` when the
            chunk is the whole job; ``None`` when keys were missing.

        Raises:
            ExecutionTimeoutError: the job's deadline passed before the chunk started.
        """
        return self._run(request, request.deadline)

    def _run(
        self, request: ChunkRequest, deadline: float | None, *, store: bool = True
    ) -> tuple[ChunkDone, list[PubResult] | PrimitiveResult[PubResult] | None]:
        if deadline is not None and time.time() > deadline:
            raise ExecutionTimeoutError(
                f"Job {request.job_id} ran past its max_execution_time; chunk "
                f"{request.chunk_index} was not started.",
                job_id=request.job_id,
            )
        try:
            with self._one_at_a_time:
                return self._run_now(request, store)
        finally:
            self._lanes.poke()  # a job waiting in a lane may start now

    def _run_now(
        self, request: ChunkRequest, store: bool
    ) -> tuple[ChunkDone, list[PubResult] | PrimitiveResult[PubResult] | None]:
        started = time.perf_counter()
        executor = self._executor(request)
        pubs = [(pub, self._circuit(pub.circuit_key, request)) for pub in request.pubs]
        missing = [pub.circuit_key for pub, circuit in pubs if circuit is None]
        if executor is None:
            missing.append(request.sim_key)
        if missing:
            return ChunkDone(self._id, missing=tuple(dict.fromkeys(missing))), None
        assert executor is not None
        ready = [(pub, circuit) for pub, circuit in pubs if circuit is not None]
        results: list[PubResult]
        try:
            if request.kind == "estimator":
                results = executor.estimate(ready, request.seed, request.run_options)
            else:
                results = list(executor.sample(ready, request.seed, request.run_options))
        except Exception as exc:  # the job's own error (Aer, Qiskit): the caller's, not Ray's
            # The worker's traceback travels as text: error_message() shows it to the caller.
            raise JobFailedError(
                f"Job {request.job_id} failed: {type(exc).__name__}: {exc}\n\n"
                f"In worker {self._id}:\n{traceback.format_exc().rstrip()}",
                job_id=request.job_id,
            ) from exc
        elapsed = time.perf_counter() - started
        value: list[PubResult] | PrimitiveResult[PubResult] = results
        if request.whole:
            value = join(request.pubs, whole_job(len(request.pubs)), [results])
        place = ""
        if store and request.storage is not None:
            place = write_chunk(request.storage, request.job_id, request.chunk_index, value)
        done = ChunkDone(
            self._id,
            execution_s=elapsed,
            chunk_index=request.chunk_index,
            seed=request.seed,
            place=place,
        )
        return done, value
