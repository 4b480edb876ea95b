"""What one Ray call costs on this machine: the pieces a raysession job is made of.

``python -m benchmarks.ray_calls`` starts its own local Ray and times, per call, the wall
time and the CPU seconds of the caller (this driver) and of each actor process: a round
trip to a sync actor, to an async actor (the session actor is one), two returns, passing a
ref to an async actor that awaits it or keeps it (Ray's borrower protocol), two calls in a
row, and a call left in flight. Quoted in ``benchmarks/README.md`` (issue 8's "where the
milliseconds go"). No raysession code runs here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil
import ray


@ray.remote(num_cpus=0)
class _Sync:
    def f(self, x: object = None) -> int:
        return os.getpid()

    def two(self) -> tuple[int, int]:
        return 1, 2


@ray.remote(num_cpus=0)
class _Async:
    async def f(self, x: object = None) -> int:
        return os.getpid()

    async def awaits(self, refs: list[ray.ObjectRef[int]]) -> int:
        await refs[0]
        return 1

    async def keeps(self, refs: list[ray.ObjectRef[int]]) -> int:
        self.kept = refs
        return 1


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main(calls: int = 2000) -> None:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    sync, asynchronous = _Sync.remote(), _Async.remote()  # type: ignore[attr-defined]
    actors = [psutil.Process(ray.get(a.f.remote())) for a in (sync, asynchronous)]
    me = psutil.Process()

    def measure(name: str, call: Callable[[], object]) -> None:
        for _ in range(100):
            call()
        before = [_cpu(p) for p in (me, *actors)]
        started = time.perf_counter()
        for _ in range(calls):
            call()
        wall = (time.perf_counter() - started) / calls * 1e3
        used = [(_cpu(p) - b) / calls * 1e3 for p, b in zip((me, *actors), before, strict=True)]
        print(
            f"{name:34s} wall {wall:.3f} ms  CPU ms: driver {used[0]:.3f}, "
            f"sync actor {used[1]:.3f}, async actor {used[2]:.3f}"
        )

    def awaits() -> None:
        ref = sync.f.remote()
        ray.get(ref)
        ray.get(asynchronous.awaits.remote([ref]))

    def keeps() -> None:
        ref = sync.f.remote()
        ray.get(ref)
        ray.get(asynchronous.keeps.remote([ref]))

    measure("sync actor call", lambda: ray.get(sync.f.remote()))
    measure("async actor call", lambda: ray.get(asynchronous.f.remote()))
    measure(
        "sync call, two returns", lambda: ray.get(list(sync.two.options(num_returns=2).remote()))
    )
    measure("sync call + async awaits its ref", awaits)
    measure("sync call + async keeps its ref", keeps)
    measure(
        "sync call + async call",
        lambda: (ray.get(sync.f.remote()), ray.get(asynchronous.f.remote())),
    )
    measure(
        "sync call + async call in flight",
        lambda: (asynchronous.f.remote(), ray.get(sync.f.remote())),
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
