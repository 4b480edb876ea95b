"""The ``raysession`` command: list, show, close and cancel sessions, show a job, see and
stop the worker pool, on a Ray cluster that is already running.

It connects to Ray and never starts it; reading (``list``, ``show``, ``job``, ``pool``)
starts no worker. Exit codes: 0 done, 1 not found, 2 bad usage, 3 cannot connect.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import click
import ray

from . import __version__
from ._admin import (
    close_all_sessions,
    end_session,
    find_job,
    list_sessions,
    session_details,
    session_jobs,
    this_user,
)
from ._lifecycle import SessionState
from ._storage import cleanup_storage, read_job, read_session
from ._tables import job_fields, jobs_table, session_fields, sessions_table, table, worker_row
from .backends import PoolStatus, pool_status, shutdown_pool
from .backends._store import storage_uri
from .errors import SessionNotFoundError

NOT_FOUND = 1
CANNOT_CONNECT = 3
# Seconds to reach the address before asking Ray to connect (Ray itself waits minutes).
_PROBE_S = 5.0

F = TypeVar("F", bound=Callable[..., Any])


class NotFound(click.ClickException):
    """A session or job that is not (or no longer) on the cluster: exit code 1."""

    exit_code = NOT_FOUND


class CannotConnect(click.ClickException):
    """No Ray cluster answers at the address: exit code 3."""

    exit_code = CANNOT_CONNECT


def _options(func: F) -> F:
    """The options every command takes: ``--address`` and ``--json``."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
    )(func)
    return click.option(
        "--address",
        default=None,
        metavar="ADDRESS",
        help="The Ray cluster's address (host:port of its GCS). "
        "Default: $RAY_ADDRESS, else auto (a Ray running on this machine).",
    )(func)  # type: ignore[no-any-return]


def connect(address: str | None) -> str:
    """Connect this process to a running Ray cluster; never start one.

    Raises:
        CannotConnect: no Ray answers at the address (or it refused this process's token).
    """
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    if ray.is_initialized():
        return address
    if address == "local":
        raise CannotConnect("--address local would start a new Ray; give a running cluster's.")
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=_PROBE_S).close()
        except (OSError, ValueError) as exc:
            raise CannotConnect(f"Cannot reach a Ray cluster at {address}: {exc}") from exc
    logging.getLogger("ray").setLevel(logging.ERROR)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... when it cannot
        message = f"Cannot connect to a Ray cluster at {address}: {exc}{_hint(exc)}"
        raise CannotConnect(message) from exc
    return address


