"""Each script in examples/ runs at small size and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
