"""VQE in one Session: the ground energy of the 4-site Heisenberg ring, to a stated tolerance.

H = sum over the ring's bonds (i, i+1 mod n) of X_i X_j + Y_i Y_j + Z_i Z_j (periodic; --open
drops the bond n-1 -> 0). scipy's BFGS minimizes <H> over efficient_su2(n, reps) from a seeded
start. Each step is one EstimatorV2 job: a sweep of 2P+1 parameter sets gives the energy and
its exact gradient by the parameter-shift rule (every angle drives one RY or RZ). The estimator
is exact (default_precision=0), so a run is deterministic. The exact ground energy comes from
numpy's eigvalsh of H's matrix; the 4-site ring's is -8. Some starts stop in a local
minimum (the last line then says NOT converged); the default seed does not.

Run: python examples/vqe.py [--sites 4] [--reps 3] [--seed 2] [--tol 1e-6] [--open]
"""

from __future__ import annotations

import argparse

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from scipy.optimize import minimize

from raysession import AerBackend, EstimatorV2, Session


def heisenberg(num_sites: int, periodic: bool) -> SparsePauliOp:
    bonds = [(i, (i + 1) % num_sites) for i in range(num_sites if periodic else num_sites - 1)]
    terms = [(pauli * 2, list(bond), 1.0) for bond in bonds for pauli in "XYZ"]
    return SparsePauliOp.from_sparse_list(terms, num_qubits=num_sites)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3, help="efficient_su2 layers")
    parser.add_argument("--seed", type=int, default=2, help="seed of the starting angles")
    parser.add_argument("--tol", type=float, default=1e-6, help="allowed |E - E0|")
    parser.add_argument("--open", action="store_true", help="an open chain, not a ring")
    args = parser.parse_args()

    hamiltonian = heisenberg(args.sites, periodic=not args.open)
    exact = float(np.linalg.eigvalsh(hamiltonian.to_matrix()).min())
    ansatz = efficient_su2(args.sites, reps=args.reps)
    num_params = ansatz.num_parameters
    shifts = np.pi / 2 * np.eye(num_params)
    start = np.random.default_rng(args.seed).uniform(-np.pi, np.pi, num_params)

    with Session(backend=AerBackend(), max_time="30m") as session:
        estimator = EstimatorV2(mode=session, options={"default_precision": 0.0})

        def energy_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
            points = np.vstack([theta, theta + shifts, theta - shifts])
            evs = estimator.run([(ansatz, hamiltonian, points)]).result()[0].data.evs
            return float(evs[0]), (evs[1 : num_params + 1] - evs[num_params + 1 :]) / 2

        found = minimize(energy_and_gradient, start, jac=True, method="BFGS")
        num_jobs = session.details().num_jobs

    error = abs(found.fun - exact)
    kind = "open chain" if args.open else "ring (periodic)"
    print(f"Heisenberg {kind} of {args.sites} sites, {len(hamiltonian)} Pauli terms")
    print(f"exact ground energy (numpy eigvalsh): {exact:.10f}")
    print(
        f"VQE energy: {found.fun:.10f} after {found.nit} BFGS iterations, "
        f"efficient_su2({args.sites}, reps={args.reps}) with {num_params} parameters"
    )
    print(
        f"session {session.session_id}: {num_jobs} jobs, "
        f"{found.nfev} energy+gradient evaluations of {2 * num_params + 1} parameter sets each"
    )
    verdict = "converged" if error <= args.tol else "NOT converged"
    print(f"error |E - E0| = {error:.2e}, tolerance {args.tol:.0e}: {verdict}")


if __name__ == "__main__":
    main()
