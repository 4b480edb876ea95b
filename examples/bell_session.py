"""A Bell pair in one Session: SamplerV2's counts and EstimatorV2's <ZZ>.

Both primitives run in the same session, one job each, on the Ray cluster's
shared Aer workers. A Bell pair (|00> + |11>)/sqrt(2) gives only the outcomes
00 and 11, about half each, and <ZZ> = 1 exactly (the estimator is exact here).

Run: python examples/bell_session.py [--shots N] [--seed S]
"""

from __future__ import annotations

import argparse

from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from raysession import AerBackend, EstimatorV2, SamplerV2, Session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7, help="seed_simulator of the sampler")
    args = parser.parse_args()

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    measured = bell.measure_all(inplace=False)

    with Session(backend=AerBackend(), max_time="10m") as session:
        sampler = SamplerV2(mode=session)
        sampler.options.simulator.seed_simulator = args.seed
        estimator = EstimatorV2(mode=session, options={"default_precision": 0.0})
        sample_job = sampler.run([measured], shots=args.shots)
        estimate_job = estimator.run([(bell, SparsePauliOp("ZZ"))])
        counts = sample_job.result()[0].data.meas.get_counts()
        zz = float(estimate_job.result()[0].data.evs)
        print(f"session {session.session_id} ({session.mode}) on {session.backend()}")
        print(f"  jobs in the session: {', '.join(session.job_ids())}")
    print(f"sampler job {sample_job.job_id()}: {sample_job.status()}")
    print(f"  counts of {args.shots} shots: {dict(sorted(counts.items()))}")
    print(f"estimator job {estimate_job.job_id()}: {estimate_job.status()}")
    print(f"  <ZZ> = {zz:.6f} (a Bell pair: 1)")
    only_bell = set(counts) <= {"00", "11"}
    print(f"only 00 and 11 measured: {'yes' if only_bell else 'NO'}")


if __name__ == "__main__":
    main()
