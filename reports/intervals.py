"""How sure a figure is: confidence intervals for the summary's headline latency figures.

A single run's requests are taken as independent draws of the server's latency under that load
(the summary's ``ci_method`` says so): a percentile's interval comes from the order statistics
(distribution-free: ``scipy.stats.quantile_test``), a mean's from Student's t
(``scipy.stats.ttest_1samp``), a throughput's from the completions taken as a Poisson process, the
prefix-cache hit rate's from the ratio estimator's variance. Each is ``<key>_ci`` = [low, high] at ``ci_level``; a bound the data
cannot give (too few requests for a p99) is null.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

# the latency figures whose mean, median, p90 and p99 get intervals
HEADLINE = ("ttft", "tpot", "itl", "e2el")
SINGLE_RUN_METHOD = (
    "one run, requests taken as independent: order statistics (percentiles), Student's t (means), "
    "Poisson (throughputs, goodput), the ratio estimator (prefix-cache hit rate)"
)


def ci_level_error(level: float) -> str | None:
    """Why a confidence level cannot be used (None: it can)."""
    return None if 0 < level < 1 else f"--ci-level must be between 0 and 1 (say 0.95), got {level:g}"


def finite(value: object) -> float | None:
    """A figure or bound as JSON holds it: None for NaN, an infinity, or what is not a number (a bound the
    data cannot give, a figure a run lacks); True and False as 1 and 0."""
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) and math.isfinite(float(value)) else None


def statistic(q: float | None) -> Callable[..., Any]:
    """The q-th percentile (None: the mean) along an axis, as ``scipy.stats.bootstrap`` calls a statistic."""
    if q is None:
        return lambda x, axis=-1: np.mean(x, axis=axis)
    return lambda x, axis=-1: np.percentile(x, q, axis=axis)


def percentile_ci(values: np.ndarray, p: float, level: float) -> list[float | None]:
    """The distribution-free interval of the p-th percentile (``p`` in 0..100) from the order statistics."""
    # imported when a report is made, not when a run starts
    from scipy import stats

    if values.size == 0:
        return [None, None]
    interval = stats.quantile_test(values, q=0.0, p=p / 100).confidence_interval(confidence_level=level)
    return [finite(interval.low), finite(interval.high)]


def mean_ci(values: np.ndarray, level: float) -> list[float | None]:
    """Student's t interval of the mean (the mean of many requests is close to normal)."""
    if values.size < 2 or float(np.ptp(values)) == 0.0:
        only = float(values[0]) if values.size else math.nan
        return [finite(only), finite(only)] if values.size else [None, None]
    from scipy import stats

    interval = stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level=level)
    return [finite(interval.low), finite(interval.high)]


def intervals_ms(
    values_s: np.ndarray, name: str, level: float, percentiles: tuple[int, ...]
) -> dict[str, list[float | None]]:
    """``mean_<name>_ms_ci`` and ``median_…_ci``, ``p90_…_ci`` … (the given percentiles) for values in seconds
    (NaN left out)."""
    v = np.asarray(values_s, dtype=float)
    v = v[~np.isnan(v)] * 1000.0
    out = {f"mean_{name}_ms_ci": mean_ci(v, level)}
    for p in percentiles:
        out[f"{'median' if p == 50 else f'p{p}'}_{name}_ms_ci"] = percentile_ci(v, p, level)
    return out


def rate_ci(count: int, duration: float, level: float) -> list[float | None]:
    """A rate of ``count`` independent events over ``duration`` seconds: the exact Poisson (Garwood) interval."""
    if duration <= 0:
        return [None, None]
    from scipy import stats

    alpha = 1 - level
    low = stats.chi2.ppf(alpha / 2, 2 * count) / 2 if count > 0 else 0.0
    high = stats.chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2
    return [finite(low / duration), finite(high / duration)]


def total_rate_ci(values: np.ndarray, duration: float, level: float) -> list[float | None]:
    """A rate of ``sum(values)`` over ``duration``, the values carried by Poisson events (output tokens by
    completions): normal, with the compound Poisson variance ``sum(values²)``."""
    if duration <= 0 or values.size == 0:
        return [None, None]
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    total, spread = float(values.sum()), z * math.sqrt(float((values.astype(float) ** 2).sum()))
    return [max(0.0, (total - spread) / duration), (total + spread) / duration]


def ratio_of_sums_ci(numerator: np.ndarray, denominator: np.ndarray, value: float, level: float) -> list[float | None]:
    """A share ``sum(numerator) / sum(denominator)`` over requests (cached over prompt tokens) at ``value``:
    the ratio estimator's normal interval (its delta-method variance), within [0, 1]."""
    n = numerator.size
    if n < 2 or not math.isfinite(value) or float(denominator.sum()) <= 0:
        return [None, None]
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    mean_denominator = float(denominator.mean())
    residual = numerator.astype(float) - value * denominator.astype(float)
    se = math.sqrt(float(residual.var(ddof=1)) / n) / mean_denominator
    return [max(0.0, value - z * se), min(1.0, value + z * se)]
