"""W8: the session actor's memory and CPU around a 16 MB sampler result (issue #8).

Run: ``python -m benchmarks.big_result``. One Session runs a sampler job whose result is
16 MB (2000 parameter sets x 8192 shots of an 8-qubit ansatz, one byte per shot), twice:
once started at once (its submitter sends it to a worker) and once queued behind a job
(the session runs it and the node's courier delivers it). The session actor's RSS and CPU
seconds are read with psutil before and after each; neither should grow with the result.
"""

from __future__ import annotations

import json
import os
import time

import psutil
import ray
from qiskit.circuit.library import efficient_su2

from raysession import AerBackend, SamplerV2, Session

from .workload import sweep_values


def _session_actor(driver: psutil.Process) -> psutil.Process:
    found = [p for p in driver.children(recursive=True) if "SessionActor" in " ".join(p.cmdline())]
    if len(found) != 1:
        raise RuntimeError(f"expected one session actor process, found {len(found)}")
    return found[0]


def _reading(actor: psutil.Process) -> dict[str, float]:
    cpu = actor.cpu_times()
    return {"rss_mb": actor.memory_info().rss / 2**20, "cpu_s": cpu.user + cpu.system}


def main() -> None:
    os.environ.setdefault("RAYSESSION_WORKER_IDLE_S", "3600")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False)
    circuit = efficient_su2(8, reps=1)
    circuit.measure_all()
    values = sweep_values(2000, circuit.num_parameters)
    backend = AerBackend()
    backend.warm_up()
    out: dict[str, object] = {}
    with Session(backend=backend) as session:
        sampler = SamplerV2(mode=session, options={"raysession": {"chunk_size": 100_000}})
        sampler.run([(circuit, values[:2])], shots=8).result()  # warm
        actor = _session_actor(psutil.Process())
        for label in ("granted", "queued"):
            before = _reading(actor)
            start = time.perf_counter()
            if label == "queued":
                first = sampler.run([(circuit, values[:2])], shots=8)
                job = sampler.run([(circuit, values)], shots=8192)
                first.result()
            else:
                job = sampler.run([(circuit, values)], shots=8192)
            result = job.result()
            seconds = time.perf_counter() - start
            after = _reading(actor)
            size = result[0].data.meas.array.nbytes
            out[label] = {
                "result_mb": size / 2**20,
                "granted": job._granted,
                "seconds": seconds,
                "actor_rss_mb_before": before["rss_mb"],
                "actor_rss_mb_after": after["rss_mb"],
                "actor_cpu_s_during": after["cpu_s"] - before["cpu_s"],
            }
            print(
                f"{label}: result {size / 2**20:.1f} MB in {seconds:.1f} s; session actor RSS "
                f"{before['rss_mb']:.1f} -> {after['rss_mb']:.1f} MB, CPU "
                f"{after['cpu_s'] - before['cpu_s']:.3f} s during the job"
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
