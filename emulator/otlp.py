"""The emulator's request spans, as vLLM sends them with ``--otlp-traces-endpoint``: one span per request
whose ``traceparent`` named a trace, its ``gen_ai.latency.*`` attributes from the emulator's own clock,
exported over OTLP/HTTP (protobuf) in batches by a thread of its own."""

from __future__ import annotations

import os
import queue
import threading
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

# how often a batch leaves (vLLM's BatchSpanProcessor: every 5 s)
BATCH_S = 0.5


def trace_id_of(traceparent: str) -> str:
    """The trace id of a W3C ``traceparent`` header ("" when it is not one)."""
    parts = traceparent.strip().split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1].strip("0"):
        try:
            int(parts[1], 16)
        except ValueError:
            return ""
        return parts[1].lower()
    return ""


class SpanExporter:
    def __init__(self, endpoint: str, service: str) -> None:
        self.url = endpoint.rstrip("/") + ("" if endpoint.rstrip("/").endswith("/v1/traces") else "/v1/traces")
        self.service = service
        self._queue: queue.Queue[Span | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._thread.start()

    def add(self, trace_id: str, start_wall: float, end_wall: float, attributes: dict[str, float]) -> None:
        span = Span(
            trace_id=bytes.fromhex(trace_id),
            span_id=os.urandom(8),
            name="llm_request",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=int(start_wall * 1e9),
            end_time_unix_nano=int(end_wall * 1e9),
            attributes=[KeyValue(key=k, value=AnyValue(double_value=v)) for k, v in attributes.items()],
        )
        self._queue.put(span)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            threading.Event().wait(BATCH_S)
            while not self._queue.empty():
                more = self._queue.get()
                if more is None:
                    self._send(batch)
                    return
                batch.append(more)
            self._send(batch)

    def _send(self, spans: list[Span]) -> None:
        resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=self.service))])
        export = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
        )
        request = urllib.request.Request(
            self.url, data=export.SerializeToString(), method="POST", headers={"Content-Type": "application/x-protobuf"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        # the collector is gone: the spans are lost, as vLLM's would be
        except OSError as exc:
            print(f"emulator: could not export {len(spans)} spans to {self.url}: {exc}", flush=True)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
