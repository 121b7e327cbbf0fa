"""The summary's intervals hold their level: simulated runs of a known latency law, intervals counted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.intervals import ci_level_error, intervals_ms, mean_ci, percentile_ci, rate_ci, ratio_of_sums_ci

# a TTFT-like law: lognormal, median 200 ms
MU, SIGMA = math.log(0.2), 0.5
TRUE_MEAN = math.exp(MU + SIGMA**2 / 2)
# the normal law's 0.99 quantile
TRUE_P99 = math.exp(MU + SIGMA * 2.3263478740408408)


def coverage(interval, truth: float, runs: int = 1000, n: int = 400) -> float:
    # the same runs every time: the figure below is the method's, not luck's
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(runs):
        low, high = interval(rng.lognormal(MU, SIGMA, n))
        hits += (low is None or low <= truth) and (high is None or truth <= high)
    return hits / runs


def test_the_mean_and_the_p99_intervals_of_one_run_contain_the_truth_about_95_percent_of_the_time():
    assert 0.93 <= coverage(lambda v: mean_ci(v, 0.95), TRUE_MEAN) <= 0.97
    assert 0.93 <= coverage(lambda v: percentile_ci(v, 99, 0.95), TRUE_P99) <= 0.97


def test_the_throughput_and_hit_rate_intervals_of_one_run_contain_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    # completions per second, seconds
    rate, duration = 8.0, 60.0
    counts = rng.poisson(rate * duration, 1000)
    inside = [low <= rate <= high for low, high in (rate_ci(int(k), duration, 0.95) for k in counts)]
    # exact (Garwood): at least 95%, a little over
    assert 0.93 <= float(np.mean(inside)) <= 0.98
    prompt = 2048
    # each request finds 0 or its whole 2048 * 0.75 shared tokens: 80% of them do
    truth = 0.6
    hits = 0
    for _ in range(1000):
        cached = np.where(rng.random(300) < 0.8, 1536.0, 0.0)
        prompts = np.full(300, float(prompt))
        low, high = ratio_of_sums_ci(cached, prompts, float(cached.sum() / prompts.sum()), 0.95)
        hits += low <= truth <= high
    assert 0.93 <= hits / 1000 <= 0.97


def test_intervals_are_named_after_their_figures_and_too_few_requests_leave_a_bound_open():
    out = intervals_ms(np.array([0.1, 0.2, 0.3, math.nan]), "ttft", 0.95, (50, 90, 99))
    assert set(out) == {"mean_ttft_ms_ci", "median_ttft_ms_ci", "p90_ttft_ms_ci", "p99_ttft_ms_ci"}
    low, high = out["mean_ttft_ms_ci"]
    # in ms, the NaN left out
    assert low is not None and high is not None and low < 200.0 < high
    # three requests cannot bound a p99 from above
    assert out["p99_ttft_ms_ci"][1] is None
    assert intervals_ms(np.array([]), "itl", 0.95, (50,)) == {
        "mean_itl_ms_ci": [None, None],
        "median_itl_ms_ci": [None, None],
    }


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_a_confidence_level_outside_0_1_is_refused_in_one_line(level):
    assert ci_level_error(level) == f"--ci-level must be between 0 and 1 (say 0.95), got {level:g}"
    assert ci_level_error(0.9) is None
