"""The Prometheus exporter: its binned histograms equal prometheus_client's own, its names and labels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmclient.measure import RequestRecord
from llmclient.schema import Row
from tools import reference
from users.observe.prometheus_export import FAMILIES, IN_FLIGHT, TTFT_BUCKETS, Buckets, Exporter, metric_name


def samples(exporter: Exporter) -> dict[tuple[str, tuple], float]:
    text = generate_latest(exporter.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


@given(st.lists(st.sampled_from(TTFT_BUCKETS) | st.floats(0, 3000, allow_nan=False), max_size=50))
def test_binned_buckets_equal_prometheus_clients_histogram(values):
    registry = CollectorRegistry()
    reference = Histogram("h", "h", buckets=TTFT_BUCKETS, registry=registry)
    for v in values:
        reference.observe(v)
    ours = Buckets(TTFT_BUCKETS)
    ours.observe(values)
    family = ours.family("h", "h", {})
    expected = {
        (s.name, s.labels.get("le")): s.value
        for m in registry.collect()
        for s in m.samples
        if s.name in ("h_bucket", "h_count")
    }
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples if s.name in ("h_bucket", "h_count")}
    # a value on a bound counts in that bound's bucket, as le says
    assert got == expected
    (total,) = [s.value for s in family.samples if s.name == "h_sum"]
    assert abs(total - sum(values)) <= 1e-9 * max(1.0, sum(values))


def record(success=True, cancelled=False, ttft=0.05, itl=(0.01, 0.02), e2e=0.2, output=3) -> RequestRecord:
    rec = RequestRecord(
        start_time=1.0,
        success=success,
        cancelled=cancelled,
        ttft_s=ttft,
        itl_s=list(itl),
        e2e_s=e2e,
        prompt_tokens=100,
        cached_tokens=64,
        output_tokens=output,
    )
    return rec


def test_outcomes_tokens_and_gauges_by_model():
    model = ["m1"]
    exporter = Exporter(lambda: model[0], {IN_FLIGHT: lambda: 7.0})
    exporter.observe(Row.of(record(), "chat", "local"))
    exporter.observe(Row.of(record(success=False, ttft=None, itl=(), e2e=1.0, output=0), "chat", "local"))
    # counted, not timed
    exporter.observe(Row.of(record(cancelled=True), "chat", "local"))
    model[0] = "m2"
    exporter.observe(Row.of(record(), "chat", "local"))
    s = samples(exporter)
    assert s[("llm_loadtest_requests_total", (("model_name", "m1"), ("outcome", "success")))] == 1
    assert s[("llm_loadtest_requests_total", (("model_name", "m1"), ("outcome", "failure")))] == 1
    assert s[("llm_loadtest_requests_total", (("model_name", "m1"), ("outcome", "cancelled")))] == 1
    assert s[("llm_loadtest_ttft_seconds_count", (("model_name", "m1"),))] == 1
    assert s[("llm_loadtest_e2e_seconds_count", (("model_name", "m1"),))] == 2
    assert s[("llm_loadtest_itl_seconds_count", (("model_name", "m1"),))] == 2
    assert s[("llm_loadtest_output_tokens_total", (("model_name", "m1"),))] == 3
    assert s[("llm_loadtest_cached_tokens_total", (("model_name", "m1"),))] == 128
    assert s[("llm_loadtest_ttft_seconds_count", (("model_name", "m2"),))] == 1
    assert s[("llm_loadtest_requests_in_flight", ())] == 7
    assert all(name.startswith("llm_loadtest_") for name, _ in s)


def test_a_shipped_row_counts_as_its_record():
    rec = record()
    rec.queue_s = 0.25
    assert rec.tpot_s is not None
    direct, shipped = Exporter(lambda: "m"), Exporter(lambda: "m")
    direct.observe(Row.of(rec, "chat", "local"))
    shipped.observe(Row.from_fields(Row.of(rec, "chat", "w1").fields()))
    assert samples(direct) == samples(shipped)


def test_every_series_exported_is_in_the_docs_reference():
    exporter = Exporter(lambda: "m", {IN_FLIGHT: lambda: 0.0})
    exporter.observe(Row.of(record(), "chat", "local"))
    names = {name for name, _ in samples(exporter)}
    documented = reference.prometheus()
    assert {name for name in names if f"`{name}`" not in documented} == set()
    for family in FAMILIES:
        if family.kind != "gauge" or family is IN_FLIGHT:
            assert any(n.startswith(metric_name(family)) for n in names), metric_name(family)


def test_each_request_is_counted_under_the_model_it_asked_for_here_and_at_the_master():
    exporter = Exporter(lambda: "base", {})
    rec = record()
    rec.model = "sql-lora"
    # this process's request
    exporter.observe(Row.of(rec, "chat", "local"))
    # a worker's, shipped
    exporter.observe(Row.from_fields(Row.of(rec, "chat", "w1").fields()))
    # no model of its own: the run's
    exporter.observe(Row.of(record(), "chat", "local"))
    got = samples(exporter)
    for model, n in (("sql-lora", 2), ("base", 1)):
        assert got[("llm_loadtest_requests_total", (("model_name", model), ("outcome", "success")))] == n
