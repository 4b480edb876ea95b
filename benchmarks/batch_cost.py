"""Where a queued Batch job's CPU goes: Ray's floor, raysession's call graph in plain Ray,
and raysession, in interleaved rounds of one run.

``python -m benchmarks.batch_cost [--jobs 40] [--rounds 8] [--w3]`` starts its own local
Ray and runs the same Batch of W3b jobs (``--w3``: W3's circuit) three ways, round after
round, so that the machine's drift hits all three alike:

- **floor**: two plain Ray actors around Aer's own ``EstimatorV2`` (:mod:`.ray_floor`),
  the jobs sent to them in turn: one call per job.
- **call graph**: the calls raysession makes for a job that waits in a Batch's queue,
  made by plain Ray actors with no raysession code: the driver's admission round trip to
  an async "session" actor, which queues the job and sends it to a free worker (the same
  floor actors), and the driver's call to an async "courier" actor, which asks the
  session for the job's result ref, fetches it and returns it. This is what that shape
  of calls costs on this machine, whatever code runs inside them.
- **raysession**: a :class:`~raysession.Batch` and :class:`~raysession.EstimatorV2`.

It prints each side's median Batch time and the CPU milliseconds per job of each kind of
process (psutil), and of the whole machine (every process, GCS and raylet included). On 2
cores a Batch of small jobs is CPU-bound, so the CPU per job is what the time follows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
import ray

from . import workload
from .ray_floor import floor_actors


@ray.remote(num_cpus=0, max_concurrency=1000)
class _Session:
    """An async actor that admits jobs, keeps a FIFO queue and runs each job on a free
    worker, keeping the result refs: the session actor's calls, without its code."""

    def __init__(self, workers: list[Any]) -> None:
        self._free = list(workers)
        self._queue: list[tuple[str, Any]] = []
        self._refs: dict[str, Any] = {}
        self._done: dict[str, asyncio.Event] = {}

    async def submit(self, job_id: str, values: np.ndarray) -> bool:
        self._done[job_id] = asyncio.Event()
        self._queue.append((job_id, values))
        self._pump()
        return True

    def _pump(self) -> None:
        while self._queue and self._free:
            job_id, values = self._queue.pop(0)
            worker = self._free.pop()
            asyncio.get_running_loop().create_task(self._run(job_id, values, worker))

    async def _run(self, job_id: str, values: np.ndarray, worker: Any) -> None:
        ref = worker.run.remote(values)
        await asyncio.wait([asyncio.wrap_future(ref.future())])
        self._refs[job_id] = ref
        self._done[job_id].set()
        self._free.append(worker)
        self._pump()

    async def result(self, job_id: str) -> list[Any]:
        await self._done[job_id].wait()
        del self._done[job_id]
        return [self._refs.pop(job_id)]  # a ref inside a list: the courier borrows it


@ray.remote(num_cpus=0, max_concurrency=1000)
class _Courier:
    """An async actor that fetches a job's result from where the session says it is."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def deliver(self, job_id: str) -> Any:
        refs = await self._session.result.remote(job_id)
        return await refs[0]


def _pid(actor: Any) -> int:
    return int(ray.get(actor.__ray_call__.remote(lambda self: os.getpid())))


def _raysession_pids() -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        for role, title in (
            ("session", "ray::SessionActor"),
            ("courier", "ray::Courier"),
            ("workers", "ray::AerWorker"),
            ("pool", "ray::PoolActor"),
        ):
            if line.startswith(title):
                found[role].append(process.pid)
    return found


def _busy() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


class _Side:
    def __init__(self, name: str, run: Callable[[], None], pids: dict[str, list[int]]) -> None:
        self.name, self.run = name, run
        self.processes = {
            role: [psutil.Process(pid) for pid in found] for role, found in pids.items()
        }
        self.processes["driver"] = [psutil.Process()]
        self.times: list[float] = []
        self.cpu: dict[str, float] = defaultdict(float)
        self.jobs = 0

    def measure(self, jobs: int) -> None:
        before = {role: _cpu(found) for role, found in self.processes.items()}
        machine = _busy()
        started = time.perf_counter()
        self.run()
        self.times.append(time.perf_counter() - started)
        self.cpu["machine"] += _busy() - machine
        for role, found in self.processes.items():
            self.cpu[role] += _cpu(found) - before[role]
        self.jobs += jobs


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs per Batch (default 40)")
    parser.add_argument("--rounds", type=int, default=8, help="Batches per side (default 8)")
    parser.add_argument("--w3", action="store_true", help="W3's 14-qubit circuit, not W3b's")
    args = parser.parse_args()
    os.environ.setdefault("RAYSESSION_WORKER_IDLE_S", "3600")
    from raysession import AerBackend, Batch, EstimatorV2

    if args.w3:
        circuit, observable = workload.sweep_circuit(), workload.sweep_observable()
    else:
        circuit, observable = workload.small_circuit(), workload.small_observable()
    sets = workload.FULL.sets_per_job
    values = list(
        workload.sweep_values(sets * args.jobs, circuit.num_parameters).reshape(args.jobs, sets, -1)
    )
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    backend = AerBackend()
    backend.warm_up()
    workers = backend.num_workers
    with floor_actors(workers, circuit, observable) as actors, Batch(backend) as batch:
        session = _Session.remote(actors)  # type: ignore[attr-defined]
        courier = _Courier.remote(session)  # type: ignore[attr-defined]
        estimator = EstimatorV2(mode=batch, options={"default_precision": 0.0})
        counter = iter(range(10**9))

        def floor() -> None:
            ray.get([actors[i % workers].run.remote(v) for i, v in enumerate(values)])

        def call_graph() -> None:
            refs = []
            for v in values:
                job_id = str(next(counter))
                ray.get(session.submit.remote(job_id, v))
                refs.append(courier.deliver.remote(job_id))
            ray.get(refs)

        def raysession_side() -> None:
            jobs = [estimator.run([(circuit, observable, v)]) for v in values]
            for job in jobs:
                job.result()

        floor_pids = {"workers": [_pid(actor) for actor in actors]}
        sides = [
            _Side("floor", floor, floor_pids),
            _Side(
                "call graph",
                call_graph,
                {**floor_pids, "session": [_pid(session)], "courier": [_pid(courier)]},
            ),
            _Side("raysession", raysession_side, {}),
        ]
        for side in sides:  # warm-up: every worker has run the circuit
            side.run()
        sides[2].processes.update(
            {role: [psutil.Process(p) for p in found] for role, found in _raysession_pids().items()}
        )
        for _ in range(args.rounds):
            for side in sides:
                side.measure(args.jobs)
    ray.shutdown()
    roles = ["driver", "session", "courier", "pool", "workers", "machine"]
    print(f"{'CPU ms per job':14s} " + " ".join(f"{r:>8s}" for r in roles) + "   Batch s")
    for side in sides:
        cells = []
        for role in roles:
            known = role in side.processes or role == "machine"
            cells.append(f"{1000 * side.cpu[role] / side.jobs:8.2f}" if known else f"{'-':>8s}")
        print(f"{side.name:14s} " + " ".join(cells) + f"   {statistics.median(side.times):.3f}")


if __name__ == "__main__":
    main()
