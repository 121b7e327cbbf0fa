"""Report statistics against hand-worked values (numpy's linear interpolation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.metrics import describe_ms, duration_s, goodput, pooled_itl, summarize, windows
from scheduler.slo import parse_slo


def frame(**cols) -> pd.DataFrame:
    df = pd.DataFrame(cols)
    df["cancelled"] = df.get("error", pd.Series([""] * len(df))).astype(str).str.startswith("cancelled:")
    return df


def test_describe_uses_linear_interpolation():
    d = describe_ms(np.array([0.1, 0.2, 0.3, 0.4]), "ttft")
    assert d["mean_ttft_ms"] == pytest.approx(250)
    assert d["median_ttft_ms"] == pytest.approx(250)
    # rank 0.9*3 = 2.7 -> 300 + 0.7*100
    assert d["p90_ttft_ms"] == pytest.approx(370)
    # rank 2.97
    assert d["p99_ttft_ms"] == pytest.approx(397)
    assert d["std_ttft_ms"] == pytest.approx(math.sqrt(12500))


def test_describe_ignores_nan_and_handles_empty():
    assert describe_ms(np.array([np.nan, 0.5]), "x")["mean_x_ms"] == pytest.approx(500)
    assert math.isnan(describe_ms(np.array([]), "x")["mean_x_ms"])


def test_itl_gaps_are_pooled_across_requests():
    gaps = pooled_itl(pd.Series(["0.010000 0.020000", "", "0.030000"]))
    assert gaps.tolist() == pytest.approx([0.01, 0.02, 0.03])
    d = describe_ms(gaps, "itl")
    assert d["mean_itl_ms"] == pytest.approx(20) and d["p90_itl_ms"] == pytest.approx(28)


def test_duration_runs_from_first_start_to_last_completion():
    rows = frame(start_time=[100.0, 101.0, 102.0], e2e_s=[5.0, 1.0, np.nan])
    assert duration_s(rows) == pytest.approx(5.0)


def sample_rows() -> pd.DataFrame:
    return frame(
        start_time=[0.0, 1.0, 2.0, 3.0, 4.0],
        success=[True, True, True, False, False],
        error=["", "", "", "HTTP 500", "cancelled: the test stopped"],
        ttft_s=[0.1, 0.2, 0.3, np.nan, 0.05],
        tpot_s=[0.02, 0.04, np.nan, np.nan, np.nan],
        e2e_s=[2.1, 4.2, 0.3, np.nan, np.nan],
        decode_tps=[50.0, 25.0, np.nan, np.nan, np.nan],
        prompt_tokens=[100, 100, 100, np.nan, 100],
        cached_tokens=[0, 64, 96, np.nan, np.nan],
        output_tokens=[101, 101, 1, np.nan, 3],
        itl_s=["0.020000", "0.040000", "", "", "0.010000"],
    )


def test_summary_counts_and_throughputs():
    s = summarize(sample_rows())
    assert (s["completed"], s["failed"], s["cancelled"]) == (3, 1, 1)
    # duration: first start 0.0 .. last completion max(2.1, 5.2, 2.3) = 5.2 (cancelled rows excluded)
    # duration: vllm bench serve's name
    assert s["duration_s"] == s["duration"] == pytest.approx(5.2)
    assert s["total_output_tokens"] == 203
    assert s["output_throughput"] == pytest.approx(203 / 5.2)
    assert s["request_throughput"] == pytest.approx(3 / 5.2)
    # failed and cancelled excluded
    assert s["mean_ttft_ms"] == pytest.approx(200)
    assert s["mean_tpot_ms"] == pytest.approx(30)
    # pooled gaps 20, 40
    assert s["mean_itl_ms"] == pytest.approx(30)
    assert s["mean_decode_tps"] == pytest.approx(37.5)
    assert s["prefix_cache_hit_rate"] == pytest.approx(160 / 300)
    assert s["prefix_cache_hit_rate_source"] == "usage"
    assert s["median_ttft_cache_hit_ms"] == pytest.approx(250)
    assert s["median_ttft_cache_miss_ms"] == pytest.approx(100)


def test_hit_rate_prefers_server_metrics_deltas():
    server = pd.DataFrame(
        {
            "time": [0, 5, 10],
            "prefix_cache_queries_total": [1000, 1500, 2000],
            "prefix_cache_hits_total": [400, 500, 900],
        }
    )
    s = summarize(sample_rows(), server)
    assert s["prefix_cache_hit_rate"] == pytest.approx(500 / 1000)
    assert s["prefix_cache_hit_rate_source"] == "server_metrics"


def test_goodput_counts_requests_meeting_every_slo():
    rows = sample_rows()
    ok = rows[rows["success"]]
    # 2 of 3 in 2 s
    assert goodput(ok, {"ttft_ms": 250}, 2.0) == pytest.approx(1.0)
    # the one-token request has no TPOT and still meets a TPOT SLO
    assert goodput(ok, {"tpot_ms": 30}, 1.0) == pytest.approx(2.0)
    assert summarize(rows, slo={"e2el_ms": 3000})["request_goodput"] == pytest.approx(2 / 5.2)


def test_parse_slo():
    assert parse_slo("ttft_ms=500, tpot_ms=50") == {"ttft_ms": 500.0, "tpot_ms": 50.0}
    with pytest.raises(ValueError, match="ttft_ms="):
        parse_slo("latency=5")
    with pytest.raises(ValueError, match="must be a number"):
        parse_slo("ttft_ms=fast")


def test_windows_place_ttft_at_first_token_and_e2e_at_completion():
    rows = frame(start_time=[0.0, 0.0], success=[True, True], ttft_s=[0.5, 1.5], e2e_s=[2.5, 3.5])
    w = windows(rows, 1.0).set_index("time_s")
    assert w.loc[1.0, "p50_ttft_ms"] == pytest.approx(500)
    assert w.loc[2.0, "p50_ttft_ms"] == pytest.approx(1500)
    assert w.loc[3.0, "p50_e2e_ms"] == pytest.approx(2500)
    assert w.loc[4.0, "requests_per_s"] == 1


def test_the_knee_is_the_last_level_before_the_typical_request_queues():
    from reports.metrics import knee_rate

    def level(offered, median_ttft, saturated=False, e2e=50.0):
        return {"offered_rate": offered, "median_ttft_ms": median_ttft, "median_e2el_ms": e2e, "saturated": saturated}

    # unloaded: median TTFT 10 ms, a request takes 50 ms; queueing when the median TTFT passes 35 ms
    levels = [level(60, 30), level(20, 10), level(40, 12), level(70, 60), level(80, 400)]
    assert knee_rate(levels) == 60
    assert knee_rate([level(20, 10), level(40, 12, saturated=True)]) == 20
    assert knee_rate([level(20, 10)]) is None


def test_a_prefix_groups_level_sets_its_hit_rate_against_the_ideal_and_the_cliff_brackets_the_fall():
    from reports.metrics import capacity_estimate, cliff, working_set

    ok = frame(prompt_tokens=[100] * 4, cached_tokens=[0, 64, 64, 0])
    got = working_set(ok, groups=2, prefix_tokens=64)
    # 4 random picks of 2 groups: 2 (1 - 1/2^4) = 1.875 first sightings expected, 2.125 hits of 64 tokens
    assert got["working_set_tokens"] == 128
    assert got["ideal_prefix_cache_hit_rate"] == pytest.approx(2.125 * 64 / 400)
    assert got["measured_prefix_cache_hit_rate"] == pytest.approx(128 / 400)
    assert got["prefix_cache_efficiency"] == pytest.approx(128 / (2.125 * 64))

    def level(tokens, efficiency):
        return {"working_set_tokens": tokens, "prefix_cache_efficiency": efficiency}

    levels = [level(8000, 0.4), level(1000, 1.0), level(4000, 0.7), level(2000, 0.95), level(16000, 0.2)]
    assert cliff(levels) == [4000.0, 8000.0]
    # median of 2800, 3200, 3200
    assert capacity_estimate(levels) == pytest.approx(3200.0)
    # no level fell: extend the sweep
    assert cliff([level(1000, 1.0), level(2000, 0.9)]) is None
    assert capacity_estimate([level(1000, 1.0)]) is None
