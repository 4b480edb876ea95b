"""A job's progress: chunks done of chunks planned, and a bar that follows it.

The bar is tqdm's (``tqdm.auto``: text in a terminal, a widget in Jupyter); inside a Ray
task or actor it is Ray's ``tqdm_ray``, which the driver draws. It is shown only when
the output is interactive (a terminal or a notebook), so logs and CI output stay clean.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

# Seconds between two looks at a job's progress while a bar follows it.
POLL_S = 0.25


@dataclass(frozen=True)
class JobProgress:
    """How far a job is: ``done`` of its ``total`` chunks ran (``total`` is 1 for a job
    that is not split)."""

    done: int
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def is_interactive() -> bool:
    """True when a person watches the output: a terminal on stderr, or a notebook."""
    if "ipykernel" in sys.modules:
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _bar(total: int, description: str) -> Any:
    if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
        from ray.experimental.tqdm_ray import tqdm as ray_tqdm

        return ray_tqdm(total=total, desc=description)
    from tqdm.auto import tqdm

    # A terminal that reports no size (a bare pseudo-terminal) would hide the bar.
    size = shutil.get_terminal_size((0, 0))
    ncols, nrows = (None, None) if size.columns and size.lines else (80, 24)
    return tqdm(total=total, desc=description, unit="chunk", ncols=ncols, nrows=nrows)


def follow(
    ref: ray.ObjectRef[Any],
    progress: Callable[[], JobProgress],
    description: str,
    timeout: float | None,
) -> None:
    """Wait until ``ref`` is ready (or ``timeout`` passes), drawing a bar of ``progress``
    when the output is interactive; without one, just wait."""
    if not is_interactive():
        ray.wait([ref], timeout=timeout)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    now = progress()
    bar = _bar(now.total, description)
    shown = 0
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait([ref], timeout=POLL_S if left is None else min(POLL_S, left))
            now = progress()
            if now.total != bar.total:
                bar.total = now.total
            if now.done > shown:
                bar.update(now.done - shown)
                shown = now.done
            if ready or left == 0.0:
                return
    finally:
        bar.close()
