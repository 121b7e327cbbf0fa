"""The prefix cache's speed-up: ratios of two levels' figures and their intervals."""

from __future__ import annotations

import numpy as np
import pytest

from reports.speedup import latency_ratio, rate_ratio


def test_a_latency_ratio_and_its_bootstrap_interval_cover_the_true_ratio():
    rng = np.random.default_rng(3)
    # medians 400 and 100 ms: 4x
    slow = rng.lognormal(np.log(400), 0.3, 400)
    fast = rng.lognormal(np.log(100), 0.3, 400)
    ratio, (low, high) = latency_ratio(slow, fast, 50, 0.95)
    assert low < 4.0 < high and low < ratio < high
    # 400 requests a side pin it to within about ±10%
    assert high - low < 0.8
    _mean, (mlow, mhigh) = latency_ratio(slow, fast, None, 0.95)
    assert mlow < 4.0 < mhigh
    # one request says nothing
    assert latency_ratio(slow[:1], fast, 50, 0.95) == (None, [None, None])


def test_a_rate_ratio_interval_is_the_exact_poisson_one():
    ratio, (low, high) = rate_ratio(200, 10.0, 100, 10.0, 0.95)
    assert ratio == pytest.approx(2.0)
    # 300 events: about ±25%
    assert 1.5 < low < 2.0 < high < 2.6
    assert rate_ratio(0, 10.0, 100, 10.0, 0.95) == (None, [None, None])
