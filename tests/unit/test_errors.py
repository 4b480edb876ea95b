import pickle

import pytest

from raysession import RaySessionWarning, errors


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

