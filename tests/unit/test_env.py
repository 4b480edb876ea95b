"""Every RAYSESSION_* environment variable: unset or blank gives its default, a good value its
number, and a bad value a ValueError in the reading process that names the variable and the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
from qiskit import QuantumCircuit

from raysession import AerBackend, EstimatorV2, RayProvider, Session, _job_mode, _storage
from raysession._env import env_count, env_seconds, env_whole_seconds
from raysession._queue_limits import queue_limits
from raysession._session_records import lanes_enabled
from raysession.backends import aer
from raysession.backends._pool_protocol import PoolConfig
from raysession.backends._store import storage_uri
from raysession.ibm import _catalog
from raysession.ibm.provider_session import provider_min_max_time
from raysession.options import SessionLimits

PACKAGE = Path(__file__).resolve().parents[2] / "raysession"


@dataclass(frozen=True)
class Setting:
    """One way a variable is read: the reader, its default and the kind of value it takes."""

    name: str
    read: Any
    default: Any
    kind: str


def _max_chunk_retries_parser() -> int:
    """The call aer.max_chunk_retries() is to switch to; the same default of 3."""
    return env_count("RAYSESSION_MAX_CHUNK_RETRIES", 3)


SETTINGS = [
    Setting("RAYSESSION_WORKER_IDLE_S", lambda: PoolConfig.from_env().idle_s, 60.0, "seconds"),
    Setting(
        "RAYSESSION_PLACEMENT_TIMEOUT_S",
        lambda: PoolConfig.from_env().placement_timeout_s,
        60.0,
        "seconds",
    ),
    Setting("RAYSESSION_JOB_MODE_IDLE_S", _job_mode.idle_s, 10.0, "seconds"),
    Setting(
        "RAYSESSION_MIN_MAX_TIME", lambda: SessionLimits.from_env().min_max_time, 1, "whole_seconds"
    ),
    Setting(
        "RAYSESSION_MAX_MAX_TIME",
        lambda: SessionLimits.from_env().max_max_time,
        8 * 3600,
        "whole_seconds",
    ),
    Setting("RAYSESSION_PROVIDER_MIN_MAX_TIME", provider_min_max_time, 300, "whole_seconds"),
    Setting("RAYSESSION_BACKEND_NUM_WORKERS", _catalog.num_workers, None, "positive_count"),
    Setting("RAYSESSION_MAX_CHUNK_RETRIES", _max_chunk_retries_parser, 3, "count"),
    Setting("RAYSESSION_MAX_CHUNK_RETRIES", aer.max_chunk_retries, 3, "count"),
    Setting("RAYSESSION_STORAGE_RETENTION", _storage.retention_s, 7 * 86_400, "duration"),
    Setting("RAYSESSION_STORAGE_MAX_BYTES", _storage.max_bytes, 10 * 2**30, "positive_count"),
    Setting(
        "RAYSESSION_STORAGE",
        storage_uri,
        str(Path("~/.raysession/storage").expanduser().absolute()),
        "storage",
    ),
    Setting(
        "RAYSESSION_MAX_QUEUED_JOBS", lambda: queue_limits().max_jobs, 10_000, "positive_count"
    ),
    Setting(
        "RAYSESSION_MAX_QUEUED_BYTES", lambda: queue_limits().max_bytes, 1 << 30, "positive_count"
    ),
    Setting("RAYSESSION_LANES", lanes_enabled, True, "switch"),
]

GOOD = {
    "seconds": [("0.5", 0.5), ("90", 90.0), (" 120 ", 120.0), ("1e3", 1000.0)],
    "whole_seconds": [("5", 5), (" 600 ", 600), ("007", 7)],
    "count": [("0", 0), ("7", 7), (" 2 ", 2)],
    "positive_count": [("1", 1), ("7", 7)],
    "duration": [("12h", 43_200), ("1d 6h", 108_000), (" 90 ", 90)],
    # A directory (made absolute), a URI (as given), or off.
    "storage": [
        ("/tmp/store", "/tmp/store"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("off", None),
        ("OFF", None),
    ],
    "switch": [("off", False), ("ON", True), (" 0 ", False), ("yes", True), ("False", False)],
}
BAD = {
    "seconds": ["abc", "nan", "NaN", "inf", "-inf", "-1", "0", "0.0", "60s", "1,5"],
    "whole_seconds": ["abc", "nan", "inf", "-1", "0", "1.5", "1e3", "1h", "+5"],
    "count": ["abc", "nan", "inf", "-1", "1.5", "1e3", "+2"],
    "positive_count": ["abc", "nan", "inf", "-1", "0", "1.5", "1e3"],
    "duration": ["abc", "0", "-1h", "1h 1h", "1.5h", "1w"],
    "storage": [],  # any path or URI is taken; a wrong one fails where it is used
    "switch": ["maybe", "2", "onn", "-1"],
}
ACCEPTED = {
    "seconds": "must be a positive number of seconds",
    "whole_seconds": "must be a whole number of seconds",
    "count": "must be a whole number",
    "positive_count": "must be a whole number, at least 1",
    "duration": "must be a duration of d/h/m/s terms or whole seconds",
    "switch": "must be on or off",
}


def _ids(setting: Setting) -> str:
    return f"{setting.name}-{getattr(setting.read, '__name__', 'reader')}"


def test_the_table_covers_every_variable_the_package_reads():
    named = set()
    for path in PACKAGE.rglob("*.py"):
        named |= set(re.findall(r"RAYSESSION_[A-Z_]+[A-Z]", path.read_text()))
    assert named == {setting.name for setting in SETTINGS}


@pytest.mark.parametrize("setting", SETTINGS, ids=_ids)
@pytest.mark.parametrize("blank", [None, "", "   "])
def test_unset_or_blank_gives_the_default(monkeypatch, setting, blank):
    if blank is None:
        monkeypatch.delenv(setting.name, raising=False)
    else:
        monkeypatch.setenv(setting.name, blank)
    assert setting.read() == setting.default


@pytest.mark.parametrize(
    ("setting", "raw", "expected"),
    [(s, raw, want) for s in SETTINGS for raw, want in GOOD[s.kind]],
    ids=lambda v: _ids(v) if isinstance(v, Setting) else repr(v),
)
def test_a_valid_value_gives_its_number(monkeypatch, setting, raw, expected):
    monkeypatch.setenv(setting.name, raw)
    value = setting.read()
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("setting", "raw"),
    [(s, raw) for s in SETTINGS for raw in BAD[s.kind]],
    ids=lambda v: _ids(v) if isinstance(v, Setting) else repr(v),
)
def test_a_bad_value_raises_naming_the_variable_and_the_value(monkeypatch, setting, raw):
    monkeypatch.setenv(setting.name, raw)
    with pytest.raises(ValueError, match=re.escape(f"{setting.name}={raw!r}")) as caught:
        setting.read()
    if setting.read is not aer.max_chunk_retries:  # its own wording, until it uses _env
        assert ACCEPTED[setting.kind] in str(caught.value)
        assert "such as" in str(caught.value)


def test_the_message_says_what_is_accepted_with_an_example(monkeypatch):
    monkeypatch.setenv("RAYSESSION_WORKER_IDLE_S", "abc")
    with pytest.raises(ValueError) as caught:
        PoolConfig.from_env()
    assert str(caught.value) == (
        "RAYSESSION_WORKER_IDLE_S='abc' must be a positive number of seconds, such as 60"
    )


def test_the_parsers_read_any_variable_by_name(monkeypatch):
    monkeypatch.setenv("RAYSESSION_TEST_ONLY", "12")
    assert env_seconds("RAYSESSION_TEST_ONLY", 1.0) == 12.0
    assert env_whole_seconds("RAYSESSION_TEST_ONLY", 1) == 12
    assert env_count("RAYSESSION_TEST_ONLY", 0, minimum=12) == 12
    with pytest.raises(ValueError, match=r"RAYSESSION_TEST_ONLY='12' .* at least 13, such as 20"):
        env_count("RAYSESSION_TEST_ONLY", 20, minimum=13)


# ------------------------------------------------------- at the public entry points, before Ray


def _capped() -> AerBackend:
    """A backend that knows its worker count without asking Ray for the cluster's size.

    ``isinstance(backend, Backend)`` on Python 3.11 reads every property of the protocol,
    and an uncapped backend's ``num_workers`` connects to Ray to count CPUs.
    """
    return AerBackend(max_workers=1)


@pytest.fixture
def no_ray():
    """The test's calls must fail before they connect to Ray."""
    assert not ray.is_initialized()
    yield
    assert not ray.is_initialized(), "the bad value was found only after Ray was started"


