"""Sweeps and the capacity search (scheduler/levels.py, scheduler/slo.py): pure rules against worked values
and scripted servers."""

from __future__ import annotations

import math
import random

import pytest

from scheduler.errors import ParameterError
from scheduler.levels import (
    AutoSweep,
    CapacitySearch,
    ExplicitSweep,
    Level,
    LevelResult,
    SaturationTest,
    capacity,
    fewest_to_pass,
    increasing,
    level_result,
    parse_sweep,
    verdict,
    wilson,
)
from scheduler.slo import met, parse_slo


def test_wilson_interval_matches_worked_values():
    # 8 of 10 at 95%: the textbook Wilson score interval
    low, high = wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))
    # all of 120 met, yet a 0.99 target cannot be certified: the interval reaches below it
    assert wilson(120, 120)[0] < 0.99 < wilson(400, 400)[0]
    n = fewest_to_pass(0.99)
    assert wilson(n - 1, n - 1)[0] < 0.99 <= wilson(n, n)[0]


def result(
    kind: str,
    value: float,
    requests: int,
    good: int,
    achieved: float | None = None,
    number: int = 1,
    saturated: bool = False,
    purpose: str = "sweep",
) -> LevelResult:
    return LevelResult(
        Level(number, kind, value, purpose), requests, good, value if achieved is None else achieved, saturated
    )


def test_verdicts():
    assert verdict(result("rate", 5, 400, 400), 0.99) == "pass"
    assert verdict(result("rate", 5, 400, 300), 0.99) == "fail"
    assert verdict(result("rate", 5, 100, 100), 0.99) == "close"
    assert verdict(result("rate", 5, 400, 400, saturated=True), 0.9) == "fail"
    assert verdict(result("rate", 5, 0, 0), 0.9) == "fail"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "rate",
            "--sweep takes rate:R1,R2,…, concurrency:C1,C2,…, prefix-groups:G1,G2,…, prefix-tokens:P1,P2,…, "
            "think-time:S1,S2,… or auto",
        ),
        ("prefix-groups:2,2.5", "--sweep prefix-groups levels are whole numbers, got 2.5"),
        ("speed:1,2", "--sweep takes rate:R1,R2,…"),
        ("rate:1,x", "--sweep rate: 'x' is not a number"),
        ("rate:1,-2", "--sweep rate levels must be positive, got -2"),
        ("concurrency:1.5", "--sweep concurrency levels are whole numbers, got 1.5"),
    ],
)
def test_bad_sweeps_give_one_line(text, message):
    """The scheduler names the parameter; a command line, its flag."""
    with pytest.raises(ParameterError) as err:
        parse_sweep(text)
    assert err.value.parameter == "sweep" and err.value.named(lambda p: f"--{p}").startswith(message)


def test_parse_sweep_and_slo():
    assert parse_sweep("rate:1, 2.5,4") == ("rate", (1.0, 2.5, 4.0))
    assert parse_sweep("auto") == ("auto", ())
    assert parse_sweep("prefix-groups:1,8,64") == ("prefix-groups", (1.0, 8.0, 64.0))
    level = ExplicitSweep("prefix-groups", (1.0, 8.0), rate=5.0).next_level([])
    assert level == Level(1, "prefix-groups", 1.0, rate=5.0) and level.open_loop and level.arrival_rate == 5.0
    assert level.label == "level 1: 1 shared prefixes at 5 req/s" and not Level(1, "concurrency", 4).open_loop
    assert parse_slo("ttft_ms=500, tpot_ms=50") == {"ttft_ms": 500.0, "tpot_ms": 50.0}
    with pytest.raises(ValueError, match="must be positive"):
        parse_slo("ttft_ms=0")


def test_the_slo_rule_for_scalars_and_arrays():
    slo = {"ttft_ms": 100.0, "tpot_ms": 20.0}
    assert met(slo, True, 0.09, 0.019, 5.0)
    assert not met(slo, True, 0.11, 0.019, 5.0)
    # one output token: no TPOT, the limit does not apply
    assert met(slo, True, 0.05, math.nan, 0.05)
    # a failed request never meets it
    assert not met(slo, False, 0.05, 0.01, 0.1)
    got = met(slo, [True, True, False], [0.1, 0.2, 0.01], [0.02, 0.01, 0.01], [1, 1, 1])
    assert got.tolist() == [True, False, False]


def test_an_explicit_sweep_stops_climbing_after_a_saturated_level():
    plan = ExplicitSweep("rate", (1.0, 2.0, 4.0))
    results: list[LevelResult] = []
    first = plan.next_level(results)
    assert first == Level(1, "rate", 1.0)
    results.append(result("rate", 1.0, 50, 50))
    results.append(result("rate", 2.0, 50, 10, number=2, saturated=True))
    assert plan.next_level(results) is None


def test_auto_runs_synchronous_and_throughput_then_rates_between():
    plan = AutoSweep(saturating_concurrency=64, rates=4)
    results: list[LevelResult] = []
    assert plan.next_level(results) == Level(1, "concurrency", 1, "synchronous")
    results.append(result("concurrency", 1, 20, 20, achieved=2.0))
    assert plan.next_level(results) == Level(2, "concurrency", 64, "throughput")
    results.append(result("concurrency", 64, 500, 500, achieved=12.0, number=2, purpose="throughput"))
    rates = []
    while (level := plan.next_level(results)) is not None:
        rates.append(level.value)
        results.append(result("rate", level.value, 100, 100, number=level.number))
    # evenly between 2 and 12, both ends excluded
    assert rates == [4.0, 6.0, 8.0, 10.0]


