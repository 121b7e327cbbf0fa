"""The prefix cache's speed-up: a ``--sweep prefix-tokens:0,P`` run's unshared level against each shared one.

Each figure is a ratio "how many times faster": the unshared level's latency over the shared level's
(mean, p50, p90, p99 TTFT and mean E2E), the shared level's throughput over the unshared level's.
Intervals (``<figure>_ci`` at the summary's ``ci_level``): a latency ratio's from a bootstrap of each
level's requests (``scipy.stats.bootstrap``, percentile method); a throughput ratio's from the ratio of
two Poisson rates (the shared level's share of both levels' requests, an exact binomial interval), which
is wide for a closed loop, whose completions are steadier than Poisson's; output throughput's scales that
by the ratio of the levels' mean output lengths, taken as fixed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from reports.intervals import finite, mean_ci, statistic
from reports.metrics import latency_figure, latency_values

LATENCY_RATIOS = ("mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms", "mean_e2el_ms")
THROUGHPUT_RATIOS = ("request_throughput", "output_throughput")
SPEEDUP_METHOD = (
    "one run: bootstrap of each level's requests (latency ratios); ratio of two Poisson rates, "
    "exact binomial (throughput ratios)"
)
REPEATED_METHOD = (
    "across {k} repetitions: the geometric mean of each repetition's ratio (its unshared and shared "
    "levels), Student's t over their logarithms"
)
BOOTSTRAP_RESAMPLES = 2000
# values a side the bootstrap resamples (pooled ITL gaps are sampled down to it, seeded)
BOOTSTRAP_CAP = 20_000


def prefix_cache_speedup(rows: pd.DataFrame, levels: list[dict], level: float) -> dict:
    """``{"prefix_cache_speedup": {...}}`` for a run with a prefix-tokens level of 0 and shared ones, else {}:
    the most shared level's ratios at the top, every shared level's in ``by_level``."""
    swept = [lv for lv in levels if lv.get("kind") == "prefix-tokens"]
    bases = [lv for lv in swept if lv.get("value") == 0]
    shared = sorted({lv["value"] for lv in swept if lv.get("value")})
    if not bases or not shared:
        return {}
    # --repeat: each repetition's ratio, and an interval across them
    if len(bases) >= 2:
        by_level = [_across_repeats(rows, bases, [lv for lv in swept if lv["value"] == v], level) for v in shared]
        method = REPEATED_METHOD.format(k=len(bases))
    else:
        by_level = [_against(rows, bases[0], lv, level) for lv in swept if lv["value"] in shared]
        method = SPEEDUP_METHOD
    most = max(by_level, key=lambda one: one["prefix_tokens"])
    return {"prefix_cache_speedup": {**most, "ci_method": method, "by_level": by_level}}


def _ok(rows: pd.DataFrame, number: int) -> pd.DataFrame:
    mine = rows[rows["level"].astype(str) == str(number)]
    return mine[mine["success"] & ~mine["cancelled"]]


def _against(rows: pd.DataFrame, base: dict, shared: dict, level: float) -> dict:
    unshared_rows, shared_rows = _ok(rows, base["level"]), _ok(rows, shared["level"])
    out: dict = {
        "prefix_tokens": int(shared["value"]),
        "unshared_level": base["level"],
        "shared_level": shared["level"],
    }
    out.update(latency_ratios(unshared_rows, shared_rows, LATENCY_RATIOS, level))
    t_u, t_s = float(base.get("duration_s") or 0.0), float(shared.get("duration_s") or 0.0)
    out.update(throughput_ratios(shared_rows, t_s, unshared_rows, t_u, level))
    return out


def latency_ratios(a: pd.DataFrame, b: pd.DataFrame, figures: Iterable[str], level: float) -> dict:
    """Each latency figure (``p99_ttft_ms`` ...) of requests ``a`` over that of requests ``b``, and its
    bootstrap interval (``<figure>_ci``)."""
    out: dict = {}
    for figure in figures:
        name, q = latency_figure(figure)
        out[figure], out[f"{figure}_ci"] = latency_ratio(bootstrap_values(a, name), bootstrap_values(b, name), q, level)
    return out


def throughput_ratios(a: pd.DataFrame, a_s: float, b: pd.DataFrame, b_s: float, level: float) -> dict:
    """Request and output throughput of requests ``a`` (over ``a_s`` seconds) over those of ``b``: the ratio of
    two Poisson rates, output throughput's scaled by the ratio of their mean output lengths."""
    ratio, interval = rate_ratio(len(a), a_s, len(b), b_s, level)
    tokens = _mean(a["output_tokens"]) / _mean(b["output_tokens"])
    return {
        "request_throughput": ratio,
        "request_throughput_ci": interval,
        "output_throughput": None if ratio is None else ratio * tokens,
        "output_throughput_ci": [None if x is None else x * tokens for x in interval],
    }


