"""What storing results costs a job (issue 10: at most 3% on W1-W7): interleaved pairs.

Run: ``python -m benchmarks.storage_cost [--workload w4|w5|w3b] [--pairs N]`` on an
otherwise idle machine. One driver holds two sessions on one backend, one with
``RAYSESSION_STORAGE=off`` and one storing into a fresh directory, and runs their jobs
in pairs, in a random order within each pair. Machine drift (this machine's speed moves
by up to 2x between minutes) then hits both sides alike, which whole benchmark runs one
after another cannot resolve at 3%.

* ``w4``: W4's Bell job, sequential (``run(...).result()`` each; a streak);
* ``w5``: W5's optimizer-loop job of W1's circuit, one parameter set, sequential;
* ``w3b``: W3b's 40 jobs of 10 sets in a ``Batch`` (one pair: a Batch of each);
* ``w1``: W1's sweep (2000 sets of a 14-qubit ansatz, split across the workers);
* ``w2``: W2's sampler sweep (the same circuit measured, 2000 sets x 1024 shots);
* ``w7``: W7, session B's Bell jobs while session A runs W1's sweep in chunks of 64
  (one pair: W7 with both sessions off, and with both on; B's median job time).

Prints the medians and means with and without storage, the change, and a bootstrap 95%
interval of the change of the median.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable

import numpy as np
import ray

from benchmarks.workload import (
    bell_circuit,
    bell_observable,
    small_circuit,
    small_observable,
    sweep_circuit,
    sweep_observable,
    sweep_values,
)
from raysession import AerBackend, Batch, EstimatorV2, SamplerV2, Session

EXACT = {"default_precision": 0.0}


def _sessions(backend: AerBackend, store: str, kind: type[Session]) -> dict[str, Session]:
    """Two sessions, storage off and on (the setting is read as a session starts)."""
    sessions = {}
    for name, value in (("off", "off"), ("on", store)):
        os.environ["RAYSESSION_STORAGE"] = value
        sessions[name] = kind(backend)
    os.environ.pop("RAYSESSION_STORAGE")
    assert sessions["off"].storage is None and sessions["on"].storage == store
    return sessions


def sequential(
    backend: AerBackend,
    store: str,
    pub: Callable[[int], tuple],
    pairs: int,
    warm: int = 30,
    sampler: bool = False,
):
    """Per-job times (s) of ``pairs`` interleaved sequential jobs, off and on."""
    sessions = _sessions(backend, store, Session)
    estimators: dict[str, EstimatorV2 | SamplerV2] = {
        k: SamplerV2(mode=s) if sampler else EstimatorV2(mode=s, options=EXACT)
        for k, s in sessions.items()
    }
    for i in range(warm):  # warm: workers, circuits, streaks
        for estimator in estimators.values():
            estimator.run([pub(i)]).result()
    times: dict[str, list[float]] = {"off": [], "on": []}
    order, rng = ["off", "on"], random.Random(1)
    for i in range(pairs):
        rng.shuffle(order)
        for name in order:
            started = time.perf_counter()
            estimators[name].run([pub(i)]).result()
            times[name].append(time.perf_counter() - started)
    for session in sessions.values():
        session.close()
    return times


def batches(backend: AerBackend, store: str, pairs: int):
    """Per-job times (s, a Batch's span over its job count) of W3b's Batch, off and on."""
    circuit, observable = small_circuit(), small_observable()
    values = list(sweep_values(400, circuit.num_parameters).reshape(40, 10, -1))
    times: dict[str, list[float]] = {"off": [], "on": []}
    order, rng = ["off", "on"], random.Random(1)
    for _ in range(pairs + 1):
        rng.shuffle(order)
        for name in order:
            os.environ["RAYSESSION_STORAGE"] = "off" if name == "off" else store
            with Batch(backend) as batch:
                estimator = EstimatorV2(mode=batch, options=EXACT)
                for job in [estimator.run([(circuit, observable, v)]) for v in values[:2]]:
                    job.result()
                started = time.perf_counter()
                jobs = [estimator.run([(circuit, observable, v)]) for v in values]
                for job in jobs:
                    job.result()
                times[name].append((time.perf_counter() - started) / len(values))
    os.environ.pop("RAYSESSION_STORAGE")
    return {name: found[1:] for name, found in times.items()}  # the first pair warms up


def beside_a_sweep(backend: AerBackend, store: str, pairs: int):
    """B's median job time (s) beside A's sweep, per W7 run, off and on."""
    from benchmarks.raysession_side import two_sessions

    small = (bell_circuit(), bell_observable())
    circuit = sweep_circuit()
    sweep = (circuit, sweep_observable(), sweep_values(2000, circuit.num_parameters))
    times: dict[str, list[float]] = {"off": [], "on": []}
    order, rng = ["off", "on"], random.Random(1)
    for _ in range(pairs):
        rng.shuffle(order)
        for name in order:
            os.environ["RAYSESSION_STORAGE"] = "off" if name == "off" else store
            found = two_sessions(backend, small, sweep, 64, 100, 20)
            times[name].append(float(np.median(found["beside_per_job_s"])))
    os.environ.pop("RAYSESSION_STORAGE")
    return times


def report(workload: str, times: dict[str, list[float]]) -> str:
    off, on = np.asarray(times["off"]) * 1e3, np.asarray(times["on"]) * 1e3
    rng = np.random.default_rng(1)
    picks = rng.integers(0, len(off), (1000, len(off)))
    changes = np.sort(100 * (np.median(on[picks], axis=1) / np.median(off[picks], axis=1) - 1))
    return (
        f"{workload}, {len(off)} pairs: median {np.median(off):.3f} ms off, "
        f"{np.median(on):.3f} ms on ({100 * (np.median(on) / np.median(off) - 1):+.1f}%); "
        f"mean {off.mean():.3f} / {on.mean():.3f} ms "
        f"({100 * (on.mean() / off.mean() - 1):+.1f}%); 95% interval of the median's "
        f"change {changes[25]:+.1f}% .. {changes[974]:+.1f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["w4", "w5", "w3b", "w1", "w2", "w7"], default="w4")
    parser.add_argument("--pairs", type=int, default=None)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    backend = AerBackend(num_workers=2)
    backend.warm_up()
    store = tempfile.mkdtemp(prefix="raysession-storage-cost-")
    if args.workload == "w3b":
        times = batches(backend, store, args.pairs or 12)
    elif args.workload == "w7":
        times = beside_a_sweep(backend, store, args.pairs or 6)
    elif args.workload == "w1":
        circuit, observable = sweep_circuit(), sweep_observable()
        values = sweep_values(2000, circuit.num_parameters)
        times = sequential(
            backend, store, lambda i: (circuit, observable, values), args.pairs or 6, warm=1
        )
    elif args.workload == "w2":
        circuit = sweep_circuit(measure=True)
        values = sweep_values(2000, circuit.num_parameters)
        times = sequential(
            backend, store, lambda i: (circuit, values, 1024), args.pairs or 6, 1, sampler=True
        )
    elif args.workload == "w5":
        circuit, observable = sweep_circuit(), sweep_observable()
        values = sweep_values(200, circuit.num_parameters)
        times = sequential(
            backend, store, lambda i: (circuit, observable, values[i % 200]), args.pairs or 1000
        )
    else:
        circuit, observable = bell_circuit(), bell_observable()
        times = sequential(backend, store, lambda i: (circuit, observable), args.pairs or 3000)
    print(report(args.workload, times), flush=True)


if __name__ == "__main__":
    main()