def run_search(capacity_rps: float, requests: int = 1000, target: float = 0.9) -> tuple[CapacitySearch, list]:
    """A scripted server: every request meets the SLO below ``capacity_rps``, none above (saturated)."""
    plan = CapacitySearch(target, saturating_concurrency=64)
    results: list[LevelResult] = []
    while (level := plan.next_level(results)) is not None:
        if level.kind == "concurrency":
            res = result(
                "concurrency",
                level.value,
                requests,
                0,
                achieved=capacity_rps,
                number=level.number,
                purpose="throughput",
            )
        else:
            ok = level.value <= capacity_rps
            res = result(
                "rate",
                level.value,
                requests,
                requests if ok else requests // 3,
                number=level.number,
                saturated=not ok,
                purpose="probe",
            )
        assert not plan.extend(res)
        results.append(res)
    return plan, results


@pytest.mark.parametrize("true_capacity", [3.0, 47.0, 900.0])
def test_the_capacity_search_brackets_the_true_capacity_within_its_tolerance(true_capacity):
    plan, results = run_search(true_capacity)
    answer = capacity(results, plan.target)
    low, high = answer.bracket
    assert high is not None and low <= true_capacity < high and high - low <= plan.tolerance * high + 1e-9
    # every request below met it, none above: the interval is the bracket, the estimate between
    assert answer.interval == answer.bracket and low <= answer.rate <= high and not answer.at_least
    assert len(results) <= plan.max_levels


def test_a_close_call_is_extended_then_left_unresolved():
    plan = CapacitySearch(0.99, saturating_concurrency=8, max_extensions=2)
    # 100 of 100: [0.963, 1]: straddles 0.99
    close = result("rate", 5.0, 100, 100, number=2, purpose="probe")
    assert plan.extend(close) and plan.extend(close)
    assert not plan.extend(close) and close.resolved is False
    assert verdict(close, 0.99) == "close"
    # it reached the target, yet nothing is confirmed: at least 5, CI from 0
    answer = capacity([close], 0.99)
    assert (answer.rate, answer.at_least, answer.interval) == (5.0, True, (0.0, None))


def test_the_saturation_test_fires_on_a_growing_queue_and_not_on_a_steady_one():
    rng = random.Random(1)
    steady = SaturationTest()
    # a server that keeps up: in flight and TTFT fluctuate around a level
    for _ in range(120):
        steady.add(40 + rng.gauss(0, 4), 0.2 + rng.gauss(0, 0.02))
        assert not steady.saturated()
    growing = SaturationTest()
    fired_at = None
    # past saturation: 4 more requests queue every second, TTFT climbs
    for second in range(30):
        growing.add(20 + 4 * second + rng.gauss(0, 3), 0.2 + 0.05 * second + rng.gauss(0, 0.02))
        if growing.saturated():
            fired_at = second
            break
    assert fired_at is not None and fired_at < 15


def test_mann_kendall_handles_ties_and_flat_series():
    assert not increasing([5.0] * 10, 0.01)
    assert increasing(list(range(10)), 0.01)
    assert not increasing([1, 2, 1, 2, 1, 2, 1, 2, 1, 2], 0.01)


def test_level_result_counts_the_windows_and_leaves_cancelled_requests_out():
    level = Level(1, "rate", 10.0)
    res = level_result(
        level,
        [0.5, 1.0, 1.5, 9.0],
        [True, True, False, True],
        [False, False, False, True],
        [0.1, 0.3, math.nan, 0.1],
        [0.01] * 4,
        [1.0] * 4,
        [(0.0, 2.0)],
        {"ttft_ms": 200},
    )
    # the cancelled one is out; the failed one never meets
    assert (res.requests, res.met) == (3, 1)
    # two ended within the window, at 1.5 and 2 s: one more end in the 0.5 s after the first (sent every 0.5 s)
    assert res.achieved_rate == pytest.approx(1 / 0.5)
    # in send order: met, missed, missed (the failed one)
    assert res.runs == (2,)


def test_levels_that_contradict_a_falling_attainment_keep_the_estimate_inside_its_interval():
    # a level marked saturated below one where every request met the SLO (a false alarm, or a server's hiccup)
    results = [
        result("rate", 80.0, 1000, 1000, number=2, purpose="probe"),
        result("rate", 88.0, 1000, 400, number=3, saturated=True, purpose="probe"),
        result("rate", 92.4, 1000, 1000, number=4, purpose="probe"),
        result("rate", 96.0, 1000, 500, number=5, purpose="probe"),
    ]
    answer = capacity(results, 0.9)
    low, high = answer.interval
    assert low <= answer.rate and (high is None or answer.rate <= high), answer


def test_the_achieved_rate_of_a_saturated_closed_loop_is_the_servers_rate_not_biased_by_its_first_answer():
    # 10 in flight, each request 5 s, sends for 30 s: the server gets through 2 requests a second, though
    # nothing can end in the first 5 s of the level
    starts = [phase * 0.5 + 5.0 * k for phase in range(10) for k in range(6)]
    n = len(starts)
    res = level_result(
        Level(1, "concurrency", 10, "throughput"),
        starts,
        [True] * n,
        [False] * n,
        [0.1] * n,
        [0.01] * n,
        [5.0] * n,
        [(0.0, 30.0)],
        {},
    )
    assert res.achieved_rate == pytest.approx(2.0, rel=0.05)
