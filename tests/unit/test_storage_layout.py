"""Storage without Ray: a job's record and chunks written and read back through any fsspec
filesystem: a plain directory, a ``file://`` URI, and fsspec's in-memory filesystem (the
object-store path: no rename, one put per file)."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.primitives import DataBin, PrimitiveResult, PubResult

from raysession._messages import JobInfo, JobMetrics, JobStatus
from raysession._storage import read_job, read_result, write_job
from raysession.backends._store import _write_chunk, storage_uri
from raysession.errors import ResultUnavailableError


def _result(value: float) -> PrimitiveResult:
    return PrimitiveResult([PubResult(DataBin(evs=np.array([value]), shape=(1,)))])


def _info(job_id: str, status: JobStatus = JobStatus.DONE) -> JobInfo:
    metrics = JobMetrics(created=1.0, sequence=0, num_chunks=1)
    return JobInfo(job_id=job_id, session_id="s", status=status, metrics=metrics)


@pytest.mark.parametrize("kind", ["directory", "file-uri", "memory"])
def test_a_stored_job_reads_back_through_each_kind_of_storage(tmp_path, kind):
    uri = {
        "directory": str(tmp_path),
        "file-uri": f"file://{tmp_path}",
        "memory": f"memory://raysession-{tmp_path.name}",
    }[kind]
    _write_chunk(uri, "j1", 0, _result(0.5))
    write_job(uri, _info("j1"), num_chunks=1, plan=None)
    stored = read_job("j1", uri)
    assert stored is not None and stored.info.status is JobStatus.DONE
    assert read_result(stored, uri)[0].data.evs.tolist() == [0.5]
    assert read_job("other", uri) is None


def test_a_done_job_whose_chunk_file_is_gone_is_reported_not_awaited(tmp_path):
    uri = str(tmp_path)
    write_job(uri, _info("j2"), num_chunks=1, plan=None)
    stored = read_job("j2", uri)
    assert stored is not None
    with pytest.raises(ResultUnavailableError, match=r"chunk-0\.pkl is missing"):
        read_result(stored, uri, wait_s=0.2)


def test_storage_is_a_directory_by_default_and_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("RAYSESSION_STORAGE", "off")
    assert storage_uri() is None
    monkeypatch.setenv("RAYSESSION_STORAGE", "relative/dir")
    assert storage_uri().endswith("/relative/dir") and storage_uri().startswith("/")
