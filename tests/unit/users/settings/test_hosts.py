"""Several replicas: the host chooser's strategies, -H and --metrics-url parsing, replicas summed and apart."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llmclient.errors import ConfigError
from llmclient.server_metrics import Histogram, combine, metrics_target
from reports.load import Replica
from reports.metrics import per_host, per_replica
from tests.unit.users.settings.test_options import opts
from users.settings.hosts import HostChooser, primary, split_hosts
from users.settings.settings import Settings

A, B, C = "http://a:1", "http://b:2", "http://c:3"


def test_round_robin_takes_the_hosts_in_turn():
    chooser = HostChooser([A, B, C])
    assert [chooser.pick() for _ in range(7)] == [A, B, C, A, B, C, A]
    assert HostChooser([A]).pick() == A


def test_least_inflight_takes_the_idlest_host_and_breaks_ties_in_turn():
    chooser = HostChooser([A, B, C], "least-inflight")
    first = [chooser.pick() for _ in range(3)]
    # all idle: in turn
    assert first == [A, B, C]
    chooser.started(A)
    chooser.started(A)
    chooser.started(B)
    assert chooser.pick() == C
    chooser.started(C)
    # B and C hold one each; B's turn comes first after C
    assert chooser.pick() == B
    chooser.finished(A)
    chooser.finished(A)
    assert chooser.pick() == A
    # never below zero
    chooser.finished(A)
    assert chooser.in_flight[A] == 0


def test_hosts_and_metrics_urls_parse_or_say_why_in_one_line():
    assert split_hosts(f" {A}/, {B} ,") == [A, B] and primary(f"{A},{B}") == A
    with pytest.raises(ValueError, match="host must look like http://HOST:PORT"):
        split_hosts(f"{A},b:2")
    assert metrics_target("http://a:9/metrics") == metrics_target("http://a:9")
    s = Settings.from_options(opts(metrics_url=["http://a:9/metrics", "http://b:9,http://c:9"]))
    assert s.server.metrics_url == ("http://a:9/metrics", "http://b:9", "http://c:9")
    assert Settings.from_options(opts(metrics_url="http://a:9")).server.metrics_url == (
        "http://a:9",
        # from LOCUST_METRICS_URL
    )
    with pytest.raises(ConfigError, match=r"^--metrics-url: host must look like"):
        Settings.from_options(opts(metrics_url=["a:9"]))
    with pytest.raises(ConfigError, match=r"^--host-strategy must be one of round-robin, least-inflight"):
        Settings.from_options(opts(host_strategy="random"))


def hist(n: float, total: float, low: float) -> Histogram:
    return Histogram(total, n, ((0.1, low), (math.inf, n)))


def test_replicas_add_up_to_one_server_and_kv_usage_averages():
    one = ({"time": 1.0, "prefix_cache_hits_total": 10.0, "kv_cache_usage_perc": 0.2}, {"ttft": hist(4, 0.4, 4)})
    two = ({"time": 2.0, "prefix_cache_hits_total": 30.0, "kv_cache_usage_perc": 0.6}, {"ttft": hist(6, 1.2, 2)})
    values, hists = combine([one, two])
    assert values == {"time": 2.0, "prefix_cache_hits_total": 40.0, "kv_cache_usage_perc": pytest.approx(0.4)}
    assert hists["ttft"] == Histogram(pytest.approx(1.6), 10, ((0.1, 6.0), (math.inf, 10.0)))


def test_each_replica_is_reported_apart_with_the_skew_between_them():
    def replica(url: str, served: float, hits: float) -> Replica:
        server = pd.DataFrame(
            {
                "time": [0.0, 10.0],
                "prefix_cache_hits_total": [0.0, hits],
                "prefix_cache_queries_total": [0.0, 100.0],
                "num_requests_running": [1.0, 3.0],
            }
        )
        scrapes = [(0.0, {"ttft": hist(0, 0.0, 0)}), (10.0, {"ttft": hist(served, served * 0.05, served)})]
        return Replica(url, server, scrapes)

    out = per_replica([replica(A, 30, 60.0), replica(B, 10, 20.0)])
    assert out["replicas"][A]["server_requests"] == 30 and out["replicas"][A]["server_mean_ttft_ms"] == pytest.approx(
        50
    )
    assert out["replicas"][B]["server_prefix_cache_hit_rate"] == pytest.approx(0.2)
    assert out["replicas"][A]["mean_num_requests_running"] == 2.0
    assert out["replica_skew"] == {"load": pytest.approx(1.5), "prefix_cache_hit_rate": pytest.approx(1.5)}
    assert per_replica([replica(A, 1, 1.0)]) == {}


def test_per_host_keys_only_when_the_rows_went_to_several_hosts():
    rows = pd.DataFrame(
        {
            "host": [A, B, A],
            "success": [True] * 3,
            "cancelled": [False] * 3,
            "start_time": [0.0, 1.0, 2.0],
            "ttft_s": [0.1, 0.3, 0.2],
            "tpot_s": [0.01] * 3,
            "e2e_s": [1.0] * 3,
            "decode_tps": [100.0] * 3,
            "output_tokens": [10] * 3,
            "prompt_tokens": [5] * 3,
            "cached_tokens": [0] * 3,
            "itl_s": ["0.01"] * 3,
        }
    )
    hosts = per_host(rows)["hosts"]
    assert set(hosts) == {A, B} and hosts[A]["completed"] == 2 and hosts[B]["mean_ttft_ms"] == pytest.approx(300)
    assert per_host(rows[rows["host"] == A]) == {}
