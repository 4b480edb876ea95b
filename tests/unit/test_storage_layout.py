"""Storage without Ray: a job's record and chunks written and read back through any fsspec
filesystem: a plain directory, a ``file://`` URI, and fsspec's in-memory filesystem (the
object-store path: no rename, one put per file)."""

from __future__ import annotations

import os
import pickle
import shutil
import time

import numpy as np
import pytest
from qiskit.primitives import DataBin, PrimitiveResult, PubResult

from raysession._messages import JobInfo, JobMetrics, JobStatus
from raysession._storage import StoredJob, cleanup_storage, read_job, read_result, write_job
from raysession.backends import _store
from raysession.backends._store import (
    INLINE_WRITE_BYTES,
    _write_chunk,
    flush,
    read_place,
    storage_uri,
    write_chunk,
)
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


def test_a_small_local_result_is_appended_to_a_segment_and_read_back_from_its_place(tmp_path):
    uri = str(tmp_path)
    places = [write_chunk(uri, f"s{i}", 0, _result(i / 10)) for i in range(3)]
    # One segment of this process, the results one after another; no job directory.
    names = {place.rsplit(":", 2)[0] for place in places}
    assert len(names) == 1 and not (tmp_path / "jobs").exists()
    offsets = [int(place.rsplit(":", 2)[1]) for place in places]
    assert offsets[0] == 0 and offsets == sorted(offsets) and len(set(offsets)) == 3
    for i, place in enumerate(places):
        write_job(uri, _info(f"s{i}"), num_chunks=1, plan=None, places=[place])
        stored = read_job(f"s{i}", uri)
        assert stored is not None and stored.places == (place,)
        assert read_result(stored, uri, wait_s=0)[0].data.evs.tolist() == [i / 10]


def test_a_large_or_remote_result_goes_to_its_chunk_file_and_records_no_place(tmp_path):
    memory = f"memory://raysession-{tmp_path.name}"
    assert write_chunk(memory, "m1", 0, _result(0.25)) == ""
    evs = np.zeros(INLINE_WRITE_BYTES)
    big = PrimitiveResult([PubResult(DataBin(evs=evs, shape=evs.shape))])
    assert write_chunk(str(tmp_path), "b1", 0, big) == ""
    flush()
    for uri, job_id, value in [(memory, "m1", 0.25), (str(tmp_path), "b1", 0.0)]:
        write_job(uri, _info(job_id), num_chunks=1, plan=None, places=[""])
        stored = read_job(job_id, uri)
        assert stored is not None and stored.places == ()
        assert read_result(stored, uri, wait_s=5)[0].data.evs[0] == value


def test_a_removed_segment_is_reported_and_never_written_again_under_its_name(tmp_path):
    uri = str(tmp_path)
    first = write_chunk(uri, "r1", 0, _result(1.0))
    segment = tmp_path / "segments" / first.rsplit(":", 2)[0]
    write_job(uri, _info("r1"), num_chunks=1, plan=None, places=[first])
    segment.unlink()  # cleanup removed it while this process still appends
    second = write_chunk(uri, "r2", 0, _result(2.0))
    assert second.rsplit(":", 2)[0] != segment.name and not segment.exists()
    stored = read_job("r1", uri)
    assert stored is not None
    with pytest.raises(ResultUnavailableError, match=r"segment .* was removed"):
        read_result(stored, uri, wait_s=0)
    # The whole segments directory removed: a new one is made.
    shutil.rmtree(tmp_path / "segments")
    third = write_chunk(uri, "r3", 0, _result(3.0))
    assert pickle.loads(read_place(uri, third))[0].data.evs.tolist() == [3.0]


def test_a_segment_is_replaced_after_its_size_bound(tmp_path, monkeypatch):
    uri = str(tmp_path)
    first = write_chunk(uri, "z1", 0, _result(1.0))
    monkeypatch.setattr(_store, "SEGMENT_MAX_BYTES", int(first.rsplit(":", 2)[2]) * 2)
    second = write_chunk(uri, "z2", 0, _result(2.0))
    third = write_chunk(uri, "z3", 0, _result(3.0))
    assert first.rsplit(":", 2)[0] == second.rsplit(":", 2)[0] != third.rsplit(":", 2)[0]
    assert third.rsplit(":", 2)[1] == "0"


def test_cleanup_removes_a_segment_by_its_age_and_counts_it(tmp_path):
    uri = str(tmp_path)
    old = write_chunk(uri, "c1", 0, _result(1.0))
    segment = tmp_path / "segments" / old.rsplit(":", 2)[0]
    write_job(uri, _info("c1"), num_chunks=1, plan=None, places=[old])
    week_ago = time.time() - 7 * 86_400
    os.utime(segment, (week_ago, week_ago))
    report = cleanup_storage(retention="3d", max_bytes_kept=10**9, storage=uri)
    assert report.segments_removed == 1 and report.jobs_removed == 0
    assert not segment.exists() and read_job("c1", uri) is not None


def test_a_record_in_the_layout_before_segments_is_still_read(tmp_path):
    uri = str(tmp_path)
    _write_chunk(uri, "o1", 0, _result(0.75))
    record = StoredJob(info=_info("o1"), num_chunks=1, joined=False)
    (tmp_path / "jobs" / "o1" / "record.json").write_text(record.model_dump_json())
    stored = read_job("o1", uri)
    assert stored == record
    assert read_result(stored, uri, wait_s=0)[0].data.evs.tolist() == [0.75]


def test_a_record_is_written_in_place_replaced_whole_and_a_torn_one_reads_as_absent(tmp_path):
    uri = str(tmp_path)
    write_job(uri, _info("w1", JobStatus.ERROR), num_chunks=1, plan=None)  # makes jobs/
    write_job(uri, _info("w2", JobStatus.ERROR), num_chunks=1, plan=None)  # written in place
    assert read_job("w2", uri).info.status is JobStatus.ERROR
    write_job(uri, _info("w2"), num_chunks=1, plan=None)  # there already: replaced
    assert read_job("w2", uri).info.status is JobStatus.DONE
    path = tmp_path / "jobs" / "w2.json"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # as a reader could meet it mid-write
    assert read_job("w2", uri) is None
    assert not list((tmp_path / "jobs").glob("*.tmp"))
