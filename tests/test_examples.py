"""Each script in examples/ runs at small size and prints what it promises."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, timeout: float = 240) -> str:
    # A separate process that starts its own local Ray, as the README's command does;
    # "local" keeps it from joining this test module's Ray, which a bare ray.init() would.
    env = {**os.environ, "RAY_ADDRESS": "local"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_parameter_sweep_example_runs_and_prints_a_summary():
    out = _run("parameter_sweep.py", "--qubits", "4", "--points", "40", "--tasks", "3")
    summary = r"session [0-9a-f]{32}: 3 jobs from 3 Ray tasks, [12] Aer workers on the shared pool"
    assert re.search(summary, out)
    assert "swept 40 parameter sets of efficient_su2(4, reps=2)" in out
    match = re.search(r"<H>: min (-?[\d.]+) at point \d+, max (-?[\d.]+)", out)
    assert match and float(match[1]) <= float(match[2])


def test_noisy_device_example_shows_the_devices_noise_on_a_ghz_state():
    out = _run("noisy_device.py", "--shots", "2000")
    assert re.search(r"session [0-9a-f]{32} on \S+: job [0-9a-f]{32}", out)
    match = re.search(r"GHZ outcomes 000 and 111: ([\d.]+)% of 2000 shots", out)
    assert match, out
    # Mostly GHZ, but not only: the device's noise shows.
    assert 50.0 < float(match[1]) < 100.0, out
    assert len(re.findall(r"^  [01]{3}: \d+$", out, re.M)) > 2, out


def test_bell_session_example_samples_only_00_and_11_and_estimates_zz_as_one():
    out = _run("bell_session.py", "--shots", "400")
    session = re.search(r"session ([0-9a-f]{32}) \(dedicated\) on aer_simulator", out)
    assert session, out
    listed = re.search(r"jobs in the session: ([0-9a-f]{32}), ([0-9a-f]{32})$", out, re.M)
    sampler_job = re.search(r"^sampler job ([0-9a-f]{32}): DONE$", out, re.M)
    estimator_job = re.search(r"^estimator job ([0-9a-f]{32}): DONE$", out, re.M)
    assert listed and sampler_job and estimator_job, out
    # The session lists both jobs, in submission order; none is the session's own id.
    assert (listed[1], listed[2]) == (sampler_job[1], estimator_job[1])
    assert session[1] not in (listed[1], listed[2])
    counts = ast.literal_eval(re.search(r"counts of 400 shots: (\{.*\})", out)[1])
    assert set(counts) == {"00", "11"} and sum(counts.values()) == 400, out
    zz = re.search(r"<ZZ> = (-?[\d.]+)", out)
    assert zz and float(zz[1]) == pytest.approx(1.0, abs=1e-9), out
    assert "only 00 and 11 measured: yes" in out


def test_vqe_example_reaches_the_heisenberg_rings_ground_energy_within_its_tolerance():
    out = _run("vqe.py", "--sites", "4", "--reps", "3", "--seed", "2", "--tol", "1e-6")
    assert "Heisenberg ring (periodic) of 4 sites, 12 Pauli terms" in out, out
    # The 4-site ring's ground energy is -8 (a singlet of energy -2 per bond pair).
    exact = re.search(r"exact ground energy \(numpy eigvalsh\): (-?[\d.]+)", out)
    assert exact and float(exact[1]) == pytest.approx(-8.0, abs=1e-9), out
    vqe = re.search(r"VQE energy: (-?[\d.]+) after (\d+) BFGS iterations", out)
    assert vqe and abs(float(vqe[1]) + 8.0) <= 1e-6, out
    error = re.search(r"error \|E - E0\| = ([\d.e+-]+), tolerance 1e-06: converged$", out, re.M)
    assert error and float(error[1]) <= 1e-6, out
    # One session ran every step: one job per energy+gradient evaluation.
    jobs = re.search(r"session [0-9a-f]{32}: (\d+) jobs, (\d+) energy\+gradient evaluations", out)
    assert jobs and int(jobs[1]) == int(jobs[2]) > int(vqe[2]) > 1, out


def test_batch_ray_wait_example_gathers_every_ghz_job_as_it_finishes():
    out = _run("batch_ray_wait.py", "--min-qubits", "2", "--max-qubits", "5", "--shots", "200")
    assert re.search(r"batch [0-9a-f]{32} \(batch\): 4 jobs submitted", out), out
    rows = re.findall(
        r"^  GHZ\((\d+)\) job [0-9a-f]{32}: 0\.\.0 (\d+), 1\.\.1 (\d+), other (\d+)$", out, re.M
    )
    assert sorted(int(n) for n, *_ in rows) == [2, 3, 4, 5], out
    for _, zeros, ones, other in rows:
        assert int(other) == 0 and int(zeros) + int(ones) == 200 and int(zeros) > 0 < int(ones)
    order = re.search(r"arrival order \(qubits\): \[([\d, ]+)\]", out)
    assert order and [int(n) for n in order[1].split(",")] == [int(n) for n, *_ in rows], out
    assert "4 of 4 jobs gathered with ray.wait; only 0..0 and 1..1 in every job: yes" in out
