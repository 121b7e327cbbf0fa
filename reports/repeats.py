"""``--repeat K``: each repetition's headline figures (``repeats``) and, for a run that repeated one load,
the headline figures as the mean of the repetitions' with a Student's t interval over them (``<key>_ci``).

A repetition's figures vary with everything that varies between runs (the server's state, the machine,
the order of the requests), which a single run's order-statistic interval cannot see: these intervals
are the honest ones for "what would another run say".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from reports.intervals import HEADLINE, finite, mean_ci
from reports.metrics import summarize

REPEATED = (
    *(f"{stat}_{name}_ms" for name in HEADLINE for stat in ("mean", "median", "p90", "p99")),
    "request_throughput",
    "output_throughput",
    "request_goodput",
    "prefix_cache_hit_rate",
)


def across_repeats_method(k: int) -> str:
    return f"across {k} repetitions: each headline figure the mean of theirs, Student's t over them"


def repeats_summary(rows: pd.DataFrame, slo: Mapping[str, float] | None, level: float, one_load: bool) -> dict:
    """``repeats`` (one object per repetition) and, when the repetitions are of one load, the headline figures
    and their intervals across them; {} for a run without --repeat."""
    if "repeat" not in rows or not rows["repeat"].notna().any():
        return {}
    per = []
    for number, part in rows[rows["repeat"].notna()].groupby("repeat"):
        figures = summarize(part, None, slo, None, None, level)
        levels = sorted({int(v) for v in part["level"] if str(v).strip()})
        per.append({"repeat": int(number), "levels": levels, **{k: figures.get(k) for k in REPEATED if k in figures}})
    out: dict = {"repeats": per}
    if one_load and len(per) >= 2:
        for key in REPEATED:
            values = np.array([p[key] for p in per if finite(p.get(key)) is not None], dtype=float)
            if values.size == len(per):
                out[key], out[f"{key}_ci"] = float(values.mean()), mean_ci(values, level)
        out["ci_method"] = across_repeats_method(len(per))
    return out
