"""A noisy 5-qubit device in a Session: a GHZ state's counts, with the device's noise.

Any Qiskit ``BackendV2`` is a raysession backend: its target, coupling map and the
noise of its calibration are simulated by Aer on the Ray cluster's shared workers.
Here the device is Qiskit's ``GenericBackendV2`` (fixed seed, so every run is the same).

Run: python examples/noisy_device.py [--shots N] [--seed S]
"""

from __future__ import annotations

import argparse

from qiskit import QuantumCircuit
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.transpiler import generate_preset_pass_manager

from raysession import SamplerV2, Session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=11, help="seed_simulator of the job")
    args = parser.parse_args()

    device = GenericBackendV2(num_qubits=5, seed=42)
    ghz = QuantumCircuit(3)
    ghz.h(0)
    ghz.cx(0, 1)
    ghz.cx(1, 2)
    ghz.measure_all()
    # The device runs ISA circuits only: transpile for its target first.
    isa = generate_preset_pass_manager(backend=device, optimization_level=1).run(ghz)

    with Session(backend=device) as session:
        sampler = SamplerV2(mode=session)
        sampler.options.simulator.seed_simulator = args.seed
        job = sampler.run([isa], shots=args.shots)
        counts = job.result()[0].data.meas.get_counts()
        print(f"session {session.session_id} on {session.backend()}: job {job.job_id()}")

    for bits, count in sorted(counts.items(), key=lambda item: -item[1])[:6]:
        print(f"  {bits}: {count}")
    ghz_share = (counts.get("000", 0) + counts.get("111", 0)) / args.shots
    print(f"GHZ outcomes 000 and 111: {ghz_share:.1%} of {args.shots} shots (noiseless: 100.0%)")


if __name__ == "__main__":
    main()