def geometric_mean_ci(ratios: Sequence[float], level: float) -> tuple[float | None, list[float | None]]:
    """The geometric mean of ratios (one per repetition or pair) and Student's t interval over their logarithms
    (None with fewer than two)."""
    logs = np.log(np.array(ratios, dtype=float))
    if logs.size < 2 or not np.all(np.isfinite(logs)):
        return None, [None, None]
    return float(np.exp(logs.mean())), [None if x is None else math.exp(x) for x in mean_ci(logs, level)]


def _across_repeats(rows: pd.DataFrame, bases: list[dict], shared: list[dict], level: float) -> dict:
    """One shared value's ratios per repetition (its levels paired with the unshared ones by ``repeat``)."""
    by_repeat = {lv.get("repeat"): lv for lv in shared}
    pairs = [(base, by_repeat[base.get("repeat")]) for base in bases if base.get("repeat") in by_repeat]
    out: dict = {
        "prefix_tokens": int(shared[0]["value"]),
        "unshared_level": [b["level"] for b, _ in pairs],
        "shared_level": [s["level"] for _, s in pairs],
    }
    ratios: dict[str, list[float]] = {}
    for base, one in pairs:
        slow, fast = _ok(rows, base["level"]), _ok(rows, one["level"])
        for figure in LATENCY_RATIOS:
            name, q = latency_figure(figure)
            a, b = bootstrap_values(slow, name), bootstrap_values(fast, name)
            if a.size and b.size:
                stat = statistic(q)
                ratios.setdefault(figure, []).append(float(stat(a) / stat(b)))
        for figure in THROUGHPUT_RATIOS:
            if base.get(figure) and one.get(figure):
                ratios.setdefault(figure, []).append(float(one[figure]) / float(base[figure]))
    for figure in (*LATENCY_RATIOS, *THROUGHPUT_RATIOS):
        found = ratios.get(figure, [])
        out[figure], out[f"{figure}_ci"] = (
            geometric_mean_ci(found, level) if len(found) == len(pairs) else (None, [None, None])
        )
    return out


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def latency_ratio(
    slow: np.ndarray, fast: np.ndarray, q: float | None, level: float
) -> tuple[float | None, list[float | None]]:
    """``stat(slow) / stat(fast)`` and its bootstrap interval (None where there are too few requests)."""
    if slow.size < 2 or fast.size < 2:
        return None, [None, None]
    stat = statistic(q)
    point = float(stat(slow) / stat(fast))
    # imported when a report is made, not when a run starts
    from scipy import stats

    result = stats.bootstrap(
        (slow, fast),
        lambda a, b, axis=-1: stat(a, axis=axis) / stat(b, axis=axis),
        vectorized=True,
        paired=False,
        confidence_level=level,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    interval = result.confidence_interval
    return point, [finite(interval.low), finite(interval.high)]


def rate_ratio(k_a: int, t_a: float, k_b: int, t_b: float, level: float) -> tuple[float | None, list[float | None]]:
    """The ratio of two Poisson rates ``(k_a / t_a) / (k_b / t_b)`` and its exact interval, from the binomial
    share of ``a`` in both counts."""
    if k_a <= 0 or k_b <= 0 or t_a <= 0 or t_b <= 0:
        return None, [None, None]
    from scipy import stats

    ci = stats.binomtest(k_a, k_a + k_b).proportion_ci(confidence_level=level, method="exact")
    scale = t_b / t_a

    def odds(p: float) -> float | None:
        return p / (1 - p) * scale if p < 1 else None

    return (k_a / t_a) / (k_b / t_b), [odds(ci.low), odds(ci.high)]


def speedup_sentence(summary: dict, input_tokens: int | None) -> str | None:
    """The report's lead sentence: "shared prefix of 1536 of 2048 tokens: TTFT p50 3.4× faster (95% CI …)"."""
    found = summary.get("prefix_cache_speedup")
    if not found or found.get("median_ttft_ms") is None:
        return None
    level = float(summary.get("ci_level") or 0.95)
    low, high = found.get("median_ttft_ms_ci") or (None, None)
    band = f" ({level:.0%} CI {low:.3g}–{high:.3g}×)" if low is not None and high is not None else ""
    of = f" of {input_tokens:,}" if input_tokens else ""
    return (
        f"Shared prefix of {found['prefix_tokens']:,}{of} tokens: TTFT p50 {found['median_ttft_ms']:.3g}× "
        f"faster{band} than with no prompt shared."
    )


def bootstrap_values(rows: pd.DataFrame, name: str) -> np.ndarray:
    """A latency's finite values over the rows, sampled down (seeded) to BOOTSTRAP_CAP."""
    values = latency_values(rows, name)
    values = values[np.isfinite(values)]
    if values.size > BOOTSTRAP_CAP:
        values = np.random.default_rng(0).choice(values, BOOTSTRAP_CAP, replace=False)
    return values
