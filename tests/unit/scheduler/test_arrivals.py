"""The arrival process: gamma gaps with vLLM's parameters, ramps, stages, and the schedule's proof."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scheduler.arrivals import ConstantRate, Ramp, Stage, Stages, parse_burstiness, parse_stages, schedule, stage_at
from scheduler.errors import ParameterError
from scheduler.proof import prove

N = 20_000


def gaps(rate: float, burstiness: float, seed: int = 0, n: int = N) -> np.ndarray:
    offsets = np.array([a.offset_s for a in schedule(ConstantRate(rate), burstiness, seed, total=n)])
    return np.diff(offsets)


def ks_statistic_exponential(sample: np.ndarray, rate: float) -> float:
    x = np.sort(sample)
    cdf = 1.0 - np.exp(-rate * x)
    n = x.size
    return float(max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max()))


def test_poisson_gaps_pass_a_kolmogorov_smirnov_test_at_one_percent():
    g = gaps(100.0, 1.0)
    # the critical value of the one-sample KS statistic at alpha = 0.01 is 1.628 / sqrt(n) for large n
    assert ks_statistic_exponential(g, 100.0) < 1.628 / math.sqrt(g.size)
    # 3 standard errors of the mean (1 / sqrt(n) = 0.7%)
    assert g.mean() == pytest.approx(0.01, rel=0.03)


def test_the_ks_test_here_can_tell_a_wrong_law():
    # smoother than Poisson
    g = gaps(100.0, 4.0)
    assert ks_statistic_exponential(g, 100.0) > 1.628 / math.sqrt(g.size)


def test_burstiness_sets_the_coefficient_of_variation():
    for burstiness, cv in ((4.0, 0.5), (0.25, 2.0), (1.0, 1.0)):
        g = gaps(50.0, burstiness)
        assert g.std() / g.mean() == pytest.approx(cv, rel=0.05), burstiness
        assert g.mean() == pytest.approx(0.02, rel=0.05), burstiness


def test_infinite_burstiness_is_evenly_spaced():
    g = gaps(400.0, math.inf, n=1000)
    assert np.allclose(g, 1 / 400)


def test_the_schedule_depends_on_the_seed_alone():
    a = [x.offset_s for x in schedule(ConstantRate(20), 1.0, seed=7, total=50)]
    b = [x.offset_s for x in schedule(ConstantRate(20), 1.0, seed=7, total=50)]
    c = [x.offset_s for x in schedule(ConstantRate(20), 1.0, seed=8, total=50)]
    assert a == b and a != c and a[0] == 0.0 and len(a) == 50


def test_ramps_follow_vllms_definition_over_the_run():
    linear = Ramp("linear", 2.0, 10.0, total=5)
    assert [linear.rate(i, 0.0)[0] for i in range(5)] == [2.0, 4.0, 6.0, 8.0, 10.0]
    exponential = Ramp("exponential", 1.0, 16.0, total=5)
    assert [exponential.rate(i, 0.0)[0] for i in range(5)] == pytest.approx([1.0, 2.0, 4.0, 8.0, 16.0])
    offsets = [a.offset_s for a in schedule(Ramp("linear", 1.0, 100.0, total=400), math.inf, 0, total=400)]
    first, last = np.diff(offsets[:50]).mean(), np.diff(offsets[-50:]).mean()
    # the gaps shrink as the rate climbs
    assert first > 5 * last


def test_stages_run_in_order_and_end_the_schedule():
    arrivals = list(schedule(Stages((Stage(2.0, 10.0), Stage(1.0, 50.0))), math.inf, 0))
    stages = [a.stage for a in arrivals]
    assert stages == sorted(stages) and set(stages) == {"1", "2"}
    assert stages.count("1") == 20 and 49 <= stages.count("2") <= 50
    assert arrivals[-1].offset_s < 3.0


def test_stage_and_burstiness_parsing_and_their_one_line_errors():
    assert parse_stages("30s:5, 2m:20,45:1.5") == (Stage(30, 5), Stage(120, 20), Stage(45, 1.5))
    assert parse_stages("10s:4u,20s:16u") == (Stage(10, users=4), Stage(20, users=16))
    assert stage_at(parse_stages("10s:4u,20s:16u"), 12.0) == (2, Stage(20, users=16))
    assert stage_at(parse_stages("10s:4u,20s:16u"), 30.0) is None
    assert parse_burstiness("inf") == math.inf and parse_burstiness("0.5") == 0.5
    flag = lambda parameter: f"--{parameter}"  # noqa: E731
    for bad in ("30s", "x:5", "30s:0", "-1:5", "30s:fast", "30s:5,10s:4u", "30s:2.5u", "30s:0u"):
        with pytest.raises(ParameterError) as err:
            parse_stages(bad)
        assert err.value.named(flag).startswith("--stages")
    for bad in ("0", "-1"):
        with pytest.raises(ParameterError) as err:
            parse_burstiness(bad)
        assert err.value.named(flag).startswith("--burstiness must be positive")


def test_the_proof_compares_requested_and_achieved_and_warns_only_when_slipped():
    # 100 req/s
    due = [1000.0 + i * 0.01 for i in range(101)]
    kept = prove(due, [0.0005] * 101)
    assert kept is not None and kept.scheduled_rate == pytest.approx(100) and kept.achieved_rate == pytest.approx(100)
    assert kept.as_summary(requested_rate=90.0)["requested_rate"] == 90.0
    assert kept.warning() == "" and kept.as_summary()["schedule_lag_p99_ms"] == pytest.approx(0.5)
    # falls behind: 5% slower, lag up to 50 ms
    late = prove(due, [i * 0.0005 for i in range(101)])
    assert (
        late is not None
        and late.slipped
        and late.warning().startswith("the schedule slipped: achieved 95.24 of 100.00 scheduled")
    )
    assert prove([1.0], [0.0]) is None


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_a_constant_rate_schedule_runs_at_the_requested_rate_not_at_a_samples(burstiness):
    # 200 unconditioned Poisson arrivals at 20 req/s span 18-22 req/s (1 sd)
    for n in (60, 200, 5000):
        offsets = [a.offset_s for a in schedule(ConstantRate(20.0), burstiness, seed=3, total=n)]
        assert (n - 1) / offsets[-1] == pytest.approx(20.0, rel=1e-9)
    # without -n too: each block of arrivals spans its share exactly
    endless = schedule(ConstantRate(20.0), burstiness, seed=3)
    offsets = [next(endless).offset_s for _ in range(2 * 1024 + 1)]
    assert offsets[1024] == pytest.approx(1024 / 20.0, rel=1e-9) and offsets[2048] == pytest.approx(2048 / 20.0)
