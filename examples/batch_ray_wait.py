"""A Batch of independent GHZ circuits, gathered with ray.wait as each job finishes.

A Batch runs its jobs concurrently on the Ray cluster's shared Aer workers, in no
promised order. Each job handle is also a Ray ObjectRef, so ``ray.wait`` returns the
handles themselves as their jobs finish. A GHZ state of n qubits gives only the
outcomes 0...0 and 1...1, about half each.

Run: python examples/batch_ray_wait.py [--min-qubits 2] [--max-qubits 12] [--shots N]
"""

from __future__ import annotations

import argparse

import ray
from qiskit import QuantumCircuit

from raysession import AerBackend, Batch, SamplerV2


def ghz(num_qubits: int) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits, name=f"ghz{num_qubits}")
    qc.h(0)
    for qubit in range(num_qubits - 1):
        qc.cx(qubit, qubit + 1)
    qc.measure_all()
    return qc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-qubits", type=int, default=2)
    parser.add_argument("--max-qubits", type=int, default=12)
    parser.add_argument("--shots", type=int, default=2000)
    args = parser.parse_args()
    sizes = range(args.min_qubits, args.max_qubits + 1)

    arrived: list[int] = []
    all_ghz = True
    with Batch(backend=AerBackend(), max_time="10m") as batch:
        sampler = SamplerV2(mode=batch, options={"simulator": {"seed_simulator": 1}})
        jobs = {sampler.run([ghz(n)], shots=args.shots): n for n in sizes}
        print(f"batch {batch.session_id} ({batch.mode}): {len(jobs)} jobs submitted")
        pending = list(jobs)
        while pending:
            [job], pending = ray.wait(pending, num_returns=1)
            n = jobs[job]
            counts = job.result()[0].data.meas.get_counts()
            zeros, ones = counts.get("0" * n, 0), counts.get("1" * n, 0)
            others = args.shots - zeros - ones
            all_ghz &= others == 0
            arrived.append(n)
            print(f"  GHZ({n}) job {job.job_id()}: 0..0 {zeros}, 1..1 {ones}, other {others}")

    print(f"arrival order (qubits): {arrived}")
    print(
        f"{len(arrived)} of {len(jobs)} jobs gathered with ray.wait; "
        f"only 0..0 and 1..1 in every job: {'yes' if all_ghz else 'NO'}"
    )


if __name__ == "__main__":
    main()
