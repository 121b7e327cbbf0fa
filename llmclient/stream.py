"""One streaming request, timed: the hot path of the suite.

No Locust import. ``clock`` is monotonic seconds and ``wall`` unix seconds;
both are injectable so tests can script them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from llmclient.errors import ProtocolError, TransportError
from llmclient.http import Connection, request_bytes
from llmclient.measure import (
    CHAT_TEXT_KEYS,
    COMPLETION_TEXT_KEYS,
    RESPONSE_TEXT_KEYS,
    RESPONSE_TEXT_MARK,
    TEXT_MARK,
    RequestRecord,
    StreamAccumulator,
)
from llmclient.response import ResponseReader, read_response
from llmclient.tracecontext import traceparent

if TYPE_CHECKING:
    from llmclient.pacer import Pacer
    from llmclient.reactor import StreamReactor


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    path: str
    text_keys: tuple[bytes, ...]
    # False: one JSON body answers (embeddings), timed to its last byte
    streams: bool = True
    # its prompts are chat messages (sized with the chat template)
    messages: bool = False
    # what a text event says, read without a JSON parse (measure.py)
    fast_mark: bytes = TEXT_MARK


CHAT = Endpoint("chat", "/v1/chat/completions", CHAT_TEXT_KEYS, messages=True)
COMPLETIONS = Endpoint("completions", "/v1/completions", COMPLETION_TEXT_KEYS)
EMBEDDINGS = Endpoint("embeddings", "/v1/embeddings", (), streams=False)
RESPONSES = Endpoint("responses", "/v1/responses", RESPONSE_TEXT_KEYS, messages=True, fast_mark=RESPONSE_TEXT_MARK)
ENDPOINTS = {e.name: e for e in (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES)}


def accumulator(endpoint: Endpoint, record: RequestRecord, start: float, collect_text: bool) -> StreamAccumulator:
    """The measuring rules for one response of ``endpoint``, timed from ``start``."""
    return StreamAccumulator(record, start, endpoint.text_keys, collect_text, not endpoint.streams, endpoint.fast_mark)


Messages = list[dict[str, object]]
# a prompt, a conversation, or several texts to embed
Input = str | Messages | list[str]


def build_body(
    endpoint: Endpoint,
    model: str,
    # a user message, the whole conversation, or texts to embed
    prompt: Input,
    max_tokens: int,
    *,
    ignore_eos: bool = False,
    temperature: float | None = None,
    extra_body: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The JSON body of a streaming request, with usage requested at the end.

    ``extra_body`` adds (or overrides) fields: tools, response_format, vLLM's sampling extras.
    """
    body: dict[str, object] = {"model": model}
    # embeddings: the input, one JSON answer
    if not endpoint.streams:
        body.update({"input": prompt, "encoding_format": "float", **(extra_body or {})})
        return body
    # the Responses API: input and max_output_tokens; usage comes with its last event
    if endpoint is RESPONSES:
        body.update({"input": prompt, "max_output_tokens": max_tokens, "stream": True})
        if ignore_eos:
            body["ignore_eos"] = True
        if temperature is not None:
            body["temperature"] = temperature
        body.update(extra_body or {})
        return body
    if endpoint is CHAT:
        body["messages"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    body["max_tokens"] = max_tokens
    if ignore_eos:
        body["ignore_eos"] = True
    if temperature is not None:
        body["temperature"] = temperature
    if extra_body:
        body.update(extra_body)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


def build_payload(
    endpoint: Endpoint,
    model: str,
    prompt: Input,
    max_tokens: int,
    *,
    ignore_eos: bool = False,
    temperature: float | None = None,
    extra_body: Mapping[str, object] | None = None,
) -> bytes:
    """``build_body`` encoded as JSON."""
    body = build_body(
        endpoint, model, prompt, max_tokens, ignore_eos=ignore_eos, temperature=temperature, extra_body=extra_body
    )
    return orjson.dumps(body)


def _started(
    first: _FirstWrite | None, record: RequestRecord, clock: Callable[[], float], wall: Callable[[], float]
) -> float:
    """The request's start on ``clock``: the paced write's, else now (stamping the record's wall time)."""
    if first is not None and first.start is not None:
        return first.start
    record.start_time = wall()
    return clock()


def stream_request(
    conn: Connection,
    endpoint: Endpoint,
    payload: bytes,
    headers: dict[str, str],
    *,
    clock: Callable[[], float] = time.perf_counter,
    wall: Callable[[], float] = time.time,
    deadline_s: float | None = None,
    record: RequestRecord | None = None,
    collect_text: bool = False,
    reactor: StreamReactor | None = None,
    pacer: Pacer | None = None,
) -> RequestRecord:
    """Send one streaming request and time every SSE event as its bytes arrive.

    Never raises for a failed request: the record says what went wrong. ``deadline_s`` bounds the whole
    request (``--request-timeout``). When the caller is interrupted (the test stops, Ctrl-C), the ``record``
    it passed in is closed as cancelled, keeping what was measured, and the interruption propagates. With
    a ``reactor`` (reactor.py) one shared greenlet reads the response for all streams; either way a
    ``ResponseReader`` parses it, head included. With a ``pacer`` (pacer.py), a record with a
    ``scheduled_time`` is sent at that time (``_paced``).
    """
    if record is None:
        record = RequestRecord()
    # --trace-context
    if record.trace_id:
        headers = {**headers, "traceparent": traceparent(record.trace_id)}
    raw = request_bytes(conn.target, "POST", endpoint.path, payload, headers)
    first, interrupted = _paced(pacer, conn, raw, record, clock, wall)
    acc = accumulator(endpoint, record, _started(first, record, clock, wall), collect_text)
    try:
        if interrupted is not None:
            raise interrupted
        written = first.written if first is not None else None
        reader, error = _exchange(conn, raw, written, acc, clock, acc.start, deadline_s, reactor)
        # the server closed the kept connection unanswered: once more, timed anew
        if conn.unanswered:
            acc = _resend(conn, endpoint, record, error, clock, wall, collect_text)
            reader, error = _exchange(conn, raw, None, acc, clock, acc.start, deadline_s, reactor)
        return _finish(conn, acc, reader, error)
    # interrupted from outside: keep the sample, then let it through
    except BaseException:
        conn.close()
        acc.cancel()
        raise


def _resend(
    conn: Connection,
    endpoint: Endpoint,
    record: RequestRecord,
    error: str,
    clock: Callable[[], float],
    wall: Callable[[], float],
    collect_text: bool,
) -> StreamAccumulator:
    """A request's second send, its clocks started anew: on the record when the first went out whole (the
    server may have read it)."""
    if conn.delivered:
        record.resent, record.resent_error = True, error
    record.start_time = wall()
    return accumulator(endpoint, record, clock(), collect_text)


def _paced(
    pacer: Pacer | None,
    conn: Connection,
    raw: bytes,
    record: RequestRecord,
    clock: Callable[[], float],
    wall: Callable[[], float],
) -> tuple[_FirstWrite | None, BaseException | None]:
    """An open-loop request (a ``scheduled_time``, a pacer) waits for its due time, when the pacer writes
    it: its first write, once fired with a socket (else None), and an interruption that came after it
    (the caller closes the record as cancelled). Interrupted before it, nothing was sent: that propagates."""
    if pacer is None or record.scheduled_time is None:
        return None, None
    first = _FirstWrite(conn, raw, record, clock, wall)
    try:
        pacer.wait(pacer.arm(record.scheduled_time, first))
    except BaseException as exc:
        # never sent: no request to record
        if first.start is None:
            raise
        # sent, then interrupted
        return first, exc
    return (first if first.start is not None else None), None


def _exchange(
    conn: Connection,
    raw: bytes,
    written: int | None,
    acc: StreamAccumulator,
    clock: Callable[[], float],
    start: float,
    deadline_s: float | None,
    reactor: StreamReactor | None,
) -> tuple[ResponseReader, str]:
    """Send the request (``written``: how much of it the pacer wrote already, -1 when that write failed)
    and read its response: the reader, and an error or ""."""
    reader = ResponseReader(acc)
    try:
        if written is None:
            conn.send(raw)
        elif written < 0:
            conn.lost()
            return reader, "connection failed while sending: closed by the server"
        elif written < len(raw):
            conn.send_rest(raw, written)
        else:
            # the pacer wrote it all
            conn.delivered = True
        if reactor is not None and reactor.accepts(conn):
            return reader, reactor.read_response(conn, reader, clock, start, deadline_s)
        return reader, read_response(conn, reader, clock, start, deadline_s)
    except TransportError as exc:
        conn.close()
        return reader, str(exc)
    except ProtocolError as exc:
        conn.close()
        return reader, f"bad stream framing: {exc}"


class _FirstWrite:
    """An open-loop request's send, fired by the pacer at its due time: start the clocks and write the
    request without blocking. What the socket did not take, the request's greenlet writes after; when
    the write failed (the server had closed the kept connection) ``written`` is -1 and the request is
    sent again on a new one. Without a plain-TCP socket ready (TLS, no connection), firing only says
    the time has come."""

    __slots__ = ("clock", "raw", "record", "sock", "start", "wall", "written")

    def __init__(
        self, conn: Connection, raw: bytes, record: RequestRecord, clock: Callable[[], float], wall: Callable[[], float]
    ) -> None:
        self.sock = conn.ready_socket()
        self.raw = raw
        self.record = record
        self.clock = clock
        self.wall = wall
        # the clock at the send, once fired with a socket
        self.start: float | None = None
        self.written = 0

    def __call__(self) -> None:
        if self.sock is None:
            return
        self.record.start_time = self.wall()
        self.start = self.clock()
        try:
            self.written = self.sock.send(self.raw)
        # the socket takes nothing now: the greenlet writes it all
        except BlockingIOError:
            self.written = 0
        # the server closed the idle connection
        except OSError:
            self.written = -1


def _finish(conn: Connection, acc: StreamAccumulator, reader: ResponseReader, error: str) -> RequestRecord:
    """Close the record from a response read to its end (or to ``error``)."""
    head = reader.head
    if head is not None:
        acc.record.status = head.status
    if error or head is None:
        return acc.finish(error or "connection closed before the response headers")
    if head.closes:
        conn.close()
    else:
        conn.release()
    if not reader.streaming:
        return acc.finish(http_error(head.status, head.reason, reader.error_body))
    if reader.incomplete_event:
        return acc.finish("stream ended inside an incomplete event")
    return acc.finish()


def http_error(status: int, reason: str, body: bytes) -> str:
    """The ``error`` text of a non-200 response: its status and the server's message."""
    message = ""
    try:
        obj = orjson.loads(body)
        if isinstance(obj, dict):
            err = obj.get("error", obj)
            if isinstance(err, dict):
                message = str(err.get("message") or err.get("detail") or "")
            elif isinstance(err, str):
                message = err
            if not message and "detail" in obj:
                message = str(obj["detail"])
    except orjson.JSONDecodeError:
        message = body[:200].decode("utf-8", "replace").strip()
    message = " ".join(message.split())[:300]
    return f"HTTP {status} {reason}".rstrip() + (f": {message}" if message else "")
