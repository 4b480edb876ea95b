import pickle

import pytest

from raysession import AerBackend, Estimator, RaySessionWarning, errors


def test_error_tree_matches_the_documented_one():
    assert issubclass(errors.SessionNotFoundError, LookupError)
    assert issubclass(errors.JobTimeoutError, TimeoutError)
    assert issubclass(errors.ExecutionTimeoutError, errors.JobFailedError)
    for name in set(errors.__all__) - {"RaySessionWarning"}:
        assert issubclass(getattr(errors, name), errors.RaySessionError)
    assert issubclass(RaySessionWarning, UserWarning)
    assert not issubclass(RaySessionWarning, errors.RaySessionError)


def test_errors_pickle_with_context_and_cause():
    error = errors.JobFailedError("Job j failed", session_id="s", job_id="j")
    error.__cause__ = ValueError("bad circuit")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.JobFailedError
    assert (copy.message, copy.session_id, copy.job_id) == ("Job j failed", "s", "j")
    assert isinstance(copy.__cause__, ValueError) and str(copy.__cause__) == "bad circuit"


def test_unpicklable_cause_travels_as_text():
    class Local(Exception):
        pass

    error = errors.JobFailedError("boom")
    error.__cause__ = Local("inner")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy.__cause__, RuntimeError)
    assert "Local: inner" in str(copy.__cause__)


def test_raise_and_match_message():
    with pytest.raises(errors.SessionClosedError, match="closed"):
        raise errors.SessionClosedError("Session 7f is closed", session_id="7f")


def _resilience(level):
    """A V1 Estimator asked for error mitigation, which raysession warns it does not apply."""
    # A capped backend: no Ray is needed to construct the primitive.
    return Estimator(backend=AerBackend(max_workers=1), options={"resilience_level": level})


def test_raysession_warnings_are_attributed_to_the_callers_line():
    with pytest.warns(RaySessionWarning, match="resilience_level=2 asks for zero-noise") as record:
        _resilience(2)
    assert [w.filename for w in record] == [__file__]


def test_an_unexpected_raysession_warning_fails_a_test():
    """pyproject's filterwarnings raises RaySessionWarning wherever it is attributed, so a
    raysession warning no test expected fails that test."""
    with pytest.raises(RaySessionWarning, match="resilience_level=1 asks for measurement"):
        _resilience(1)
