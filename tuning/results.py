"""A point's results: its settings, whether it ran, and each repetition's figures (``tuning.csv``'s columns)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.repeats import REPEATED
from tuning.grid import Value

FIGURES = ("completed", "failed", *REPEATED, "capacity_rps")  # tuning.csv's columns after the settings


@dataclass
class PointResult:
    name: str
    settings: dict[str, Value]
    status: str = "ok"  # ok or failed
    reason: str = ""
    repeats: list[dict] = field(default_factory=list)

    @property
    def figures(self) -> dict[str, float | None]:
        """The repetitions' mean of each figure."""
        out: dict[str, float | None] = {}
        for key in FIGURES:
            values = [r[key] for r in self.repeats if isinstance(r.get(key), int | float)]
            out[key] = sum(values) / len(values) if values and len(values) == len(self.repeats) else None
        return out