def _hint(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if type(exc).__name__ != "AuthenticationError":
        return ""
    return (
        "\nThe cluster uses token authentication: set RAY_AUTH_MODE=token and give its token "
        "(~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)."
    )


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


# ------------------------------------------------------------------ commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="raysession")
def main() -> None:
    """Look at and act on the raysession sessions, jobs and worker pool of a running Ray
    cluster.

    Exit codes: 0 done, 1 not found, 2 bad usage, 3 cannot connect to Ray.
    """


@main.command("list", short_help="List your sessions (--all-users: everyone's).")
@click.option(
    "--state",
    type=click.Choice([s.value for s in SessionState]),
    help="Only sessions in this state.",
)
@click.option("--all-users", is_flag=True, help="Every user's sessions, not only yours.")
@_options
def list_command(address: str | None, as_json: bool, state: str | None, all_users: bool) -> None:
    """List your sessions (and batches), oldest first; --all-users lists everyone's."""
    connect(address)
    sessions = list_sessions(state, all_users=all_users)
    if as_json:
        _echo_json([s.model_dump(mode="json") for s in sessions])
    elif sessions:
        click.echo(sessions_table(sessions))
    else:
        whose = (
            "on the cluster" if all_users else f"of user {this_user()} (--all-users: everyone's)"
        )
        click.echo(f"No sessions {whose}.")


@main.command(short_help="Show a session and its jobs.")
@click.argument("session_id")
@_options
def show(address: str | None, as_json: bool, session_id: str) -> None:
    """Show a session's details and its jobs, in submission order."""
    connect(address)
    try:
        details = session_details(session_id)
        jobs = session_jobs(session_id)
    except SessionNotFoundError as exc:
        stored = read_session(session_id)  # it ended: what it stored
        if stored is None:
            raise NotFound(exc.message) from exc
        details = stored[0]
        jobs = [found.info for found in map(read_job, stored[1]) if found is not None]
    if as_json:
        _echo_json(
            {
                "session": details.model_dump(mode="json"),
                "jobs": [j.model_dump(mode="json") for j in jobs],
            }
        )
        return
    click.echo(session_fields(details))
    click.echo("")
    click.echo(jobs_table(jobs) if jobs else "No job records.")


@main.command(short_help="Close a session, or all yours (--all).")
@click.argument("session_id", required=False)
@click.option("--all", "close_all", is_flag=True, help="Close all your open sessions.")
@click.option("--all-users", is_flag=True, help="With --all: every user's sessions.")
@_options
def close(
    address: str | None, as_json: bool, session_id: str | None, close_all: bool, all_users: bool
) -> None:
    """Close SESSION_ID (or, with --all, your open sessions): no new jobs; queued and
    running jobs finish."""
    if all_users and not close_all:
        raise click.UsageError("--all-users goes with --all.")
    if (session_id is None) == (not close_all):
        raise click.UsageError("Give a SESSION_ID or --all (not both).")
    connect(address)
    if close_all:
        closed = close_all_sessions(all_users=all_users)
        if as_json:
            _echo_json([s.model_dump(mode="json") for s in closed])
        elif closed:
            click.echo(f"Closed {len(closed)} session(s):")
            click.echo(sessions_table(closed))
        else:
            click.echo("No open sessions to close.")
        return
    assert session_id is not None
    _end(session_id, as_json, cancel=False)


@main.command(short_help="Cancel a session and its queued jobs.")
@click.argument("session_id")
@_options
def cancel(address: str | None, as_json: bool, session_id: str) -> None:
    """Cancel SESSION_ID: no new jobs, queued jobs cancelled; a running job finishes."""
    connect(address)
    _end(session_id, as_json, cancel=True)


def _end(session_id: str, as_json: bool, *, cancel: bool) -> None:
    try:
        details = end_session(session_id, cancel=cancel)
    except SessionNotFoundError as exc:
        raise NotFound(exc.message) from exc
    if as_json:
        _echo_json(details.model_dump(mode="json"))
    else:
        verb = "Cancelled" if cancel else "Closed"
        click.echo(f"{verb} session {session_id}: now {details.state.value}.")


@main.command(short_help="Show a job.")
@click.argument("job_id")
@_options
def job(address: str | None, as_json: bool, job_id: str) -> None:
    """Show a job: status, times, chunks, error (from its live session, else storage)."""
    connect(address)
    try:
        _, info = find_job(job_id)
    except SessionNotFoundError as exc:
        stored = read_job(job_id)
        if stored is None:
            raise NotFound(f"{exc.message} It is not in storage ({storage_uri()}) either.") from exc
        info = stored.info
    if as_json:
        _echo_json(info.model_dump(mode="json"))
        return
    click.echo(job_fields(info))


@main.group(
    invoke_without_command=True, short_help="Show the worker pool; `pool shutdown` stops it."
)
@_options
@click.pass_context
def pool(ctx: click.Context, address: str | None, as_json: bool) -> None:
    """Show the cluster's Aer worker pool: workers by shape, busy or idle, the leases
    waiting for them, and the circuit caches. Starts nothing."""
    if ctx.invoked_subcommand is not None:
        return
    connect(address)
    status = pool_status()
    if as_json:
        _echo_json(_pool_json(status))
        return
    if not status.running:
        click.echo("No worker pool is running (it starts with the first job).")
        return
    shapes = "; ".join(
        f"{shape}: {c['busy']} busy, {c['idle']} idle, {c['starting']} starting"
        for shape, c in status.by_shape().items()
    )
    click.echo(f"Workers: {len(status.workers)}" + (f" ({shapes})" if shapes else ""))
    click.echo(f"Waiting leases: {status.num_waiting}")
    click.echo(f"Circuit cache: {status.num_cached_circuits} circuits, {status.cache_bytes} bytes")
    if status.workers:
        click.echo("")
        click.echo(
            table(
                ["WORKER", "SHAPE", "STATE", "SESSION", "NODE", "CIRCUITS", "CACHE_BYTES"],
                [worker_row(w) for w in status.workers],
            )
        )
    if status.waiting:
        click.echo("")
        click.echo(table(["SESSION", "WAITING"], sorted(status.waiting.items())))


def _pool_json(status: PoolStatus) -> dict[str, Any]:
    return {
        **status.model_dump(mode="json"),
        "by_shape": status.by_shape(),
        "num_waiting": status.num_waiting,
        "num_cached_circuits": status.num_cached_circuits,
        "cache_bytes": status.cache_bytes,
    }


@pool.command(short_help="Stop the worker pool and its workers now.")
@_options
@click.pass_context
def shutdown(ctx: click.Context, address: str | None, as_json: bool) -> None:
    """Stop the worker pool and its workers now; they start again with the next job."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    connect(address or parent.get("address"))
    as_json = as_json or bool(parent.get("as_json"))
    status = pool_status()
    workers, running = len(status.workers), status.running
    if running:
        shutdown_pool()
    if as_json:
        _echo_json({"stopped": running, "workers": workers})
    elif running:
        click.echo(f"Stopped the worker pool and its {workers} worker(s).")
    else:
        click.echo("No worker pool is running.")


@main.command(short_help="Remove stored jobs past their retention or the size bound.")
@click.option(
    "--retention",
    default=None,
    metavar="DURATION",
    help="Keep stored jobs this long, such as 12h or 7d. "
    "Default: $RAYSESSION_STORAGE_RETENTION, else 7d.",
)
@click.option(
    "--max-bytes",
    type=int,
    default=None,
    help="Then remove the oldest until at most this many bytes are kept. "
    "Default: $RAYSESSION_STORAGE_MAX_BYTES, else 10 GiB.",
)
@click.option(
    "--storage",
    default=None,
    metavar="URI",
    help="A directory or URI. Default: $RAYSESSION_STORAGE, else ~/.raysession/storage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a summary.")
def cleanup(
    retention: str | None, max_bytes: int | None, storage: str | None, as_json: bool
) -> None:
    """Clean up RAYSESSION_STORAGE now (sessions also do it as they end, hourly at most).
    Needs no Ray cluster."""
    try:
        report = cleanup_storage(retention=retention, max_bytes_kept=max_bytes, storage=storage)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if as_json:
        _echo_json(report.model_dump(mode="json"))
        return
    click.echo(
        f"removed {report.jobs_removed} jobs, {report.segments_removed} result segments "
        f"and {report.sessions_removed} sessions, "
        f"{report.bytes_freed} bytes; {report.bytes_kept} bytes kept"
    )
