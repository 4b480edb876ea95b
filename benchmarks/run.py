"""The benchmark runner: ``python -m benchmarks.run [--quick] [--only NAME] [--json PATH]``.

It starts the raw-Aer baseline process, then one local Ray (``ray.init(num_cpus=os.cpu_count())``)
and one :class:`~raysession.AerBackend` pool shared by every benchmark, runs the benchmarks one
at a time, prints the table and writes the JSON. The exit status is 1 if a benchmark failed
to run (missed targets are reported, not failures).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from traceback import format_exc
from typing import Any

import psutil
import ray

from raysession import AerBackend

from .baseline import BaselineProcess
from .machine import describe_machine
from .memory import ray_processes
from .report import Row, format_table, write_json
from .suite import BENCHMARKS, Context
from .workload import FULL, QUICK

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
NOISY_CORES = 0.25
"""Rows measured while other programs used more cores than this on average are starred."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="raysession vs raw qiskit_aer.primitives on this machine (issue #4).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke test, not a measurement"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these benchmarks (repeat or comma-separate): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"where to write results ({DEFAULT_JSON})"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    args.names = [n for n in BENCHMARKS if n in names] if names else list(BENCHMARKS)
    return args


def _say(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    num_cpus = os.cpu_count() or 1
    began = time.perf_counter()
    machine = describe_machine()
    logging.basicConfig(level=logging.WARNING)
    # The baseline starts before Ray, so that nothing of Ray's is in its environment.
    with BaselineProcess() as raw:
        baseline_info = raw.call("describe")
        if baseline_info["ray_imported"]:
            raise RuntimeError("the raw-Aer baseline process imported Ray")
        # Workers stay through the long raw-Aer sides (W6 reads the same processes throughout);
        # set before Ray starts, so the pool, whoever creates it, inherits it.
        os.environ.setdefault("RAYSESSION_WORKER_IDLE_S", "3600")
        # address="local": always a fresh Ray of our own, never a cluster another process runs.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
        try:
            backend = AerBackend()
            backend.warm_up(timeout=300)
            niceness = _match_niceness(raw)
            ctx = Context(sizes=sizes, backend=backend, raw=raw, num_cpus=num_cpus)
            results, rows, notes, failed = _run_all(ctx, args.names)
            backend.close()
        finally:
            ray.shutdown()
    duration = time.perf_counter() - began
    payload: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": {**machine, "load_average_end": list(os.getloadavg())},
        "baseline_process": baseline_info,
        "niceness": niceness,
        "num_workers": backend.num_workers,
        "sizes": asdict(sizes),
        "duration_s": duration,
        "table": rows,
        "benchmarks": results,
    }
    write_json(args.json, payload)
    _say("")
    _say(format_table(rows))
    _say("")
    if any(row.noisy for row in rows):
        _say(f"* other programs used more than {NOISY_CORES} cores while this was measured")
    for note in notes:
        _say(f"  {note}")
    _say(f"\n{payload['mode']} run took {duration:.0f} s; results in {args.json}")
    if failed:
        _say(f"FAILED to run: {', '.join(failed)}")
    return 1 if failed else 0


def _run_all(
    ctx: Context, names: list[str]
) -> tuple[dict[str, Any], list[Row], list[str], list[str]]:
    results: dict[str, Any] = {}
    rows: list[Row] = []
    notes: list[str] = []
    failed: list[str] = []
    for name in names:
        _say(f"running {name} ...")
        started = time.perf_counter()
        try:
            outcome = BENCHMARKS[name](ctx)
        except Exception as exc:  # one broken benchmark must not hide the others
            failed.append(name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": format_exc()}
            rows.append(Row(name, "error", "error", type(exc).__name__, "", None, available=False))
            _say(format_exc())
            continue
        wall = time.perf_counter() - started
        busiest = max((load.other_cores for load in outcome.loads.values()), default=0.0)
        noisy = busiest > NOISY_CORES
        outcome_rows = [replace(row, noisy=noisy) for row in outcome.rows]
        loads = {side: asdict(load) for side, load in outcome.loads.items()}
        results[name] = {"rows": outcome_rows, **outcome.data, "wall_s": wall, "loads": loads}
        rows.extend(outcome_rows)
        notes.extend(outcome.notes)
        others = ", ".join(f"{side} {load.other_cores:.2f}" for side, load in outcome.loads.items())
        notes.append(f"{name}: {wall:.1f} s; cores used by other programs: {others}")
        _say(f"  done in {wall:.1f} s (cores used by other programs: {others})")
    return results, rows, notes, failed


def _match_niceness(raw: BaselineProcess) -> dict[str, int]:
    """Give the baseline process the scheduling priority Ray gives its workers.

    Ray starts worker processes at niceness 15 (``RAY_worker_niceness``). On an idle machine
    that changes nothing; when other programs compete for the cores, a baseline at niceness
    0 would get more CPU than the Aer workers it is compared with.
    """
    workers = ray_processes("AerWorker")
    worker_nice = workers[0].nice() if workers else 0
    baseline = psutil.Process(raw.pid)
    if baseline.nice() < worker_nice:
        baseline.nice(worker_nice)
    return {"aer_workers": worker_nice, "baseline": baseline.nice(), "driver": os.nice(0)}


if __name__ == "__main__":
    sys.exit(main())
