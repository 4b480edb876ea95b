"""Benchmarks of raysession against raw ``qiskit_aer.primitives`` on the same machine (issue #4).

Run ``python -m benchmarks.run`` (``make bench``) or ``--quick`` (``make bench-quick``);
see ``benchmarks/README.md`` for what each benchmark measures and its target.
"""
