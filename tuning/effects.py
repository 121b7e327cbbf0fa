"""What each setting does: for a setting varied on its own, each of its other values against its first, as the
ratio of each figure (the "to" point's over the "from" point's), with an interval.

- One pair of points, one repetition each: a latency ratio's interval is a bootstrap of the two runs'
  requests, a throughput ratio's that of two Poisson rates (``reports.speedup``); the other figures have none.
- Several pairs (points that differ in the setting alone) or repetitions: the geometric mean of the ratios,
  pair by pair and repetition by repetition, with Student's t over their logarithms.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from reports.intervals import HEADLINE
from reports.load import ReportInputError, load_run
from reports.metrics import STATISTIC_OF
from reports.speedup import geometric_mean_ci, latency_ratios, throughput_ratios
from tuning.results import FIGURES, PointResult

if TYPE_CHECKING:
    from tuning.grid import Grid

LATENCIES = tuple(f"{stat}_{name}_ms" for name in HEADLINE for stat in STATISTIC_OF)
CI_LEVEL = 0.95
ONE_PAIR = (
    "one pair of runs: bootstrap of their requests (latency ratios), ratio of two Poisson rates (throughput ratios)"
)
ACROSS = "across {k} pairs of runs: the geometric mean of their ratios, Student's t over their logarithms"


def setting_effects(grid: Grid, results: list[PointResult], out: Path) -> dict[str, list[dict]]:
    """``tuning_summary.json``'s ``setting_effects``: per setting, one entry per value other than its first."""
    ok = [r for r in results if r.status == "ok"]
    effects: dict[str, list[dict]] = {}
    for setting in grid.varied:
        values = list(dict.fromkeys(p[setting] for p in grid.points))
        for other in values[1:]:
            pairs = [
                (a, b)
                for a in ok
                for b in ok
                if a.settings[setting] == values[0]
                and b.settings[setting] == other
                and all(a.settings[k] == b.settings[k] for k in a.settings if k != setting)
            ]
            if pairs:
                runs = [(ra, rb) for a, b in pairs for ra, rb in zip(a.repeats, b.repeats, strict=False)]
                effect = {"from": values[0], "to": other, "pairs": len(pairs), **_ratios(runs, out)}
                effects.setdefault(setting, []).append(effect)
    return effects


def _ratios(runs: list[tuple[dict, dict]], out: Path) -> dict:
    found: dict = {}
    for key in FIGURES:
        ratios = [float(b[key]) / float(a[key]) for a, b in runs if _positive(a.get(key)) and _positive(b.get(key))]
        if len(ratios) == len(runs):
            found[key] = float(ratios[0]) if len(ratios) == 1 else geometric_mean_ci(ratios, CI_LEVEL)[0]
    if len(runs) >= 2:
        for key in list(found):
            found[f"{key}_ci"] = geometric_mean_ci([float(b[key]) / float(a[key]) for a, b in runs], CI_LEVEL)[1]
        return {**found, "ci_level": CI_LEVEL, "ci_method": ACROSS.format(k=len(runs))}
    intervals = _one_pair(*runs[0], out)
    found.update({f"{key}_ci": intervals[f"{key}_ci"] for key in found if f"{key}_ci" in intervals})
    return {**found, "ci_level": CI_LEVEL, "ci_method": ONE_PAIR} if intervals else found


def _one_pair(a: dict, b: dict, out: Path) -> dict:
    """The intervals of one pair of runs, from their requests ({} when the runs' files are gone)."""
    try:
        rows_a, rows_b = (_requests(out / str(run["run"])) for run in (a, b))
    except (KeyError, ReportInputError):
        return {}
    duration_a, duration_b = (float(run.get("duration_s") or 0.0) for run in (a, b))
    return {
        **latency_ratios(rows_b, rows_a, LATENCIES, CI_LEVEL),
        **throughput_ratios(rows_b, duration_b, rows_a, duration_a, CI_LEVEL),
    }


def _requests(prefix: Path) -> pd.DataFrame:
    rows = load_run(str(prefix)).requests
    if rows is None:
        raise ReportInputError(f"{prefix}: no requests")
    return rows[rows["success"] & ~rows["cancelled"]]


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
