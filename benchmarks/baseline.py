"""The raw-Aer baseline: ``qiskit_aer.primitives`` timed in a plain Python process, never under Ray.

:class:`BaselineProcess` starts ``python -m benchmarks.baseline``, a process that imports
neither Ray nor raysession, and sends it one measurement at a time over a pipe (pickled
requests on its stdin, pickled replies on its stdout). Each measurement warms up first and
times itself inside that process with :func:`time.perf_counter`, so the pipe is not timed.
The driver waits for every reply, so a baseline never runs at the same time as a raysession
measurement.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import qiskit_aer
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2, SamplerV2

from .workload import time_sequential_jobs

__all__ = ["BaselineError", "BaselineProcess"]

_REPO_ROOT = Path(__file__).resolve().parent.parent


class BaselineError(RuntimeError):
    """A measurement failed inside the baseline process; the message holds its traceback."""


# ------------------------------------------------------------- measurements (child side)


def describe() -> dict[str, Any]:
    """What the baseline process is: its pid, and proof that Ray is not loaded in it."""
    return {
        "pid": os.getpid(),
        "ray_imported": "ray" in sys.modules,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "qiskit_aer": qiskit_aer.__version__,
    }


def estimator_sweep(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: np.ndarray,
    backend_options: dict[str, Any],
    warmup_sets: int,
) -> dict[str, Any]:
    """Time one exact Aer ``EstimatorV2`` job ``[(circuit, observable, values)]``.

    Returns:
        ``seconds``, the ``evs`` and Aer's ``parallel_experiments`` for the run.
    """
    estimator = EstimatorV2(
        options={"default_precision": 0.0, "backend_options": dict(backend_options)}
    )
    estimator.run([(circuit, observable, values[:warmup_sets])]).result()
    started = time.perf_counter()
    result = estimator.run([(circuit, observable, values)]).result()
    seconds = time.perf_counter() - started
    simulator = result[0].metadata.get("simulator_metadata", {})
    return {
        "seconds": seconds,
        "evs": np.asarray(result[0].data.evs),
        "parallel_experiments": simulator.get("parallel_experiments"),
    }


def sampler_sweep(
    circuit: QuantumCircuit,
    values: np.ndarray,
    shots: int,
    backend_options: dict[str, Any],
    warmup_sets: int,
    seed: int,
) -> dict[str, Any]:
    """Time one Aer ``SamplerV2`` job ``[(circuit, values, shots)]``.

    Returns:
        ``seconds``, the result's ``shape`` and ``num_shots``, and ``parallel_experiments``.
    """
    sampler = SamplerV2(
        options={"backend_options": dict(backend_options), "run_options": {"seed_simulator": seed}}
    )
    sampler.run([(circuit, values[:warmup_sets], shots)]).result()
    started = time.perf_counter()
    result = sampler.run([(circuit, values, shots)]).result()
    seconds = time.perf_counter() - started
    bits = result[0].data.meas
    simulator = result[0].metadata.get("simulator_metadata", {})
    return {
        "seconds": seconds,
        "shape": tuple(bits.shape),
        "num_shots": bits.num_shots,
        "parallel_experiments": simulator.get("parallel_experiments"),
    }


def sequential_estimator_jobs(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: list[np.ndarray | None],
    warmup_jobs: int,
) -> dict[str, Any]:
    """Run one exact Aer ``EstimatorV2`` job per entry of ``values``, one after another.

    An entry ``None`` means a job ``[(circuit, observable)]`` (a circuit without parameters).

    Returns:
        ``per_job_s`` (each ``run(...).result()``), ``total_s`` and the last job's ``evs``.
    """

    estimator = EstimatorV2(options={"default_precision": 0.0})
    return time_sequential_jobs(estimator, circuit, observable, values, warmup_jobs)


_TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    task.__name__: task
    for task in (describe, estimator_sweep, sampler_sweep, sequential_estimator_jobs)
}


def serve() -> None:
    """Answer pickled ``(task, kwargs)`` requests from stdin until it closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Whatever Qiskit or Aer print must not land in the reply stream.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    while True:
        try:
            task, kwargs = pickle.load(requests)
        except EOFError:
            return
        try:
            reply: tuple[str, Any] = ("ok", _TASKS[task](**kwargs))
        except Exception:  # sent back to the driver, which raises it there
            reply = ("error", traceback.format_exc())
        pickle.dump(reply, replies)
        replies.flush()


# ------------------------------------------------------------------- driver side


class BaselineProcess:
    """A plain Python process (no Ray) that runs raw-Aer measurements on request.

    Start it before ``ray.init`` so that nothing of Ray's leaks into its environment; it lives
    until :meth:`close` or the end of a ``with`` block.

    Example:
        >>> with BaselineProcess() as raw:  # doctest: +SKIP
        ...     raw.call("describe")["ray_imported"]
        False
    """

    def __init__(self) -> None:
        # The same interpreter and virtualenv; run from the repository root so `-m` finds us.
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.baseline"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=_REPO_ROOT,
        )

    @property
    def pid(self) -> int:
        """The baseline process's id."""
        return self._process.pid

    def call(self, task: str, **kwargs: Any) -> dict[str, Any]:
        """Run one measurement in the baseline process and return its reply.

        Raises:
            BaselineError: the measurement raised; the message holds its traceback.
        """
        assert self._process.stdin is not None and self._process.stdout is not None
        pickle.dump((task, kwargs), self._process.stdin)
        self._process.stdin.flush()
        status, value = pickle.load(self._process.stdout)
        if status != "ok":
            raise BaselineError(f"raw-Aer task {task} failed:\n{value}")
        return dict(value)

    def close(self) -> None:
        """Let the process finish and wait for it. Idempotent."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> BaselineProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve()
