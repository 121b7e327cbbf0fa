"""W3C trace context (``--trace-context``): a trace id per request, sent as its ``traceparent`` header, so a
server that traces requests (vLLM with ``--otlp-traces-endpoint``) names its span with the same id."""

from __future__ import annotations

import os


def new_trace_id() -> str:
    """32 lowercase hex digits, never all zero (W3C: an all-zero id is invalid)."""
    while True:
        trace_id = os.urandom(16).hex()
        if trace_id.strip("0"):
            return trace_id


def traceparent(trace_id: str) -> str:
    """The header's value: version 00, the trace id, a new parent span id, sampled."""
    span_id = os.urandom(8).hex()
    return f"00-{trace_id}-{span_id if span_id.strip('0') else '1'.zfill(16)}-01"