@pytest.mark.parametrize("name", ["RAYSESSION_MAX_MAX_TIME", "RAYSESSION_MIN_MAX_TIME"])
@pytest.mark.parametrize("max_time", [None, 60])
def test_session_reports_a_bad_bound_before_it_starts_anything(monkeypatch, no_ray, name, max_time):
    monkeypatch.setenv(name, "8h")
    with pytest.raises(ValueError, match=f"{name}='8h' must be a whole number of seconds"):
        Session(_capped(), max_time=max_time)


def test_session_on_a_backend_name_reports_a_bad_worker_cap(monkeypatch, no_ray):
    name = "aer_simulator_extended_stabilizer"
    if name in _catalog.running_pools():
        pytest.skip(f"{name}'s pool was already built in this process; the cap is read once")
    monkeypatch.setenv("RAYSESSION_BACKEND_NUM_WORKERS", "0")
    with pytest.raises(ValueError, match="RAYSESSION_BACKEND_NUM_WORKERS='0'"):
        Session(name)
    assert name not in _catalog.running_pools()


def test_provider_open_session_reports_a_bad_minimum(monkeypatch, no_ray):
    monkeypatch.setenv("RAYSESSION_PROVIDER_MIN_MAX_TIME", "5m")
    backend = RayProvider().get_backend("aer_simulator")
    with pytest.raises(ValueError, match="RAYSESSION_PROVIDER_MIN_MAX_TIME='5m'"):
        backend.open_session(max_time=600)
    assert backend.session is None


def test_a_job_mode_run_reports_a_bad_idle_time(monkeypatch, no_ray):
    monkeypatch.setenv("RAYSESSION_JOB_MODE_IDLE_S", "nan")
    estimator = EstimatorV2(mode=_capped())
    with pytest.raises(ValueError, match="RAYSESSION_JOB_MODE_IDLE_S='nan'"):
        estimator.run([(QuantumCircuit(1), "Z")])
