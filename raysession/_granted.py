"""How a session actor follows a job it granted a worker to.

The submitter sends a granted job straight to its worker (see
:meth:`raysession.Session._submit`) and tells the actor the refs (``sent``). The
actor then waits only for the job's small completion record: from the worker, or
from a submitter that read the result first and passed the record on with its next
call, whichever comes first. A worker that died or lacked a key means the job runs
again through the backend.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.exceptions import OwnerDiedError, RayActorError

from ._log import get_logger, ids
from ._session_records import JobRecord
from .backends.base import Backend, Delivery, Grant
from .errors import JobFailedError

logger = get_logger(__name__)

# How long the submitter of a granted job may take to send it to its worker.
DISPATCH_WAIT_S = 30.0


async def follow_granted(job: JobRecord, grant: Grant, backend: Backend) -> Delivery | None:
    """The job's delivery once its granted worker ran it, or ``None`` if it must run
    again through the backend (its worker died, or lacked a key). The grant is
    released either way.

    Raises:
        JobFailedError: the submitter never sent the job, or exited and took the
            result with it.
        asyncio.CancelledError: the job was stopped (its worker is stopped too).
    """
    spec = job.spec  # kept: the record drops its spec once the job is final
    assert spec is not None and job.sent is not None
    stop = lost = False
    try:
        try:
            refs = await asyncio.wait_for(job.sent, DISPATCH_WAIT_S)
        except TimeoutError:
            raise JobFailedError(
                f"Job {job.job_id} was granted a worker but its submitter never sent "
                "it (the submitting process may have exited)."
            ) from None
        if not refs:
            raise RayActorError()  # the submitter could not reach the worker
        done_ref, result_ref = refs
        if backend.completed(grant, await _completion(job, done_ref), job.run):
            job.delivered = True  # the submitter owns the result
            return Delivery([result_ref])
    except asyncio.CancelledError:
        stop = True
        raise
    except OwnerDiedError:
        raise JobFailedError(
            f"Job {job.job_id}: the process that submitted it exited; its result "
            "belonged to that process and is lost."
        ) from None
    except RayActorError:
        lost = True
        job.run.retries += 1
        logger.warning(
            "job %s lost its worker; running it again",
            job.job_id,
            **ids(spec.session_id, job.job_id),
        )
    finally:
        backend.release(spec, grant, stop=stop, lost=lost)
    return None


async def _completion(job: JobRecord, done_ref: ray.ObjectRef[Any]) -> Any:
    """A granted job's completion record: from its worker, or from its submitter."""
    job.reported = asyncio.get_running_loop().create_future()
    done = asyncio.ensure_future(done_ref)
    await asyncio.wait({done, job.reported}, return_when=asyncio.FIRST_COMPLETED)
    if done.done():
        return done.result()
    done.cancel()
    return job.reported.result()

