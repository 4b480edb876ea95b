"""Rows of the results table, the table as text, and the JSON file of a run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Row", "format_table", "to_jsonable", "write_json"]

HEADERS = ("benchmark", "raysession", "raw Aer", "ratio/overhead", "target", "met?")


@dataclass(frozen=True)
class Row:
    """One line of the table: a raysession number, the raw-Aer number it is compared with, and
    the comparison against its target. The ``*_value`` fields are the numbers behind the text."""

    benchmark: str
    raysession: str
    raw: str
    ratio: str
    target: str
    met: bool | None
    """Whether the target was met; ``None`` where the row could not be measured."""
    raysession_value: float | None = None
    raw_value: float | None = None
    ratio_value: float | None = None
    """The number compared with the target."""
    available: bool = True
    """False where this raysession cannot run the measurement (the row says why)."""
    noisy: bool = False
    """True if other programs kept the machine busy while it was measured (see ``loads``)."""

    @classmethod
    def from_rates(
        cls, benchmark: str, ray_value: float, raw_value: float, unit: str, target: float
    ) -> Row:
        """A row comparing two rates (higher is better): met if raysession/raw >= ``target``."""
        ratio = ray_value / raw_value
        return cls(
            benchmark,
            f"{ray_value:,.1f} {unit}",
            f"{raw_value:,.1f} {unit}",
            f"{ratio:.3f}x",
            f">= {target}x",
            ratio >= target,
            ray_value,
            raw_value,
            ratio,
        )

    @classmethod
    def from_times(cls, benchmark: str, ray_s: float, raw_s: float, target_ms: float) -> Row:
        """A row comparing two times per job: met if raysession - raw <= ``target_ms``."""
        overhead_ms = (ray_s - raw_s) * 1e3
        return cls(
            benchmark,
            f"{ray_s * 1e3:.2f} ms",
            f"{raw_s * 1e3:.2f} ms",
            f"{overhead_ms:+.2f} ms",
            f"<= +{target_ms} ms",
            overhead_ms <= target_ms,
            ray_s * 1e3,
            raw_s * 1e3,
            overhead_ms,
        )

    @classmethod
    def unavailable(cls, benchmark: str, why: str, target: str) -> Row:
        """A row for a measurement this raysession cannot make."""
        return cls(benchmark, "n/a", "n/a", why, target, None, available=False)


def _met_text(row: Row) -> str:
    text = {True: "yes", False: "NO", None: "n/a"}[row.met]
    return f"{text} *" if row.noisy else text


def format_table(rows: list[Row]) -> str:
    """The rows as a Markdown table (readable as plain text too)."""
    cells = [HEADERS] + [
        (r.benchmark, r.raysession, r.raw, r.ratio, r.target, _met_text(r)) for r in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]

    def line(values: tuple[str, ...]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars, tuples and dataclasses made JSON-ready; NaN and
    infinities become ``None``."""
    if isinstance(value, Row):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the folder; the file appears whole or not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
