"""The server's /metrics: its latency histograms parsed under several vLLM versions' names, differenced
between scrapes, their means and Prometheus-style quantiles, and the client's figures beside them."""

from __future__ import annotations

import math

import pytest

from llmclient.server_metrics import Histogram, parse_scrape, server_figures
from reports.metrics import server_vs_client


def exposition(name: str, buckets: dict[str, float], total: float, engines: int = 1) -> str:
    lines = [f"# HELP {name} x", f"# TYPE {name} histogram"]
    count = buckets["+Inf"]
    for engine in range(engines):
        labels = f'engine="{engine}",model_name="m"'
        lines += [f'{name}_bucket{{{labels},le="{le}"}} {c}' for le, c in buckets.items()]
        lines += [f"{name}_count{{{labels}}} {count}", f"{name}_sum{{{labels}}} {total}"]
    return "\n".join(lines) + "\n"


def test_histograms_are_summed_over_engines_and_found_under_older_names():
    text = (
        exposition("vllm:time_to_first_token_seconds", {"0.1": 2, "0.5": 3, "+Inf": 4}, 1.5, engines=2)
        # the older ITL name
        + exposition("vllm:time_per_output_token_seconds", {"0.01": 10, "+Inf": 10}, 0.05)
        + '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0"} 3\n'
    )
    values, hists = parse_scrape(text)
    assert values == {"num_requests_running": 3.0}
    assert hists["ttft"] == Histogram(3.0, 8.0, ((0.1, 4.0), (0.5, 6.0), (math.inf, 8.0)))
    assert hists["itl"].count == 10 and set(hists) == {"ttft", "itl"}
    figures = server_figures({}, hists)
    assert figures["server_metrics_missing"] == ["queue", "prefill", "decode", "e2el"]
    assert figures["server_mean_ttft_ms"] == pytest.approx(375.0) and figures["server_requests"] == 8


def test_a_window_is_the_difference_of_two_scrapes_and_quantiles_interpolate_within_buckets():
    before = Histogram(1.0, 4.0, ((0.1, 4.0), (0.5, 4.0), (1.0, 4.0), (math.inf, 4.0)))
    after = Histogram(4.0, 14.0, ((0.1, 6.0), (0.5, 10.0), (1.0, 13.0), (math.inf, 14.0)))
    window = after.since(before)
    assert window == Histogram(3.0, 10.0, ((0.1, 2.0), (0.5, 6.0), (1.0, 9.0), (math.inf, 10.0)))
    assert window.mean() == pytest.approx(0.3)
    # rank 5 in (0.1, 0.5]: 3 of its 4
    assert window.quantile(0.5) == pytest.approx(0.1 + 0.4 * (5 - 2) / 4)
    # rank 1 in (0, 0.1]: half of its 2
    assert window.quantile(0.1) == pytest.approx(0.05)
    # in +Inf: the highest finite bound, as Prometheus does
    assert window.quantile(0.99) == 1.0
    assert math.isnan(Histogram(0.0, 0.0, ()).quantile(0.5)) and math.isnan(before.since(before).mean())
    # a restarted server: counters began again
    assert after.since(Histogram(9.0, 99.0, ())) == after
    assert Histogram.from_json(window.as_json()) == window


def test_the_client_is_set_against_the_server_over_the_scrapes_around_a_window():
    def scrape(t: float, n: float, total: float) -> tuple[float, dict[str, Histogram]]:
        return t, {"ttft": Histogram(total, n, ((0.1, n), (math.inf, n)))}

    scrapes = [scrape(10.0, 0, 0.0), scrape(20.0, 5, 0.25), scrape(30.0, 10, 0.75), scrape(40.0, 12, 1.0)]
    # scrapes at 20 and 30
    out = server_vs_client({"mean_ttft_ms": 110.0}, scrapes, 21.0, 29.0)
    assert out["server_mean_ttft_ms"] == pytest.approx(100.0) and out["server_requests"] == 5
    assert out["client_minus_server_ttft_ms"] == pytest.approx(10.0)
    whole = server_vs_client({"mean_ttft_ms": 90.0}, scrapes, -math.inf, math.inf)
    assert whole["server_mean_ttft_ms"] == pytest.approx(1000 / 12) and whole["server_requests"] == 12
    assert server_vs_client({}, scrapes[:1], 0, 1) == {}


def test_a_server_percentile_carries_its_bucket_and_the_page_shows_the_bound_when_the_bucket_is_wide():
    # vLLM's queue-time histogram has no bound below 300 ms: 100 queue times of 30 ms each land in the first
    # bucket, and the interpolated median says 150 ms whatever the truth (the mean says 30)
    queue = Histogram(3.0, 100.0, ((0.3, 100.0), (0.5, 100.0), (math.inf, 100.0)))
    ttft = Histogram(5.0, 100.0, ((0.04, 10.0), (0.05, 90.0), (0.06, 100.0), (math.inf, 100.0)))
    empty = Histogram(0.0, 0.0, ((0.3, 0.0), (math.inf, 0.0)))
    figures = server_figures({"queue": empty, "ttft": empty}, {"queue": queue, "ttft": ttft})
    assert figures["server_p50_queue_ms"] == pytest.approx(150.0) and figures["server_mean_queue_ms"] == 30.0
    assert figures["server_p50_queue_ms_bounds"] == pytest.approx([0.0, 300.0])
    # a narrow bucket: a figure
    assert figures["server_p50_ttft_ms_bounds"] == pytest.approx([40.0, 50.0])
    assert figures["server_p99_ttft_ms_bounds"] == pytest.approx([50.0, 60.0])
    tail = Histogram(10.0, 10.0, ((0.3, 0.0), (math.inf, 10.0)))
    # unbounded above
    assert server_figures({}, {"queue": tail})["server_p50_queue_ms_bounds"] == [300.0, None]

    from reports.html import shown

    assert shown(figures, "server_p50_queue_ms") == "≤ 300"
    assert shown(figures, "server_p50_ttft_ms") == f"{figures['server_p50_ttft_ms']:,.4g}"
    assert shown({"x": 400.0, "x_bounds": [300.0, None]}, "x") == "≥ 300"
    assert shown({"x": 700.0, "x_bounds": [500.0, 1000.0]}, "x") == "500–1,000"


def test_two_scrapes_at_once_take_turns_on_the_one_connection(tmp_path):
    # the periodic scraper and a sweep level's boundary scrape met on real vLLM's slower /metrics:
    # gevent refused the second reader of the socket ("already used by another greenlet")
    import gevent
    from gevent.server import StreamServer

    from llmclient.server_metrics import ReplicaMetrics

    body = b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\n"

    def answer(sock, _addr) -> None:
        with sock:
            pending = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
                while b"\r\n\r\n" in pending:
                    _, pending = pending.split(b"\r\n\r\n", 1)
                    # a slow answer: the other scrape arrives meanwhile
                    gevent.sleep(0.05)
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    server = StreamServer(("127.0.0.1", 0), answer)
    server.start()
    try:
        metrics = ReplicaMetrics([f"http://127.0.0.1:{server.server_port}"], {}, str(tmp_path / "run"))
        # the connection is open and kept
        metrics.scrape()
        scrapes = [gevent.spawn(metrics.scrape) for _ in range(3)]
        gevent.joinall(scrapes, timeout=10, raise_error=True)
        assert [s.value["num_requests_running"] for s in scrapes] == [3.0, 3.0, 3.0]
        metrics.close()
        assert len((tmp_path / "run_server_metrics.csv").read_text().splitlines()) == 1 + 4
    finally:
        server.stop()
