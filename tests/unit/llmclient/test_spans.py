"""W3C trace context and OTLP spans: the header's form, an export parsed (plain and gzip), a join by trace id."""

from __future__ import annotations

import csv
import gzip
import re

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from llmclient.schema import HEADER
from llmclient.spans import join_into, parse_export
from llmclient.tracecontext import new_trace_id, traceparent


def test_a_traceparent_carries_the_trace_id_a_new_span_and_the_sampled_flag():
    trace_id = new_trace_id()
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != new_trace_id()
    assert re.fullmatch(rf"00-{trace_id}-[0-9a-f]{{16}}-01", traceparent(trace_id))


def export(trace_id: str, **attributes: float) -> bytes:
    span = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=b"\x01" * 8,
        name="llm_request",
        attributes=[KeyValue(key=k, value=AnyValue(double_value=v)) for k, v in attributes.items()],
    )
    # no request timings: left out
    other = Span(trace_id=b"\x02" * 16, span_id=b"\x03" * 8, name="http")
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span, other])])])
    return request.SerializeToString()


def test_an_export_gives_each_spans_timings_under_the_rows_column_names():
    trace_id = "ab" * 16
    body = export(
        trace_id,
        **{
            "gen_ai.latency.time_in_queue": 0.25,
            "gen_ai.latency.time_to_first_token": 1.5,
            "gen_ai.latency.e2e": 3.0,
            "gen_ai.request.max_tokens": 8,
        },
    )
    expected = [(trace_id, {"server_queue_s": 0.25, "server_ttft_s": 1.5, "server_e2e_s": 3.0})]
    assert parse_export(body) == expected
    assert parse_export(gzip.compress(body), "gzip") == expected
    # the receiver answers it 400
    with pytest.raises(ValueError, match="not an OTLP trace export"):
        parse_export(b"\xff\xff\xff")


def test_the_join_fills_the_rows_whose_trace_id_has_a_span(tmp_path):
    path = tmp_path / "run_requests.csv"
    names = HEADER.strip().split(",")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, names, lineterminator="\n")
        writer.writeheader()
        writer.writerow({"request_id": "a", "trace_id": "11" * 16, "itl_s": "0.010000 0.020000"})
        writer.writerow({"request_id": "b", "trace_id": "22" * 16})
    assert join_into(str(path), {"11" * 16: {"server_ttft_s": 0.5, "server_e2e_s": 1.0}}) == 1
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert (rows[0]["server_ttft_s"], rows[0]["server_e2e_s"], rows[0]["itl_s"]) == ("0.5", "1.0", "0.010000 0.020000")
    assert rows[1]["server_ttft_s"] == "" and list(rows[0]) == names
