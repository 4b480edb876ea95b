"""The public API: __all__ lists exactly the public names, and every public handle pickles and
works inside a Ray task."""

from __future__ import annotations

import inspect
import pickle

import pytest
import ray

import raysession
import raysession.backends
from raysession import Batch, EstimatorV2, SamplerV2, Session
from tests.helpers import bell


def _public_names(module) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", "").startswith(module.__name__)
    }


def test_all_lists_exactly_the_public_names():
    assert set(raysession.__all__) == _public_names(raysession) - {"__version__"}
    assert len(raysession.__all__) == len(set(raysession.__all__))
    assert set(raysession.backends.__all__) == _public_names(raysession.backends)
    for name in raysession.__all__:
        assert getattr(raysession, name).__doc__, f"{name} has no docstring"


def test_qiskit_runtime_names_are_there():
    for name in ("Session", "Batch", "EstimatorV2", "SamplerV2"):
        assert name in raysession.__all__


@ray.remote(num_cpus=0)
def _use_in_task(handles):
    session, batch, backend, estimator, sampler = handles
    ev = estimator.run([(bell(False), "ZZ")]).result()[0].data.evs
    counts = sampler.run([bell()], shots=20).result()[0].data.meas.get_counts()
    return session.status(), batch.details().mode, backend.num_workers, float(ev), counts


def test_every_public_handle_pickles_and_works_in_a_ray_task(backend):
    with Session(backend=backend) as session, Batch(backend=backend) as batch:
        estimator = EstimatorV2(mode=session, options={"default_precision": 0})
        sampler = SamplerV2(mode=batch, options={"simulator": {"seed_simulator": 1}})
        handles = (session, batch, backend, estimator, sampler)
        for handle in handles:
            copy = pickle.loads(pickle.dumps(handle))
            assert type(copy) is type(handle)
        status, mode, workers, ev, counts = ray.get(_use_in_task.remote(handles))
        assert status == "In progress, accepting new jobs"
        assert (mode, workers, ev) == ("batch", 2, pytest.approx(1.0))
        assert set(counts) <= {"00", "11"}
        assert pickle.loads(pickle.dumps(estimator)).options == estimator.options
        assert pickle.loads(pickle.dumps(estimator)).mode == session
