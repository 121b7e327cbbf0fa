"""A server's per-request spans, received over OTLP/HTTP (protobuf) and joined to the requests' rows by trace
id (``--otlp-port``). vLLM names its request timings ``gen_ai.latency.*`` (seconds); each becomes a column.
Parsing and joining only: the receiver's I/O is the Locust layer's (``users/observe/otlp.py``)."""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Mapping

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

# vLLM's span attributes (vllm/tracing SpanAttributes) -> the row's columns
ATTRIBUTES = {
    "gen_ai.latency.time_in_queue": "server_queue_s",
    "gen_ai.latency.time_in_model_prefill": "server_prefill_s",
    "gen_ai.latency.time_to_first_token": "server_ttft_s",
    "gen_ai.latency.e2e": "server_e2e_s",
}
COLUMNS = tuple(ATTRIBUTES.values())
SPANS_FILE_COLUMNS = ("trace_id", *COLUMNS)
EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


def parse_export(body: bytes, encoding: str = "") -> list[tuple[str, dict[str, float]]]:
    """An OTLP/HTTP export's spans that carry request timings: (trace id as hex, {column: seconds}).
    Raises ValueError on a body that is not an export request."""
    if encoding.lower() == "gzip":
        body = gzip.decompress(body)
    try:
        export = ExportTraceServiceRequest.FromString(body)
    # protobuf's DecodeError has no common base worth naming
    except Exception as exc:
        raise ValueError(f"not an OTLP trace export: {exc}") from None
    out = []
    for resource in export.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                timings = {}
                for attribute in span.attributes:
                    column = ATTRIBUTES.get(attribute.key)
                    value = attribute.value
                    if column is not None:
                        number = value.double_value if value.HasField("double_value") else value.int_value
                        timings[column] = float(number)
                if timings:
                    out.append((span.trace_id.hex(), timings))
    return out


def join_into(path: str, spans: Mapping[str, dict[str, float]]) -> int:
    """Fill the server timing columns of ``path`` (a ``_requests.csv``) from ``spans`` by trace id, in place;
    returns the rows joined."""
    tmp = f"{path}.joining"
    joined = 0
    with open(path, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, reader.fieldnames or [], lineterminator="\n")
        writer.writeheader()
        for row in reader:
            timings = spans.get(row.get("trace_id") or "")
            if timings:
                joined += 1
                row.update({k: repr(v) for k, v in timings.items() if k in row})
            writer.writerow(row)
    os.replace(tmp, path)
    return joined
