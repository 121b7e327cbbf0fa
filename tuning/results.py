"""A point's results: its settings, whether it ran, and each repetition's figures (``tuning.csv``'s columns)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reports.intervals import finite, mean_ci
from reports.repeats import REPEATED
from tuning.grid import Value

# tuning.csv's columns after the settings
FIGURES = ("completed", "failed", *REPEATED, "capacity_rps")


@dataclass
class PointResult:
    name: str
    settings: dict[str, Value]
    # ok or failed
    status: str = "ok"
    reason: str = ""
    repeats: list[dict] = field(default_factory=list)

    @property
    def figures(self) -> dict[str, object]:
        """The repetitions' mean of each figure, and its 95% interval ``<key>_ci`` where there is one: one
        repetition's own (its summary's), or Student's t over two or more, as ``--repeat`` gives them."""
        out: dict[str, object] = {}
        for key in FIGURES:
            values = [r[key] for r in self.repeats if isinstance(r.get(key), int | float)]
            whole = bool(values) and len(values) == len(self.repeats)
            out[key] = sum(values) / len(values) if whole else None
            if whole and len(values) >= 2:
                out[f"{key}_ci"] = mean_ci(np.array(values, dtype=float), 0.95)
            elif whole and isinstance(self.repeats[0].get(f"{key}_ci"), list):
                out[f"{key}_ci"] = [finite(b) for b in self.repeats[0][f"{key}_ci"]]
        return out


def best_sentence(best: dict) -> str:
    """The best point in words, and whether these runs tell it from the next."""
    text = f"Best by {best['objective']}: {best['name']} ({best['value']:.4g})"
    if best.get("distinguishable") is False:
        text += f", not distinguishable from {best['next']} (their 95% intervals overlap)"
    elif best.get("distinguishable") is None and best.get("next"):
        text += f"; whether it beats {best['next']} is unknown (no interval)"
    return text + "."
