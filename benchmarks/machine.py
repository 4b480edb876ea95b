"""The machine a run measures: what it is, and how much CPU other processes take from it meanwhile.

Numbers taken while something else keeps the cores busy are not comparable, so the runner
wraps each benchmark in a :class:`LoadMonitor` and reports the cores other programs used.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import qiskit
import qiskit_aer
import ray

import raysession

__all__ = ["LoadMonitor", "OtherLoad", "describe_machine"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _raysession_source() -> dict[str, str | None]:
    """Where the measured raysession was imported from, and its git commit if it is a checkout
    (``+dirty`` when ``raysession/`` has uncommitted changes)."""
    root = Path(raysession.__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if commit is not None and git("status", "--porcelain", "--", "raysession"):
        commit += "+dirty"
    return {"path": str(root), "commit": commit}


def describe_machine() -> dict[str, Any]:
    """CPU count and model, memory, versions of Python and the libraries (and raysession's git
    commit), the load average and the date (UTC)."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_total_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "qiskit": qiskit.__version__,
        "qiskit_aer": qiskit_aer.__version__,
        "numpy": np.__version__,
        "raysession": raysession.__version__,
        "raysession_source": _raysession_source(),
        "load_average": list(os.getloadavg()),
    }


def _busy_cpu_s() -> tuple[float, float]:
    """CPU seconds all processes have run so far, and seconds stolen by the hypervisor."""
    times = psutil.cpu_times()
    busy = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
    return busy, getattr(times, "steal", 0.0)


def _own_cpu_s() -> dict[tuple[int, float], float]:
    """CPU seconds used so far by this process and each process it started (Ray, its workers,
    the baseline), keyed by pid and start time."""
    me = psutil.Process()
    used = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                used[(proc.pid, proc.create_time())] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return used


def _own_cpu_delta(
    before: dict[tuple[int, float], float], after: dict[tuple[int, float], float]
) -> float:
    """CPU seconds this run used between two snapshots.

    A process that ended in between is not counted for its last moments (its time is gone
    with it), so on a quiet machine a little of this run's work may show as others' work.
    """
    return sum(used - before.get(key, 0.0) for key, used in after.items())


@dataclass(frozen=True)
class OtherLoad:
    """How busy the machine was with work that is not this run's, over one interval."""

    wall_s: float
    """Length of the interval."""
    other_cores: float
    """Cores other processes kept busy, on average (0 on a quiet machine)."""
    steal_cores: float
    """Cores the hypervisor took away, on average."""


class LoadMonitor:
    """Measures the CPU that processes outside this run use while a benchmark runs.

    Example:
        >>> with LoadMonitor() as monitor:  # doctest: +SKIP
        ...     run_benchmark()
        >>> monitor.result.other_cores  # doctest: +SKIP
        0.02
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, float, dict[tuple[int, float], float]] | None = None
        self.result: OtherLoad | None = None

    def __enter__(self) -> LoadMonitor:
        busy, steal = _busy_cpu_s()
        self._start = (time.monotonic(), busy, steal, _own_cpu_s())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        started, busy0, steal0, own0 = self._start
        busy, steal = _busy_cpu_s()
        own = _own_cpu_s()
        wall = max(time.monotonic() - started, 1e-9)
        other = max(0.0, (busy - busy0) - _own_cpu_delta(own0, own))
        self.result = OtherLoad(
            wall_s=wall, other_cores=other / wall, steal_cores=(steal - steal0) / wall
        )
