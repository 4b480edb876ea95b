"""Parameter sweep of an efficient_su2 ansatz, run in one session from several Ray tasks.

Ray starts locally on first use (or joins RAY_ADDRESS). Each task gets the same
estimator handle and submits its slice of the sweep; the session runs the jobs
in FIFO order on the cluster's shared Aer worker pool. The tasks use Ray's default
resources (one CPU each): raysession's workers hold no CPU a task waits for.

    python examples/parameter_sweep.py [--qubits 6] [--points 400] [--tasks 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

from raysession import AerBackend, EstimatorV2, Session, pool_status


@ray.remote
def sweep_slice(estimator: EstimatorV2, circuit, observable, values: np.ndarray) -> np.ndarray:
    """Runs in a Ray task: submit one slice of the sweep to the shared session."""
    job = estimator.run([(circuit, observable, values)])
    return np.asarray(job.result()[0].data.evs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=6)
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args()

    circuit = efficient_su2(args.qubits, reps=2)
    observable = SparsePauliOp.from_sparse_list(
        [("ZZ", [i, i + 1], 1.0) for i in range(args.qubits - 1)]
        + [("X", [i], 0.5) for i in range(args.qubits)],
        num_qubits=args.qubits,
    )
    values = np.random.default_rng(42).uniform(0, 2 * np.pi, (args.points, circuit.num_parameters))

    backend = AerBackend()  # a description: workers start with the first job
    started = time.perf_counter()
    with Session(backend=backend, max_time="30m") as session:
        estimator = EstimatorV2(options={"default_precision": 0.0})
        slices = np.array_split(values, args.tasks)
        evs = np.concatenate(
            ray.get([sweep_slice.remote(estimator, circuit, observable, s) for s in slices])
        )
        details = session.details()
        workers = len(pool_status().workers)
    elapsed = time.perf_counter() - started

    best = int(np.argmin(evs))
    print(
        f"session {details.id}: {details.num_jobs} jobs from {args.tasks} Ray tasks, "
        f"{workers} Aer workers on the shared pool"
    )
    print(
        f"swept {len(evs)} parameter sets of efficient_su2({args.qubits}, reps=2) "
        f"in {elapsed:.2f} s"
    )
    print(f"<H>: min {evs.min():.6f} at point {best}, max {evs.max():.6f}, mean {evs.mean():.6f}")


if __name__ == "__main__":
    main()
