"""The quick benchmark run (issue #4) finishes and reports a number for every benchmark.

Speed is not asserted here: numbers belong in ``benchmarks/``. The run is a subprocess that
starts its own Ray (``ray.init(address="local", ...)``), apart from this module's.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.suite import BENCHMARKS
from raysession import EstimatorOptions

REPO_ROOT = Path(__file__).resolve().parent.parent


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_benchmark_run_reports_a_number_for_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    report = json.loads(out.read_text())

    assert set(report["benchmarks"]) == set(BENCHMARKS)
    for name, result in report["benchmarks"].items():
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["rows"], f"{name} has no rows"
    has_cache_option = "raysession" in EstimatorOptions.model_fields
    for row in report["table"]:
        if not row["available"]:
            # Only the cache-off loop may be missing, and only where raysession lacks the option.
            assert "circuit cache off" in row["benchmark"] and not has_cache_option, row
            continue
        assert _is_number(row["raysession_value"]), row
        assert _is_number(row["ratio_value"]), row
        assert row["raw_value"] is None or _is_number(row["raw_value"]), row
        if "Ray floor" in row["benchmark"]:
            assert row["met"] is None, row  # a floor is measured, not judged
        else:
            assert isinstance(row["met"], bool), row
    assert _is_number(report["duration_s"])
    assert report["machine"]["cpu_count"] >= 1
